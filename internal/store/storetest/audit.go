package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/store"
)

// chainOf returns n records of chain following prev, starting at seq first.
func chainOf(chain string, first uint64, prev string, n int) []store.AuditRecord {
	var out []store.AuditRecord
	for i := range n {
		seq := first + uint64(i)
		h := fmt.Sprintf("%s-%d", chain, seq)
		out = append(out, store.AuditRecord{
			Chain: chain, Seq: seq, Time: t0.Add(time.Duration(seq) * time.Second), Code: "PC1001I",
			Principal: fmt.Sprintf("p%d", seq%2), Server: "srv", Method: "tools/call", Tool: "echo",
			Decision: []string{"allowed", "denied"}[seq%2], Prev: prev, Hash: h,
			Line: []byte(fmt.Sprintf(`{"seq":%d,"hash":"%s"}`, seq, h)),
		})
		prev = h
	}
	return out
}

func testAuditAppendScan(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.LastAudit(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("LastAudit of an empty chain: %v, want ErrNotFound", err)
	}
	a := chainOf("a", 1, "genesis", 3)
	b := chainOf("b", 10, "b-start", 2) // a chain may begin mid-trail
	if err := s.AppendAudit(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(ctx, b); err != nil {
		t.Fatal(err)
	}
	more := chainOf("a", 4, "a-3", 2)
	if err := s.AppendAudit(ctx, more); err != nil {
		t.Fatal(err)
	}
	last, err := s.LastAudit(ctx, "a")
	if err != nil || last.Seq != 5 || last.Hash != "a-5" || string(last.Line) != `{"seq":5,"hash":"a-5"}` {
		t.Fatalf("LastAudit = %+v, %v", last, err)
	}
	chains, err := s.AuditChains(ctx)
	if err != nil || !slices.Equal(chains, []string{"a", "b"}) {
		t.Fatalf("AuditChains = %v, %v", chains, err)
	}
	var seqs []uint64
	var rows []int64
	err = s.ScanAudit(ctx, "a", 0, func(r store.AuditRecord) (bool, error) {
		seqs = append(seqs, r.Seq)
		rows = append(rows, r.Row)
		if !r.Time.Equal(t0.Add(time.Duration(r.Seq) * time.Second)) {
			t.Errorf("record %d: time %v", r.Seq, r.Time)
		}
		return true, nil
	})
	if err != nil || !slices.Equal(seqs, []uint64{1, 2, 3, 4, 5}) {
		t.Fatalf("ScanAudit a = %v, %v", seqs, err)
	}
	if !slices.IsSorted(rows) {
		t.Errorf("rows not increasing: %v", rows)
	}
	// From a row on, and stopping early.
	var got []uint64
	err = s.ScanAudit(ctx, "a", rows[1], func(r store.AuditRecord) (bool, error) {
		got = append(got, r.Seq)
		return len(got) < 2, nil
	})
	if err != nil || !slices.Equal(got, []uint64{3, 4}) {
		t.Fatalf("ScanAudit after row %d, stopping after 2 = %v, %v", rows[1], got, err)
	}
	stop := errors.New("stop")
	if err := s.ScanAudit(ctx, "a", 0, func(store.AuditRecord) (bool, error) { return true, stop }); !errors.Is(err, stop) {
		t.Fatalf("ScanAudit returned %v, want fn's error", err)
	}
}

// A batch the size of a busy gateway's move, not a multiple of any insert size: every
// record once, in order, each with its own line.
func testAuditLargeBatch(t *testing.T, s store.Store) {
	ctx := context.Background()
	recs := chainOf("big", 1, "genesis", 151)
	if err := s.AppendAudit(ctx, recs[:1]); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(ctx, recs[1:]); err != nil {
		t.Fatal(err)
	}
	var n uint64
	err := s.ScanAudit(ctx, "big", 0, func(r store.AuditRecord) (bool, error) {
		n++
		if r.Seq != n || string(r.Line) != string(recs[n-1].Line) || r.Prev != recs[n-1].Prev {
			return false, fmt.Errorf("record %d: seq %d, prev %q, line %s", n, r.Seq, r.Prev, r.Line)
		}
		return true, nil
	})
	if err != nil || n != 151 {
		t.Fatalf("ScanAudit: %d records, %v; want 151", n, err)
	}
}

func testAuditConflict(t *testing.T, s store.Store) {
	ctx := context.Background()
	if err := s.AppendAudit(ctx, chainOf("a", 1, "g", 2)); err != nil {
		t.Fatal(err)
	}
	// A batch that does not follow a-2, as from a second process writing chain a.
	err := s.AppendAudit(ctx, chainOf("a", 2, "a-1", 2))
	if !errors.Is(err, store.ErrChainConflict) {
		t.Fatalf("AppendAudit out of line: %v, want ErrChainConflict", err)
	}
	// All or nothing: a batch whose second record breaks the chain stores nothing.
	bad := chainOf("a", 3, "a-2", 2)
	bad[1].Prev = "elsewhere"
	if err := s.AppendAudit(ctx, bad); !errors.Is(err, store.ErrChainConflict) {
		t.Fatalf("AppendAudit with a broken batch: %v", err)
	}
	if last, err := s.LastAudit(ctx, "a"); err != nil || last.Seq != 2 {
		t.Fatalf("after refused appends, last = %d, %v; want 2", last.Seq, err)
	}
	if err := s.AppendAudit(ctx, nil); err != nil {
		t.Fatalf("AppendAudit(nil) = %v", err)
	}
}

func testAuditSearch(t *testing.T, s store.Store) {
	ctx := context.Background()
	if err := s.AppendAudit(ctx, chainOf("a", 1, "g", 10)); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(ctx, chainOf("b", 1, "g", 4)); err != nil {
		t.Fatal(err)
	}
	seqs := func(rs []store.AuditRecord) []string {
		var out []string
		for _, r := range rs {
			out = append(out, fmt.Sprintf("%s%d", r.Chain, r.Seq))
		}
		return out
	}
	for _, tc := range []struct {
		name string
		q    store.AuditQuery
		want []string
	}{
		{"limit, newest first", store.AuditQuery{Limit: 3}, []string{"a10", "a9", "a8"}},
		{"chain", store.AuditQuery{Chain: "b"}, []string{"b4", "b3", "b2", "b1"}},
		{"principal and decision", store.AuditQuery{Chain: "a", Principal: "p1", Decision: "denied", Limit: 2}, []string{"a9", "a7"}},
		{"time window", store.AuditQuery{Chain: "a", Since: t0.Add(3 * time.Second), Until: t0.Add(5 * time.Second)}, []string{"a4", "a3"}},
		{"no match", store.AuditQuery{Tool: "other"}, nil},
	} {
		got, err := s.SearchAudit(ctx, tc.q)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !slices.Equal(seqs(got), tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, seqs(got), tc.want)
		}
	}
}
