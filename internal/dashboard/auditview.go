package dashboard

import (
	"context"
	"encoding/csv"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/store"
)

// query reads the audit search form: principal, server, tool, method, decision, code,
// since and until (RFC 3339, or the browser's datetime-local, taken as UTC), limit.
func query(v url.Values, defLimit int) (store.AuditQuery, error) {
	q := store.AuditQuery{Principal: v.Get("principal"), Server: v.Get("server"), Tool: v.Get("tool"), Method: v.Get("method"),
		Decision: v.Get("decision"), Code: strings.ToUpper(v.Get("code")), Limit: defLimit}
	var err error
	if q.Since, err = when(v.Get("since")); err != nil {
		return q, fmt.Errorf("since: %w", err)
	}
	if q.Until, err = when(v.Get("until")); err != nil {
		return q, fmt.Errorf("until: %w", err)
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 10000 {
			return q, fmt.Errorf("limit: %q is not a number from 1 to 10000", l)
		}
		q.Limit = n
	}
	return q, nil
}

func when(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time (2026-12-03T08:00:00Z, or 2026-12-03T08:00 in UTC)", s)
}

func (s *Server) auditSearch(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q, err := query(v, 100)
	data := map[string]any{"Q": v, "Rows": []row{}}
	for _, f := range []string{"jsonl", "csv"} {
		ev := url.Values{"format": {f}}
		for _, k := range []string{"principal", "server", "tool", "method", "decision", "code", "since", "until", "limit"} {
			if x := v.Get(k); x != "" {
				ev.Set(k, x)
			}
		}
		// Built here from encoded values: a relative URL of the dashboard's own.
		data["Export_"+f] = template.URL("/audit/export?" + ev.Encode())
	}
	if err != nil {
		data["Error"] = err.Error()
		s.renderStatus(w, r, "audit", data, http.StatusBadRequest)
		return
	}
	recs, err := s.o.Store.SearchAudit(r.Context(), q)
	if err != nil {
		s.fail(w, "searching the audit trail", err)
		return
	}
	data["Rows"] = rowsOf(recs, true)
	data["Searched"] = len(v) > 0
	s.render(w, r, "audit", data)
}

// auditExport downloads what a search selects (up to 10000 events, newest first) as
// JSONL (the canonical lines, which `portcullis audit verify` can check) or CSV. Exports
// are audited like actions.
func (s *Server) auditExport(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q, err := query(v, 10000)
	if err != nil {
		http.Error(w, "dashboard: "+err.Error(), http.StatusBadRequest)
		return
	}
	format := v.Get("format")
	if format != "jsonl" && format != "csv" {
		http.Error(w, "dashboard: format must be jsonl or csv", http.StatusBadRequest)
		return
	}
	rec := s.recorder()
	if rec == nil {
		http.Error(w, "dashboard: the audit trail is off, so the export cannot be recorded", http.StatusServiceUnavailable)
		return
	}
	sess := sessionOf(r.Context())
	v.Del("format")
	ev := &audit.Event{Code: audit.CodeAdminAction, Kind: audit.KindAdmin, Principal: sess.p.ID, AuthMethod: sess.p.Method,
		Method: "dashboard/export", Tool: "audit", Message: fmt.Sprintf("export %s of the audit trail where %s (from %s)", format, v.Encode(), r.RemoteAddr)}
	if err := rec.Record(context.WithoutCancel(r.Context()), ev); err != nil {
		http.Error(w, "dashboard: the export could not be recorded in the audit trail, so it was refused", http.StatusServiceUnavailable)
		return
	}
	recs, err := s.o.Store.SearchAudit(r.Context(), q)
	if err != nil {
		s.fail(w, "searching the audit trail", err)
		return
	}
	name := "portcullis-audit-" + s.o.Now().UTC().Format("20060102T150405Z") + "." + format
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	if format == "jsonl" {
		w.Header().Set("Content-Type", "application/jsonl")
		for _, rc := range recs {
			w.Write(rc.Line)
			w.Write([]byte("\n"))
		}
	} else {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		cw := csv.NewWriter(w)
		cw.Write([]string{"time", "chain", "seq", "code", "kind", "decision", "principal", "server", "method", "tool", "guard", "error_code", "latency_us", "findings", "message", "incident", "hash"})
		for _, rw := range rowsOf(recs, false) {
			cw.Write([]string{rw.Time.UTC().Format(time.RFC3339Nano), rw.Chain, strconv.FormatUint(rw.Seq, 10), rw.Code, rw.Kind, rw.Decision,
				csvSafe(rw.Principal), csvSafe(rw.Server), csvSafe(rw.Method), csvSafe(rw.Tool), rw.Guard, strconv.Itoa(rw.ErrorCode),
				strconv.FormatInt(rw.LatencyMicros, 10), strconv.Itoa(len(rw.Findings)), csvSafe(rw.Message), rw.Incident, rw.Hash})
		}
		cw.Flush()
	}
	out := &audit.Event{Code: audit.CodeAdminDone, Kind: audit.KindAdmin, Decision: audit.Allowed, Principal: sess.p.ID, AuthMethod: sess.p.Method,
		Method: ev.Method, Tool: "audit", Call: ev.ID, Message: fmt.Sprintf("exported %d events as %s", len(recs), format)}
	if err := rec.Record(context.WithoutCancel(r.Context()), out); err != nil {
		s.log.Error("could not record the end of an audit export", "err", err)
	}
}

// csvSafe keeps a spreadsheet from reading a cell a client chose (a tool name, a
// principal) as a formula.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
