package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	trail "github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/config"
	"github.com/portcullis-mcp/portcullis/internal/store"
)

// auditStore runs an audit subcommand over the trail kept in the store.
func auditStore(a *auditFlags, sub string, cfg *config.Config, stdout, stderr io.Writer) int {
	ctx := context.Background()
	st, where, err := openStore(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "portcullis audit %s: %v\n", sub, err)
		return 1
	}
	defer st.Close()
	switch sub {
	case "verify":
		return auditVerifyStore(ctx, a, st, where, stdout, stderr)
	case "search", "export", "tail":
	default:
		return 2
	}
	var format trail.Format
	if sub == "export" {
		if format, err = trail.FormatByName(*a.format); err != nil {
			fmt.Fprintf(stderr, "portcullis audit export: %v\n", err)
			return 2
		}
	}
	q := store.AuditQuery{Chain: *a.chain, Since: a.sinceT, Until: a.untilT, Principal: *a.principal, Server: *a.server,
		Tool: *a.tool, Method: *a.method, Decision: *a.decision, Code: *a.code, Limit: 10000}
	if sub == "tail" {
		q.Limit = *a.n
	}
	// Events acknowledged but still in a journal (moved into the store within 200 ms while
	// the gateway runs; at its next start after a crash) come last. The journals are read
	// first, then where each chain ends in the store, then the store: an event moved
	// meanwhile is in the store's answer (and not taken twice from its journal).
	journals := readJournals(ctx, st, where, *a.chain)
	ends := map[string]uint64{}
	for _, j := range journals {
		if r, err := st.LastAudit(ctx, j.chain); err == nil {
			ends[j.chain] = r.Seq
		}
	}
	recs, err := st.SearchAudit(ctx, q)
	if err != nil {
		fmt.Fprintf(stderr, "portcullis audit %s: %v\n", sub, err)
		return 1
	}
	slices.Reverse(recs) // oldest first, as in a file
	stored := map[string]map[uint64]bool{}
	for _, r := range recs {
		if stored[r.Chain] == nil {
			stored[r.Chain] = map[uint64]bool{}
		}
		stored[r.Chain][r.Seq] = true
	}
	for _, j := range journals {
		for _, en := range j.entries {
			e, err := trail.ParseLine(en.Raw)
			if err != nil || e.Seq <= ends[j.chain] || stored[j.chain][e.Seq] {
				continue
			}
			recs = append(recs, store.AuditRecord{Chain: j.chain, Seq: e.Seq, Time: e.Time, Code: e.Code, Principal: e.Principal,
				Server: e.Server, Method: e.Method, Tool: e.Tool, Decision: e.Decision, Prev: e.Prev, Hash: e.Hash, Line: en.Raw})
		}
	}
	if sub == "tail" && len(recs) > q.Limit {
		recs = recs[len(recs)-q.Limit:]
	}
	if sub == "search" && len(recs) == q.Limit {
		fmt.Fprintf(stderr, "portcullis audit search: showing the last %d events; narrow the filters to see older ones\n", q.Limit)
	}
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	emit := func(r store.AuditRecord) {
		e, err := trail.ParseLine(r.Line)
		if err != nil {
			fmt.Fprintf(stderr, "portcullis audit: chain %q row %d is not an event (run audit verify)\n", r.Chain, r.Row)
			return
		}
		if !a.match(e) { // the stored columns are copies: filter on the sealed line too
			return
		}
		if sub == "export" && *a.format != "json" && *a.format != "" {
			w.Write(format(nil, e))
			w.WriteByte('\n')
			return
		}
		a.print(w, e, r.Line)
	}
	last := map[string]int64{}
	for _, r := range recs {
		emit(r)
		if r.Row > 0 {
			last[r.Chain] = max(last[r.Chain], r.Row)
		}
	}
	if sub != "tail" || !*a.follow {
		return 0
	}
	w.Flush()
	// Follow: poll every chain for records stored after the last one printed.
	if len(recs) == 0 {
		for _, c := range mustChains(ctx, st, *a.chain) {
			if r, err := st.LastAudit(ctx, c); err == nil {
				last[c] = r.Row
			}
		}
	}
	shown := map[string]uint64{} // chain -> last seq printed from its journal
	for _, r := range recs {
		if r.Row == 0 {
			shown[r.Chain] = max(shown[r.Chain], r.Seq)
		}
	}
	for {
		time.Sleep(250 * time.Millisecond)
		for _, c := range mustChains(ctx, st, *a.chain) {
			st.ScanAudit(ctx, c, last[c], func(r store.AuditRecord) (bool, error) {
				if r.Seq > shown[c] { // not printed from the journal already
					emit(r)
				}
				last[c] = r.Row
				return true, nil
			})
		}
		w.Flush()
	}
}

// chainJournal is what one chain's journal held when it was read.
type chainJournal struct {
	chain   string
	entries []trail.Entry
	err     error
}

// readJournals reads the journal of every chain in the store (or of only), in chain order
// (none when the store is not a SQLite file). Read before the store, a journal holds
// every acknowledged event the store does not hold yet: a gateway empties its journal
// only once the store holds everything in it.
func readJournals(ctx context.Context, st store.AuditLog, where, only string) []chainJournal {
	var out []chainJournal
	for _, c := range mustChains(ctx, st, only) {
		if jp := trail.JournalPath(where, c); !fileExists(jp) && !fileExists(jp+".1") {
			continue
		}
		entries, err := trail.JournalTail(trail.JournalPath(where, c), trail.Position{})
		out = append(out, chainJournal{chain: c, entries: entries, err: err})
	}
	return out
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func mustChains(ctx context.Context, st store.AuditLog, only string) []string {
	if only != "" {
		return []string{only}
	}
	cs, _ := st.AuditChains(ctx)
	return cs
}

func auditVerifyStore(ctx context.Context, a *auditFlags, st store.AuditLog, where string, stdout, stderr io.Writer) int {
	// The chains go on in their journals (events not moved into the store yet). The
	// journals are read before the store: an event a gateway moves meanwhile is then in
	// the store's scan, or in the journal read before it.
	journals := readJournals(ctx, st, where, *a.chain)
	counts, ends, p, err := trail.VerifyStoreEnds(ctx, st, *a.chain)
	if err != nil {
		fmt.Fprintf(stderr, "portcullis audit verify: %v\n", err)
		return 1
	}
	journaled := 0
	for _, j := range journals {
		if _, ok := counts[j.chain]; !ok || p != nil {
			continue
		}
		if j.err != nil {
			fmt.Fprintf(stderr, "portcullis audit verify: %v\n", j.err)
			return 1
		}
		c, after := j.chain, ends[j.chain]
		for _, en := range j.entries {
			claimed, ok := trail.LineHash(en.Raw)
			e, perr := trail.ParseLine(en.Raw)
			if perr == nil && e.Seq <= after.Seq {
				continue // in the store, verified there
			}
			switch {
			case !ok || perr != nil:
				p = &trail.Problem{Kind: "altered", File: en.File, Line: en.Line, Msg: "its content does not match its hash (the event was edited)"}
			case e.Seq != after.Seq+1 || (after.Hash != "" && e.Prev != after.Hash):
				p = &trail.Problem{Kind: "removed", File: en.File, Line: en.Line, Seq: e.Seq,
					Msg: fmt.Sprintf("it does not follow event %d, the end of chain %q in the store", after.Seq, c)}
			}
			if p != nil {
				break
			}
			after = trail.Position{Seq: e.Seq, Hash: claimed}
			counts[c]++
			journaled++
		}
	}
	total := 0
	for _, n := range counts {
		total += n
	}
	if *a.jsonOut {
		out := map[string]any{"ok": p == nil, "store": where, "chains": counts, "events": total}
		if p != nil {
			out["problem"] = map[string]any{"kind": p.Kind, "chain": p.File, "row": p.Line, "seq": p.Seq, "message": p.Msg}
		}
		json.NewEncoder(stdout).Encode(out)
	} else if p == nil {
		fmt.Fprintf(stdout, "ok: %d events in %d chains of %s verify", total, len(counts), where)
		if journaled > 0 {
			fmt.Fprintf(stdout, " (%d of them in journals, not yet moved into the store)", journaled)
		}
		fmt.Fprintln(stdout)
	} else {
		fmt.Fprintf(stdout, "FAILED: %v\n", p)
	}
	if p != nil {
		return 1
	}
	return 0
}
