package dashboard

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/pins"
	"github.com/portcullis-mcp/portcullis/internal/store"
	"github.com/portcullis-mcp/portcullis/web"
)

var funcs = template.FuncMap{
	"time": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"timep": func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"short":  pins.Short,
	"pretty": pretty,
	"ms": func(us int64) string {
		if us == 0 {
			return ""
		}
		return fmt.Sprintf("%.1f ms", float64(us)/1000)
	},
	"difflines": func(d string) []diffLine {
		var out []diffLine
		for _, l := range strings.Split(strings.TrimSuffix(d, "\n"), "\n") {
			c := "same"
			switch {
			case strings.HasPrefix(l, "+"):
				c = "add"
			case strings.HasPrefix(l, "-"):
				c = "del"
			}
			out = append(out, diffLine{c, l})
		}
		return out
	},
}

type diffLine struct{ Class, Text string }

// pretty indents JSON for reading (the exact bytes otherwise, when it is not JSON).
func pretty(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return string(b)
	}
	return out.String()
}

func parsePages() (map[string]*template.Template, error) {
	layout, err := fs.ReadFile(web.Templates, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(web.Templates, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(path.Base(n), ".html")
		if name == "layout" {
			continue
		}
		body, err := fs.ReadFile(web.Templates, n)
		if err != nil {
			return nil, err
		}
		t, err := template.New("layout").Funcs(funcs).Parse(string(layout))
		if err == nil {
			_, err = t.New(name).Parse(string(body))
		}
		if err != nil {
			return nil, fmt.Errorf("dashboard: template %s: %w", n, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// render writes page name inside the layout, with the session's user, role and CSRF token.
func (s *Server) render(w http.ResponseWriter, r *http.Request, name string, data map[string]any) {
	s.renderStatus(w, r, name, data, http.StatusOK)
}

// renderStatus is render with an HTTP status.
func (s *Server) renderStatus(w http.ResponseWriter, r *http.Request, name string, data map[string]any, status int) {
	if data == nil {
		data = map[string]any{}
	}
	data["Page"] = name
	data["AuditOn"] = s.recorder() != nil
	if sess := sessionOf(r.Context()); sess != nil {
		data["User"] = sess.p.ID
		role := roleOf(r.Context())
		data["Role"] = role.String()
		data["CSRF"] = sess.csrf
		data["CanApprove"] = role >= RoleApprover
		data["CanAdmin"] = role >= RoleAdmin
		if f := s.sess.takeFlash(sess); f != "" {
			data["Flash"] = f
		}
	}
	var buf bytes.Buffer
	if err := s.pages[name].ExecuteTemplate(&buf, "layout", data); err != nil {
		s.log.Error("rendering a dashboard page", "page", name, "err", err)
		http.Error(w, "dashboard: could not render the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func (s *Server) fail(w http.ResponseWriter, what string, err error) {
	s.log.Error("dashboard: "+what, "err", err)
	http.Error(w, "dashboard: "+what+": "+err.Error(), http.StatusInternalServerError)
}

// row is one audit event as the views show it.
type row struct {
	audit.Event
	Chain string
	Line  string
}

// rowsOf parses stored events; withLine keeps each one's indented JSON (the audit view
// shows it).
func rowsOf(recs []store.AuditRecord, withLine bool) []row {
	out := make([]row, 0, len(recs))
	for _, rc := range recs {
		e, err := audit.ParseLine(rc.Line)
		if err != nil {
			e = &audit.Event{Time: rc.Time, Seq: rc.Seq, Code: rc.Code, Principal: rc.Principal, Server: rc.Server,
				Method: rc.Method, Tool: rc.Tool, Decision: rc.Decision, Message: "(unreadable event: " + err.Error() + ")"}
		}
		rw := row{Event: *e, Chain: rc.Chain}
		if withLine {
			rw.Line = pretty(rc.Line)
		}
		out = append(out, rw)
	}
	return out
}

func (s *Server) live(w http.ResponseWriter, r *http.Request) {
	recs, err := s.o.Store.SearchAudit(r.Context(), store.AuditQuery{Limit: 50})
	if err != nil {
		s.fail(w, "reading the audit trail", err)
		return
	}
	s.render(w, r, "live", map[string]any{"Rows": rowsOf(recs, false)})
}

func (s *Server) approvals(w http.ResponseWriter, r *http.Request) {
	pending, err := s.o.Store.ListApprovals(r.Context(), store.ApprovalPending, 500)
	if err != nil {
		s.fail(w, "reading approvals", err)
		return
	}
	all, err := s.o.Store.ListApprovals(r.Context(), "", 100)
	if err != nil {
		s.fail(w, "reading approvals", err)
		return
	}
	var settled []store.Approval
	for _, a := range all {
		if a.Status != store.ApprovalPending {
			settled = append(settled, a)
		}
	}
	s.render(w, r, "approvals", map[string]any{"Pending": pending, "Settled": settled, "Now": s.o.Now()})
}

// pendingIDs lists the pending approvals' ids (JSON), for the approvals page's script to
// say when new calls are waiting.
func (s *Server) pendingIDs(w http.ResponseWriter, r *http.Request) {
	pending, err := s.o.Store.ListApprovals(r.Context(), store.ApprovalPending, 500)
	if err != nil {
		s.fail(w, "reading approvals", err)
		return
	}
	ids := make([]string, 0, len(pending))
	for _, a := range pending {
		ids = append(ids, a.ID)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"pending": ids})
}

// alerts are refusals, findings and refused logins or actions of the last week (the
// newest 200).
func (s *Server) alerts(w http.ResponseWriter, r *http.Request) {
	recs, err := s.o.Store.SearchAudit(r.Context(), store.AuditQuery{Since: s.o.Now().Add(-7 * 24 * time.Hour), Limit: 5000})
	if err != nil {
		s.fail(w, "reading the audit trail", err)
		return
	}
	var out []row
	for _, rw := range rowsOf(recs, false) {
		if len(rw.Findings) > 0 || rw.Decision == audit.Denied || strings.HasSuffix(rw.Code, "W") || strings.HasSuffix(rw.Code, "E") || strings.HasSuffix(rw.Code, "A") {
			out = append(out, rw)
			if len(out) == 200 {
				break
			}
		}
	}
	s.render(w, r, "alerts", map[string]any{"Rows": out})
}

type serverView struct {
	ServerInfo
	Pins    []pinView
	Blocked int
}

type pinView struct {
	pins.Entry
	Diff string
}

func (s *Server) servers(w http.ResponseWriter, r *http.Request) {
	es, err := pins.List(r.Context(), s.o.Store, "")
	if err != nil {
		s.fail(w, "reading pins", err)
		return
	}
	var views []*serverView
	byName := map[string]*serverView{}
	for _, si := range s.o.Servers {
		v := &serverView{ServerInfo: si}
		views = append(views, v)
		byName[si.Name] = v
	}
	for _, e := range es {
		v := byName[e.Server]
		if v == nil { // pins of a server no longer configured
			v = &serverView{ServerInfo: ServerInfo{Name: e.Server, Transport: "not configured"}}
			views = append(views, v)
			byName[e.Server] = v
		}
		v.Pins = append(v.Pins, pinView{Entry: e, Diff: pins.DiffOf(e)})
		if e.Blocked() {
			v.Blocked++
		}
	}
	s.render(w, r, "servers", map[string]any{"Servers": views})
}
