package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	trail "github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/store/sqlite"
)

// While a gateway moves its journal into the store, verify and search see every event
// acknowledged before they started: none falls between reading the store and reading the
// journal (moved meanwhile, and the journal emptied).
func TestAuditStoreReadWhileMoving(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := filepath.Join(dir, "p.db")
	st, err := sqlite.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sink, err := trail.OpenStoreJournal(ctx, st, "gw", trail.JournalOptions{Path: trail.JournalPath(db, "gw"), Interval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	b, err := trail.NewBroker([]trail.Sink{sink}, trail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := sink.Flush(ctx); err != nil { // as serve does: the chain is in the store from the start
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "p.yaml")
	os.WriteFile(cfg, []byte("auth: none\nstore: {driver: sqlite, path: "+db+"}\nservers:\n  - {name: fs, command: x}\nguards:\n  audit: {}\n"), 0o600)

	var acked atomic.Int64
	acked.Store(1) // the trail's start
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 8000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := b.Record(ctx, &trail.Event{Code: trail.CodeRequest, Kind: trail.KindRequest, Principal: "alice", Tool: "t"}); err != nil {
				t.Error(err)
				return
			}
			acked.Add(1)
			if i%20 == 0 {
				time.Sleep(100 * time.Microsecond)
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	for i := 0; i < 25 && acked.Load() < 7000; i++ {
		before := acked.Load()
		code, out, errs := runCLI("audit", "verify", "--config", cfg, "--json")
		var res struct {
			OK     bool
			Chains map[string]int64
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 || !res.OK {
			t.Fatalf("verify while moving: exit %d\n%s%s", code, out, errs)
		}
		if res.Chains["gw"] < before {
			t.Fatalf("verify while moving counted %d events, but %d were acknowledged before it started", res.Chains["gw"], before)
		}
		before = acked.Load()
		code, out, errs = runCLI("audit", "search", "--config", cfg, "--json")
		if n := int64(strings.Count(out, "\n")); code != 0 || n < before {
			t.Fatalf("search while moving: exit %d, %d events, but %d were acknowledged before it started\n%s", code, n, before, errs)
		}
	}
}

// Audit is on by default, into the store: the audit commands read the store of a
// configuration that has no guards.audit, and say so when the configuration turns it off.
func TestAuditCommandsDefaultToTheStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := filepath.Join(dir, "p.db")
	st, err := sqlite.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := trail.OpenStoreJournal(ctx, st, "gw", trail.JournalOptions{Path: trail.JournalPath(db, "gw"), Interval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	b, err := trail.NewBroker([]trail.Sink{sink}, trail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"read_file", "write_file"} {
		if err := b.Record(ctx, &trail.Event{Code: trail.CodeRequest, Kind: trail.KindRequest, Principal: "alice", Tool: tool}); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()
	st.Close()

	head := "auth: none\nstore: {driver: sqlite, path: " + db + "}\nservers:\n  - {name: fs, command: x}\n"
	cfg := filepath.Join(dir, "p.yaml")
	os.WriteFile(cfg, []byte(head), 0o600)
	code, out, errs := runCLI("audit", "search", "--config", cfg, "--kind", "request", "--json")
	if code != 0 || !strings.Contains(out, `"read_file"`) || !strings.Contains(out, `"write_file"`) {
		t.Fatalf("search of a configuration without guards.audit: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := runCLI("audit", "verify", "--config", cfg); code != 0 {
		t.Errorf("verify of a configuration without guards.audit: exit %d\n%s%s", code, out, errs)
	}

	off := filepath.Join(dir, "off.yaml")
	os.WriteFile(off, []byte(head+"guards:\n  audit: off\n"), 0o600)
	if code, _, errs := runCLI("audit", "search", "--config", off); code == 0 || !strings.Contains(errs, "guards.audit is off") {
		t.Errorf("search with audit off: exit %d, %q", code, errs)
	}
}
