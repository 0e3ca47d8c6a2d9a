package audit_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/store/sqlite"
)

func openJournaled(t *testing.T, st *sqlite.Store, journal string, interval time.Duration) *audit.StoreSink {
	t.Helper()
	s, err := audit.OpenStoreJournal(context.Background(), st, "gw-1", audit.JournalOptions{Path: journal, Interval: interval, MaxBatch: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func record(t *testing.T, b *audit.Broker, n int) {
	t.Helper()
	for i := range n {
		if err := b.Record(context.Background(), event(i)); err != nil {
			t.Fatal(err)
		}
	}
}

func countChain(t *testing.T, st *sqlite.Store) int {
	t.Helper()
	counts, p, err := audit.VerifyStore(context.Background(), st, "gw-1")
	if err != nil || p != nil {
		t.Fatalf("verify: %v %v", err, p)
	}
	return counts["gw-1"]
}

// Events go to the journal first and reach the store in batches; closing moves the rest.
func TestStoreJournal(t *testing.T) {
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	journal := filepath.Join(dir, "p.db-audit.journal")
	s := openJournaled(t, st, journal, time.Hour)
	b, err := audit.NewBroker([]audit.Sink{s}, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	record(t, b, 10)
	if n := countChain(t, st); n != 0 {
		t.Errorf("%d events in the store before the journal was moved (interval 1h)", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := countChain(t, st); n != 11 {
		t.Errorf("%d events in the store after Flush, want 11", n)
	}
	record(t, b, 5)
	b.Close() // closes the sink: the rest is moved
	if n := countChain(t, st); n != 16 {
		t.Errorf("%d events in the store after Close, want 16", n)
	}
	if fi, err := os.Stat(journal); err != nil || fi.Size() != 0 {
		t.Errorf("the journal is not empty after Close: %v %v", fi, err)
	}
}

// A gateway that dies with events in its journal: the next start moves them into the
// store, once, and the chain continues.
func TestStoreJournalAfterCrash(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.db")
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	journal := path + "-audit.journal"
	s := openJournaled(t, st, journal, time.Hour)
	b, err := audit.NewBroker([]audit.Sink{s}, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	record(t, b, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Flush(ctx); err != nil { // 5 events in the store
		t.Fatal(err)
	}
	record(t, b, 3) // 3 more only in the journal
	// A second process on the same journal is refused while the first lives.
	if _, err := audit.OpenStoreJournal(context.Background(), st, "gw-1", audit.JournalOptions{Path: journal}); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Errorf("a second writer of the journal: %v", err)
	}
	s.Crash()
	// The crash: the process is gone. The journal holds the events moved already (it is
	// only rotated past RotateBytes) and the 3 unmoved ones. Make it the worst case: an
	// in-flight file holding the first unmoved event, and the journal holding it again
	// with the others and a torn last line (never acknowledged): each event must reach the
	// store once.
	data, _ := os.ReadFile(journal)
	lines := splitLines(data)
	if len(lines) < 3 {
		t.Fatalf("%d lines in the journal, want the 3 unmoved events at least", len(lines))
	}
	moved, unmoved := lines[:len(lines)-3], lines[len(lines)-3:]
	os.WriteFile(journal+".1", []byte(unmoved[0]+"\n"), 0o600)
	os.WriteFile(journal, []byte(strings.Join(append(moved, unmoved...), "\n")+"\n"+`{"torn`), 0o600)

	restartAndRecord(t, path, journal, 8, 11)
	if _, err := os.Stat(journal + ".1"); err == nil {
		t.Error("the in-flight file is still there")
	}
}

func splitLines(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == '\n' {
			out = append(out, string(b[start:i]))
			start = i + 1
		}
	}
	return out
}

// A gateway killed while its journal was mapped leaves the blocks allocated ahead as
// zeros after its events, possibly after a half-copied line: the events end at the first
// NUL byte, and each acknowledged one reaches the store once.
func TestStoreJournalZeroTail(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.db")
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	journal := path + "-audit.journal"
	s := openJournaled(t, st, journal, time.Hour)
	b, err := audit.NewBroker([]audit.Sink{s}, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	record(t, b, 4) // 5 events, all only in the journal
	s.Crash()
	lines := splitLines(mustRead(t, journal))
	if len(lines) != 5 {
		t.Fatalf("%d lines in the journal, want 5", len(lines))
	}
	half := lines[4][:len(lines[4])/2]
	tail := append([]byte(half), make([]byte, 8192)...)
	// Bytes of the half-copied line's end, after the hole: never acknowledged.
	tail = append(tail, lines[4][len(lines[4])/2+10:]+"\n"...)
	os.WriteFile(journal, append([]byte(strings.Join(lines[:4], "\n")+"\n"), tail...), 0o600)
	tailEntries, err := audit.JournalTail(journal, audit.Position{})
	if err != nil || len(tailEntries) != 4 {
		t.Fatalf("JournalTail: %d entries, %v; want 4", len(tailEntries), err)
	}

	restartAndRecord(t, path, journal, 4, 7)
	if data := mustRead(t, journal); len(data) != 0 {
		t.Errorf("the journal holds %d bytes after Close, want 0", len(data))
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// restartAndRecord opens the store and its journal again as a restarted gateway does,
// checks that the store holds moved events (each once), records two more and checks that
// the chain continues: the store holds after events and a verifiable chain.
func restartAndRecord(t *testing.T, path, journal string, moved, after int) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := openJournaled(t, st, journal, time.Hour)
	if n := countChain(t, st); n != moved {
		t.Errorf("%d events in the store after the restart, want %d (each once)", n, moved)
	}
	b, err := audit.NewBroker([]audit.Sink{s}, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	record(t, b, 2)
	b.Close()
	if n := countChain(t, st); n != after {
		t.Errorf("%d events after the restart's own, want %d (the chain continues)", n, after)
	}
}
