package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/store"
)

func auditRecords(chain string, from, n int, prev string) []store.AuditRecord {
	var out []store.AuditRecord
	for i := from; i < from+n; i++ {
		h := fmt.Sprintf("%064x", i)
		out = append(out, store.AuditRecord{Chain: chain, Seq: uint64(i), Time: time.Unix(1700000000+int64(i), 0).UTC(), Code: "PC1001I",
			Principal: "alice", Server: "everything", Method: "tools/call", Tool: "echo", Decision: "allowed",
			Prev: prev, Hash: h, Line: []byte(fmt.Sprintf(`{"seq":%d}`, i))})
		prev = h
	}
	return out
}

// Migration 6 rebuilds the audit table of a database written by an older portcullis: its
// rows, row numbers and searches stay, the chain goes on, and the table no longer has
// AUTOINCREMENT nor constraints that make a many-row insert keep a statement journal.
func TestAuditLeanMigration(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "p.db")
	all := migrations
	migrations = all[:5]
	s, err := Open(ctx, path)
	migrations = all
	if err != nil {
		t.Fatal(err)
	}
	old := auditRecords("gw", 1, 150, "genesis")
	if err := s.AppendAudit(ctx, old); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.Version(ctx); err != nil || v != 6 {
		t.Fatalf("Version = %d, %v; want 6", v, err)
	}
	var ddl string
	if err := s.db.QueryRowContext(ctx, "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'audit_events'").Scan(&ddl); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(ddl, "AUTOINCREMENT") || strings.Count(ddl, "ON CONFLICT FAIL") != 12 {
		t.Errorf("audit_events after migration 6:\n%s\nwant no AUTOINCREMENT and every column NOT NULL ON CONFLICT FAIL", ddl)
	}
	var idx []string
	rows, err := s.db.QueryContext(ctx, "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_events' ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		rows.Scan(&n)
		idx = append(idx, n)
	}
	rows.Close()
	if got := strings.Join(idx, ","); got != "audit_events_chain,audit_events_principal,audit_events_time" {
		t.Errorf("indexes of audit_events: %s", got)
	}

	more := auditRecords("gw", 151, 100, old[len(old)-1].Hash)
	if err := s.AppendAudit(ctx, more); err != nil {
		t.Fatalf("the chain does not go on after the migration: %v", err)
	}
	var got []store.AuditRecord
	if err := s.ScanAudit(ctx, "gw", 0, func(r store.AuditRecord) (bool, error) { got = append(got, r); return true, nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 250 {
		t.Fatalf("%d records after the migration, want 250", len(got))
	}
	for i, r := range got {
		if r.Row != int64(i+1) || r.Seq != uint64(i+1) || string(r.Line) != fmt.Sprintf(`{"seq":%d}`, i+1) {
			t.Fatalf("record %d: row %d seq %d line %s", i, r.Row, r.Seq, r.Line)
		}
	}
	found, err := s.SearchAudit(ctx, store.AuditQuery{Principal: "alice", Since: got[99].Time, Limit: 5})
	if err != nil || len(found) != 5 || found[0].Seq != 250 {
		t.Errorf("SearchAudit after the migration = %d records (first %+v), %v", len(found), found, err)
	}
	// A NULL is refused, and the transaction leaves nothing behind.
	_, err = s.db.ExecContext(ctx, "INSERT INTO audit_events (chain, seq, time, code, prev, hash, line) VALUES ('gw', 251, 0, 'PC1001I', 'x', 'y', NULL)")
	if err == nil || !strings.Contains(err.Error(), "NOT NULL") {
		t.Errorf("a NULL line was stored: %v", err)
	}
	bad := auditRecords("gw", 251, 3, got[len(got)-1].Hash)
	bad[2].Line = nil
	if err := s.AppendAudit(ctx, bad); err == nil {
		t.Fatal("a record without a line was stored")
	}
	if r, err := s.LastAudit(ctx, "gw"); err != nil || r.Seq != 250 {
		t.Errorf("after a failed append the chain ends at %d, %v; want 250 (all or nothing)", r.Seq, err)
	}
}
