package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/pins"
	"github.com/portcullis-mcp/portcullis/internal/store"
)

// errRefused is an action refused for a reason the person can act on (HTTP 409).
type errRefused struct{ msg string }

func (e *errRefused) Error() string { return e.msg }

func refuse(format string, args ...any) error { return &errRefused{fmt.Sprintf(format, args...)} }

// act carries out an action for the session's person: it records the action before
// (PC9101I; when that fails the action is not carried out), runs do, records the outcome
// (PC9102I, or PC9103W when do failed), and answers: JSON for the page's script, else a
// redirect back to back with the outcome shown there.
func (s *Server) act(w http.ResponseWriter, r *http.Request, action, target, back string, do func(ctx context.Context) (string, error)) {
	sess := sessionOf(r.Context())
	ctx := context.WithoutCancel(r.Context())
	rec := s.recorder()
	answer := func(status int, msg string) {
		if strings.Contains(r.Header.Get("Accept"), "application/json") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(map[string]any{"ok": status == http.StatusOK, "message": msg})
			return
		}
		s.sess.setFlash(sess, msg)
		http.Redirect(w, r, back, http.StatusSeeOther)
	}
	if rec == nil {
		answer(http.StatusServiceUnavailable, "The audit trail is off, so no action can be recorded or carried out: enable guards.audit.")
		return
	}
	ev := &audit.Event{Code: audit.CodeAdminAction, Kind: audit.KindAdmin, Principal: sess.p.ID, AuthMethod: sess.p.Method,
		Method: "dashboard/" + action, Tool: target, Message: fmt.Sprintf("%s %s as %s (from %s)", action, target, roleOf(r.Context()), r.RemoteAddr)}
	if err := rec.Record(ctx, ev); err != nil {
		s.log.Error("could not record a dashboard action; not carried out", "action", action, "err", err)
		answer(http.StatusServiceUnavailable, "The action could not be recorded in the audit trail, so it was not carried out.")
		return
	}
	msg, err := do(ctx)
	out := &audit.Event{Code: audit.CodeAdminDone, Kind: audit.KindAdmin, Decision: audit.Allowed, Principal: sess.p.ID,
		AuthMethod: sess.p.Method, Method: ev.Method, Tool: target, Call: ev.ID, Message: msg}
	status := http.StatusOK
	if err != nil {
		out.Code, out.Decision, out.Message = audit.CodeAdminRefused, audit.Denied, err.Error()
		msg = err.Error()
		status = http.StatusConflict
		var ref *errRefused
		if !errors.As(err, &ref) && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrNotPending) && !errors.Is(err, store.ErrConflict) {
			status = http.StatusInternalServerError
			out.Decision = audit.Failed
			s.log.Error("dashboard action failed", "action", action, "target", target, "err", err)
		}
	}
	if rerr := rec.Record(ctx, out); rerr != nil {
		s.log.Error("could not record the outcome of a dashboard action", "action", action, "err", rerr)
	}
	answer(status, msg)
}

// settle approves or denies a held call: through the store, which every gateway holding
// the call watches.
func (s *Server) settle(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	id, decision := r.PathValue("id"), r.PathValue("decision")
	if decision != "approve" && decision != "deny" {
		http.NotFound(w, r)
		return
	}
	sess := sessionOf(r.Context())
	note := strings.TrimSpace(r.PostFormValue("note"))
	if len(note) > 1000 {
		note = note[:1000]
	}
	scope := r.PostFormValue("scope")
	s.act(w, r, decision, "approval "+id, "/approvals", func(ctx context.Context) (string, error) {
		a, err := s.o.Store.GetApproval(ctx, id)
		if err != nil {
			return "", fmt.Errorf("approval %s: %w", id, err)
		}
		if decision == "approve" {
			if a.Principal == sess.p.ID && a.PrincipalMethod == sess.p.Method {
				return "", refuse("you may not approve your own call (%s %s): another person must", a.Method, a.Tool)
			}
			if len(a.Approvers) > 0 && !slices.ContainsFunc(sess.p.Groups, func(g string) bool { return slices.Contains(a.Approvers, g) }) {
				return "", refuse("this call needs an approver from %s; your groups are %v", strings.Join(a.Approvers, ", "), sess.p.Groups)
			}
		}
		now := s.o.Now().UTC()
		d := store.ApprovalDecision{Status: store.ApprovalDenied, Approver: sess.p.ID, Via: "dashboard", Note: note, At: now}
		if decision == "approve" {
			d.Status = store.ApprovalApproved
			switch scope {
			case "", store.ScopeOnce:
				d.Scope = store.ScopeOnce
			case store.ScopeSession:
				d.Scope = store.ScopeSession
			case "hour":
				d.Scope = store.ScopeDuration
				until := now.Add(time.Hour)
				d.GrantUntil = &until
			default:
				return "", refuse("unknown scope %q (once, session or hour)", scope)
			}
		}
		got, err := s.o.Store.SettleApproval(ctx, id, d)
		if errors.Is(err, store.ErrNotPending) {
			return "", fmt.Errorf("approval %s was already settled: %s by %s via %s: %w", id, got.Status, orNobody(got.Approver), got.Via, err)
		}
		if err != nil {
			return "", fmt.Errorf("settling approval %s: %w", id, err)
		}
		return fmt.Sprintf("%s: %s %s on %s for %s (scope %s)", got.Status, got.Method, got.Tool, got.Server, got.Principal, orOnce(got.Scope, got.Status)), nil
	})
}

func orNobody(s string) string {
	if s == "" {
		return "nobody"
	}
	return s
}

func orOnce(scope, status string) string {
	if status != store.ApprovalApproved {
		return "none"
	}
	return scope
}

// approvePin approves the pending definition of a tool, prompt or resource template: the
// one whose hash the person reviewed.
func (s *Server) approvePin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	server, kind, name, hash := r.PostFormValue("server"), r.PostFormValue("kind"), r.PostFormValue("name"), r.PostFormValue("hash")
	sess := sessionOf(r.Context())
	s.act(w, r, "approve-pin", fmt.Sprintf("%s %s/%s %s", kind, server, name, pins.Short(hash)), "/servers", func(ctx context.Context) (string, error) {
		if hash == "" {
			return "", refuse("the form names no definition hash: reload the page and review the change")
		}
		e, err := pins.Approve(ctx, s.o.Store, server, kind, name, hash, sess.p.ID)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("approved: %s %q of %s is pinned to %s", e.Kind, e.Name, e.Server, pins.Short(e.Hash)), nil
	})
}
