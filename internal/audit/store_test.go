package audit_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/store"
	"github.com/portcullis-mcp/portcullis/internal/store/sqlite"
)

// storeTrail records n calls into a fresh SQLite store through a broker and returns the
// store, its path, and the chain name.
func storeTrail(t *testing.T, n int) (*sqlite.Store, string) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "portcullis.db")
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sink, err := audit.OpenStore(ctx, st, "gw-1")
	if err != nil {
		t.Fatal(err)
	}
	b, err := audit.NewBroker([]audit.Sink{sink}, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		e := &audit.Event{ID: audit.NewID(), Code: audit.CodeRequest, Kind: audit.KindRequest, Principal: "alice",
			Server: "fs", Method: "tools/call", Tool: []string{"read", "write"}[i%2]}
		if err := b.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	return st, path
}

func rawDB(t *testing.T, path string) *sql.DB {
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestStoreSinkVerifies(t *testing.T) {
	st, _ := storeTrail(t, 10)
	counts, p, err := audit.VerifyStore(context.Background(), st, "")
	if err != nil || p != nil {
		t.Fatalf("VerifyStore: %v, %v", p, err)
	}
	if counts["gw-1"] != 11 { // the start event and ten calls
		t.Fatalf("counts = %v, want 11 events in gw-1", counts)
	}
	recs, err := st.SearchAudit(context.Background(), store.AuditQuery{Tool: "write"})
	if err != nil || len(recs) != 5 {
		t.Fatalf("search tool=write: %d records, %v", len(recs), err)
	}
}

func TestStoreSinkResumes(t *testing.T) {
	ctx := context.Background()
	st, _ := storeTrail(t, 3)
	sink, err := audit.OpenStore(ctx, st, "gw-1")
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := sink.Last(); !ok || p.Seq != 4 {
		t.Fatalf("reopened sink at %+v %v, want seq 4", p, ok)
	}
	b, err := audit.NewBroker([]audit.Sink{sink}, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b.Record(ctx, &audit.Event{ID: audit.NewID(), Code: audit.CodeRequest, Kind: audit.KindRequest})
	b.Close()
	counts, p, err := audit.VerifyStore(ctx, st, "gw-1")
	if err != nil || p != nil || counts["gw-1"] != 6 {
		t.Fatalf("after a restart: %v %v %v, want 6 events verifying", counts, p, err)
	}
	// A second writer of the same chain is refused, never interleaved.
	other, err := audit.OpenStore(ctx, st, "gw-1")
	if err != nil {
		t.Fatal(err)
	}
	stale := &audit.Event{ID: audit.NewID(), Code: audit.CodeRequest, Kind: audit.KindRequest, Seq: 5, Prev: "x", Hash: "y"}
	if err := other.Write(ctx, []*audit.Event{stale}); !errors.Is(err, store.ErrChainConflict) {
		t.Fatalf("a write not following the chain: %v, want ErrChainConflict", err)
	}
}

func TestStoreVerifyNamesTampering(t *testing.T) {
	for _, tc := range []struct {
		name, sql, kind string
		row             int
	}{
		{"edited line", `UPDATE audit_events SET line = CAST(replace(CAST(line AS TEXT), '"alice"', '"mallory"') AS BLOB) WHERE row = 4`, "altered", 4},
		{"edited search column", `UPDATE audit_events SET principal = 'mallory' WHERE row = 5`, "altered", 5},
		{"deleted", `DELETE FROM audit_events WHERE row = 6`, "removed", 7},
		{"swapped", swapRows, "reordered", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, path := storeTrail(t, 8)
			db := rawDB(t, path)
			if tc.sql == swapRows {
				swap(t, db, 3, 4)
			} else if _, err := db.Exec(tc.sql); err != nil {
				t.Fatal(err)
			}
			_, p, err := audit.VerifyStore(context.Background(), st, "")
			if err != nil {
				t.Fatal(err)
			}
			if p == nil {
				t.Fatal("the tampered trail verified")
			}
			if p.Kind != tc.kind || p.Line != tc.row || p.File != "store:gw-1" {
				t.Fatalf("problem %+v, want %s at row %d", p, tc.kind, tc.row)
			}
			if !strings.Contains(p.Error(), "store:gw-1:") {
				t.Errorf("message %q does not name the chain", p.Error())
			}
		})
	}
}

const swapRows = "swap rows 3 and 4"

// swap exchanges the contents of two rows, as an attacker reordering events would.
func swap(t *testing.T, db *sql.DB, a, b int) {
	const cols = "chain, seq, time, code, principal, server, method, tool, decision, prev, hash, line"
	read := func(row int) []any {
		v := make([]any, 12)
		p := make([]any, 12)
		for i := range v {
			p[i] = &v[i]
		}
		if err := db.QueryRow("SELECT "+cols+" FROM audit_events WHERE row = ?", row).Scan(p...); err != nil {
			t.Fatal(err)
		}
		return v
	}
	write := func(row int, v []any) {
		_, err := db.Exec(`UPDATE audit_events SET chain=?, seq=?, time=?, code=?, principal=?, server=?, method=?,
			tool=?, decision=?, prev=?, hash=?, line=? WHERE row = ?`, append(v, row)...)
		if err != nil {
			t.Fatal(err)
		}
	}
	va, vb := read(a), read(b)
	write(a, vb)
	write(b, va)
}
