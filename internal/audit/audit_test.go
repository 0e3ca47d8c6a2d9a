package audit_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/audit/audittest"
)

func event(i int) *audit.Event {
	return &audit.Event{Code: audit.CodeRequest, Kind: audit.KindRequest, Direction: "inbound",
		Principal: "alice", Server: "everything", Method: "tools/call", Tool: fmt.Sprintf("tool%d", i),
		RequestID: fmt.Sprint(i), Arguments: []byte(`{"a": [1, 2],` + "\n" + `"b":"x"}`)}
}

// writeTrail records n events (plus the start event) into a file trail at path.
func writeTrail(t *testing.T, path string, n int, rotate int64) {
	t.Helper()
	f, err := audit.OpenFile(audit.FileOptions{Path: path, RotateBytes: rotate})
	if err != nil {
		t.Fatal(err)
	}
	b, err := audit.NewBroker([]audit.Sink{f}, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := b.Record(context.Background(), event(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

func verify(t *testing.T, path string) (*audit.Verifier, *audit.Problem) {
	t.Helper()
	files, err := audit.Files(path)
	if err != nil {
		t.Fatal(err)
	}
	v, p, err := audit.VerifyFiles(files)
	if err != nil {
		t.Fatal(err)
	}
	return v, p
}

func TestCanonicalRoundTrip(t *testing.T) {
	e := event(1)
	e.ID = audit.NewID()
	e.Time = time.Date(2026, 8, 1, 12, 0, 0, 5, time.UTC)
	e.Findings = []audit.Finding{{Detector: "secrets", Severity: "high", Pointer: "/a", Message: "a \"key\""}}
	audit.Seal(e, audit.Position{}, nil)
	line := e.AppendCanonical(nil)
	if bytes.ContainsAny(line, "\n") {
		t.Fatalf("line has a newline: %s", line)
	}
	if h, ok := audit.LineHash(line); !ok || h != e.Hash {
		t.Fatalf("LineHash = %q, %v; want %q", h, ok, e.Hash)
	}
	back, err := audit.ParseLine(line)
	if err != nil {
		t.Fatal(err)
	}
	if again := back.AppendCanonical(nil); !bytes.Equal(again, line) {
		t.Errorf("re-encoding differs:\n%s\n%s", line, again)
	}
	if e.Prev != audit.Genesis || e.Seq != 1 {
		t.Errorf("first event: seq %d prev %s", e.Seq, e.Prev)
	}
}

func TestVerifyTampering(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(lines []string) []string
		kind   string
		line   int
		seq    uint64
	}{
		{"intact", func(l []string) []string { return l }, "", 0, 0},
		{"edit one event", func(l []string) []string {
			l[4] = strings.Replace(l[4], `"principal":"alice"`, `"principal":"mallory"`, 1)
			return l
		}, "altered", 5, 5},
		{"edit and rehash", func(l []string) []string {
			e, _ := audit.ParseLine([]byte(l[4]))
			e.Principal = "mallory"
			e.Hash = ""
			// recompute this event's own hash, as a careful forger would
			p := audit.Position{Seq: e.Seq - 1, Hash: e.Prev}
			audit.Seal(e, p, nil)
			l[4] = string(e.AppendCanonical(nil))
			return l
		}, "altered", 5, 5},
		{"delete one", func(l []string) []string { return append(l[:3:3], l[4:]...) }, "removed", 4, 4},
		{"delete two", func(l []string) []string { return append(l[:3:3], l[5:]...) }, "removed", 4, 4},
		{"swap two", func(l []string) []string { l[5], l[6] = l[6], l[5]; return l }, "reordered", 6, 7},
		{"garbage line", func(l []string) []string { l[2] = "hello"; return l }, "unreadable", 3, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			writeTrail(t, path, 9, 0)
			b, _ := os.ReadFile(path)
			lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
			if len(lines) != 10 {
				t.Fatalf("%d lines, want 10", len(lines))
			}
			lines = tt.tamper(lines)
			os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
			v, p := verify(t, path)
			if tt.kind == "" {
				if p != nil {
					t.Fatalf("intact trail: %v", p)
				}
				if v.Count() != 10 || v.First != 1 || v.FirstPrev != audit.Genesis {
					t.Errorf("count %d first %d prev %s", v.Count(), v.First, v.FirstPrev)
				}
				return
			}
			if p == nil {
				t.Fatalf("tampering not detected")
			}
			if p.Kind != tt.kind || p.Line != tt.line || p.Seq != tt.seq {
				t.Errorf("problem = %v (kind %s line %d seq %d), want %s at line %d, event %d", p, p.Kind, p.Line, p.Seq, tt.kind, tt.line, tt.seq)
			}
		})
	}
}

func TestFileRotationAndResume(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	writeTrail(t, path, 20, 2000)
	writeTrail(t, path, 20, 2000) // a restart continues the chain
	files, _ := audit.Files(path)
	if len(files) < 4 {
		t.Fatalf("files %v: want several rotated files", files)
	}
	v, p := verify(t, path)
	if p != nil {
		t.Fatal(p)
	}
	if v.Count() != 42 || v.Last().Seq != 42 {
		t.Errorf("verified %d events up to %d, want 42", v.Count(), v.Last().Seq)
	}
	// Removing a middle rotated file is a removal.
	os.Remove(files[1])
	if _, p := verify(t, path); p == nil || p.Kind != "removed" {
		t.Errorf("a missing file: %v", p)
	}
}

func TestFileTornTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	writeTrail(t, path, 3, 0)
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"time":"2026-`) // a crash in the middle of a write
	f.Close()
	writeTrail(t, path, 3, 0)
	if v, p := verify(t, path); p != nil || v.Count() != 8 {
		t.Fatalf("after a torn write: %v, %d events", p, v.Count())
	}
}

func TestFileReplacedPath(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	f, err := audit.OpenFile(audit.FileOptions{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	b, err := audit.NewBroker([]audit.Sink{f}, audit.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	if err := b.Record(ctx, event(1)); err != nil {
		t.Fatal(err)
	}
	// The file is moved away (as a rotation) and its path now names a full device.
	os.Rename(path, path+".000001")
	if err := os.Symlink("/dev/full", path); err != nil {
		t.Skip(err)
	}
	err = b.Record(ctx, event(2))
	if !errors.Is(err, audit.ErrAuditUnavailable) {
		t.Fatalf("Record to a full device = %v, want ErrAuditUnavailable", err)
	}
	os.Remove(path)
	if err := b.Record(ctx, event(3)); err != nil {
		t.Fatal(err)
	}
	b.Close()
	v, p := verify(t, path)
	if p != nil {
		t.Fatal(p)
	}
	// start, 1, 3, recovered: the refused event is not part of the trail
	if v.Count() != 4 {
		t.Errorf("%d events, want 4", v.Count())
	}
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), audit.CodeRecovered) || strings.Contains(string(data), `"tool":"tool2"`) {
		t.Errorf("trail after recovery:\n%s", data)
	}
}

func TestBrokerFailClosed(t *testing.T) {
	a, b := audittest.New("a"), audittest.New("b")
	br, err := audit.NewBroker([]audit.Sink{a, b}, audit.Options{Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	ctx := context.Background()
	// One sink failing: recorded; the failing sink catches up later, in order.
	a.Fail(true)
	for i := range 3 {
		if err := br.Record(ctx, event(i)); err != nil {
			t.Fatal(err)
		}
	}
	if st := br.Stats(); st[0].Backlog != 3 {
		t.Errorf("backlog of a = %d, want 3", st[0].Backlog)
	}
	// Both failing: refused, and the chain does not advance.
	b.Fail(true)
	if err := br.Record(ctx, event(9)); !errors.Is(err, audit.ErrAuditUnavailable) {
		t.Fatalf("all sinks failing: %v", err)
	}
	// A stalled sink counts as failing after the timeout.
	b.Fail(false)
	b.Stall(true)
	cctx, cancel := context.WithCancel(ctx)
	cancel() // the caller's cancellation does not matter
	if err := br.Record(cctx, event(10)); !errors.Is(err, audit.ErrAuditUnavailable) {
		t.Fatalf("stalled: %v", err)
	}
	a.Fail(false)
	b.Stall(false)
	if err := br.Record(ctx, event(4)); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*audittest.Sink{a, b} {
		ev := s.Events()
		var seqs []uint64
		prev := ""
		for i, e := range ev {
			seqs = append(seqs, e.Seq)
			if i > 0 && e.Prev != prev {
				t.Errorf("sink %s: event %d is not chained to %d", s.N, e.Seq, ev[i-1].Seq)
			}
			prev = e.Hash
			if e.Tool == "tool9" || e.Tool == "tool10" {
				t.Errorf("sink %s holds a refused event", s.N)
			}
		}
		t.Logf("sink %s: %v", s.N, seqs)
		if len(ev) < 6 || ev[len(ev)-2].Tool != "tool4" && ev[len(ev)-1].Tool != "tool4" {
			t.Errorf("sink %s: %d events %v", s.N, len(ev), seqs)
		}
	}
}

func TestBrokerConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	f, err := audit.OpenFile(audit.FileOptions{Path: path, RotateBytes: 1 << 14})
	if err != nil {
		t.Fatal(err)
	}
	br, err := audit.NewBroker([]audit.Sink{f}, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				if err := br.Record(context.Background(), event(g*100+i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	br.Close()
	v, p := verify(t, path)
	if p != nil {
		t.Fatal(p)
	}
	if v.Count() != 801 {
		t.Errorf("%d events, want 801", v.Count())
	}
}

func TestNoSinkWorks(t *testing.T) {
	a := audittest.New("a")
	a.Fail(true)
	if _, err := audit.NewBroker([]audit.Sink{a}, audit.Options{Timeout: 100 * time.Millisecond}); !errors.Is(err, audit.ErrAuditUnavailable) {
		t.Fatalf("NewBroker with a failing sink = %v", err)
	}
}

func TestKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k", "audit.key")
	k1, err := audit.LoadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := audit.LoadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := k1.Sum([]byte("x")), k2.Sum([]byte("x")); a != b || !strings.HasPrefix(a, "hmac-sha256:") {
		t.Errorf("sums %s %s", a, b)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v", st.Mode())
	}
}

// Many callers while the only sink stalls: whoever writes a batch and whoever waits for
// another's are all refused, none hangs, and the chain goes on without them once the sink
// works again.
func TestBrokerStalledConcurrent(t *testing.T) {
	a := audittest.New("a")
	br, err := audit.NewBroker([]audit.Sink{a}, audit.Options{Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	a.Stall(true)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- br.Record(context.Background(), event(100+i))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, audit.ErrAuditUnavailable) {
			t.Errorf("a call while the sink stalls: %v, want ErrAuditUnavailable", err)
		}
	}
	a.Stall(false)
	for i := range 3 {
		if err := br.Record(context.Background(), event(i)); err != nil {
			t.Fatal(err)
		}
	}
	ev := a.Events()
	for i, e := range ev {
		if e.Seq != uint64(i+1) || i > 0 && e.Prev != ev[i-1].Hash {
			t.Fatalf("event %d: seq %d, not chained: %+v", i, e.Seq, e)
		}
		if strings.HasPrefix(e.Tool, "tool1") && len(e.Tool) == 7 {
			t.Errorf("a refused event was recorded: %s", e.Tool)
		}
	}
	if len(ev) != 5 { // started, recovered (counting the refusals), 3 events
		t.Errorf("%d events, want 5: %+v", len(ev), ev)
	}
}
