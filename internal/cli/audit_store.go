package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
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
	recs, err := st.SearchAudit(ctx, q)
	if err != nil {
		fmt.Fprintf(stderr, "portcullis audit %s: %v\n", sub, err)
		return 1
	}
	slices.Reverse(recs) // oldest first, as in a file
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
		last[r.Chain] = max(last[r.Chain], r.Row)
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
	for {
		time.Sleep(250 * time.Millisecond)
		for _, c := range mustChains(ctx, st, *a.chain) {
			st.ScanAudit(ctx, c, last[c], func(r store.AuditRecord) (bool, error) {
				emit(r)
				last[c] = r.Row
				return true, nil
			})
		}
		w.Flush()
	}
}

func mustChains(ctx context.Context, st store.AuditLog, only string) []string {
	if only != "" {
		return []string{only}
	}
	cs, _ := st.AuditChains(ctx)
	return cs
}

func auditVerifyStore(ctx context.Context, a *auditFlags, st store.AuditLog, where string, stdout, stderr io.Writer) int {
	counts, p, err := trail.VerifyStore(ctx, st, *a.chain)
	if err != nil {
		fmt.Fprintf(stderr, "portcullis audit verify: %v\n", err)
		return 1
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
		fmt.Fprintf(stdout, "ok: %d events in %d chains of %s verify\n", total, len(counts), where)
	} else {
		fmt.Fprintf(stdout, "FAILED: %v\n", p)
	}
	if p != nil {
		return 1
	}
	return 0
}
