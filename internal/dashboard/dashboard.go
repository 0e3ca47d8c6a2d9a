// Package dashboard is the gateway's web dashboard, served by `portcullis serve` on the
// admin listener: a live feed of calls and decisions, the approvals queue, alerts and
// findings, servers with their pinned tool definitions, audit search and export, and a
// summary. Pages are rendered on the server (html/template, assets embedded from package
// web); a small script adds live updates (server-sent events) and in-place buttons.
//
// Security: people log in with an API key from the store or by OpenID Connect single
// sign-on; their groups give a role (viewer, approver, admin) through the admin.roles map,
// worked out again on every request. Sessions are random ids in a
// Secure, HttpOnly, SameSite=Strict cookie; every form carries the session's CSRF token and
// cross-origin requests that change state are refused; responses carry a strict
// Content-Security-Policy. Every action, and every refused one, is an audit event naming
// the acting person, recorded before the action is carried out: an action that cannot be
// recorded is not carried out.
package dashboard

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/config"
	"github.com/portcullis-mcp/portcullis/internal/identity"
	"github.com/portcullis-mcp/portcullis/internal/store"
	"github.com/portcullis-mcp/portcullis/web"
)

// Recorder is the audit trail as the dashboard uses it: actions are recorded, and the
// live feed subscribes to what is recorded (an *audit.Broker).
type Recorder interface {
	Record(ctx context.Context, e *audit.Event) error
	Subscribe(n int) *audit.Subscription
}

// KeyVerifier checks an API key (an *identity.APIKeys).
type KeyVerifier interface {
	Verify(ctx context.Context, token string) (identity.Principal, error)
}

// ServerInfo is one configured upstream server, as the servers view shows it.
type ServerInfo struct {
	Name      string
	Transport string // stdio, streamable-http or sse
	Target    string // the command, or the URL
}

// Options configure a dashboard.
type Options struct {
	Store store.Store
	Keys  KeyVerifier
	// Audit returns the process's audit broker (nil when audit is off: the dashboard then
	// shows no live feed and carries out no action, since none could be recorded).
	Audit      func() Recorder
	Roles      config.Roles
	SessionTTL time.Duration // default 8h
	Servers    []ServerInfo
	// Listen is the listener's address; with AllowedHosts it bounds the Host header
	// (against DNS rebinding).
	Listen       string
	AllowedHosts []string
	Logger       *slog.Logger
	Now          func() time.Time
	// FleetFeed, when set, makes the live feed show what every process sharing the store
	// records (the replicas of a fleet), read from the store this often, instead of only
	// what this process records.
	FleetFeed time.Duration
	// OIDC enables single sign-on besides API keys; nil: API keys only.
	OIDC *OIDCOptions
}

// Server is the dashboard's HTTP handler.
type Server struct {
	o     Options
	mux   *http.ServeMux
	pages map[string]*template.Template
	csrf  *http.CrossOriginProtection
	sess  *sessions
	oidc  *oidcLogin // nil without single sign-on
	role  atomic.Pointer[config.Roles]

	fails     failures // failed logins per address
	keyMu     sync.Mutex
	keyChecks map[string]keyCheck // API key id -> still valid, until
	done      chan struct{}
	stop      sync.Once
	log       *slog.Logger
}

// New returns the dashboard.
func New(o Options) (*Server, error) {
	if o.Store == nil || o.Keys == nil {
		return nil, errors.New("dashboard: a store and a key verifier are required")
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = 8 * time.Hour
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Audit == nil {
		o.Audit = func() Recorder { return nil }
	}
	s := &Server{o: o, mux: http.NewServeMux(), done: make(chan struct{}), log: o.Logger.With("component", "dashboard")}
	s.sess = newSessions(o.SessionTTL, o.Now)
	s.keyChecks = map[string]keyCheck{}
	s.SetRoles(o.Roles)
	if o.OIDC != nil {
		s.oidc = &oidcLogin{o: *o.OIDC, pending: map[string]oidcPending{}}
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	s.pages = pages
	s.csrf = http.NewCrossOriginProtection()
	s.csrf.SetDenyHandler(http.HandlerFunc(s.crossOrigin))
	s.routes()
	return s, nil
}

// SetRoles replaces the groups of each role (a configuration reload). It applies to the
// next request of every session: a person whose groups lost their role is logged out.
func (s *Server) SetRoles(r config.Roles) { s.role.Store(&r) }

func (s *Server) roles() config.Roles { return *s.role.Load() }

// Close ends the live feeds (server shutdown waits for open streams otherwise).
func (s *Server) Close() { s.stop.Do(func() { close(s.done) }) }

func (s *Server) routes() {
	static, _ := fs.Sub(web.Static, "static")
	fileServer := http.StripPrefix("/static/", http.FileServerFS(static))
	s.mux.Handle("GET /static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		fileServer.ServeHTTP(w, r)
	}))
	s.mux.HandleFunc("GET /login", s.loginPage)
	s.mux.HandleFunc("POST /login", s.login)
	if s.oidc != nil {
		s.mux.HandleFunc("GET /login/oidc", s.oidcStart)
		s.mux.HandleFunc("GET /login/oidc/callback", s.oidcCallback)
	}
	s.mux.Handle("POST /logout", s.need(RoleViewer, s.logout))
	s.mux.Handle("GET /{$}", s.need(RoleViewer, s.summary))
	s.mux.Handle("GET /live", s.need(RoleViewer, s.live))
	s.mux.Handle("GET /live/events", s.need(RoleViewer, s.liveEvents))
	s.mux.Handle("GET /approvals", s.need(RoleViewer, s.approvals))
	s.mux.Handle("GET /approvals/pending", s.need(RoleViewer, s.pendingIDs))
	s.mux.Handle("POST /approvals/{id}/{decision}", s.need(RoleApprover, s.settle))
	s.mux.Handle("GET /alerts", s.need(RoleViewer, s.alerts))
	s.mux.Handle("GET /servers", s.need(RoleViewer, s.servers))
	s.mux.Handle("POST /servers/approve", s.need(RoleAdmin, s.approvePin))
	s.mux.Handle("GET /audit", s.need(RoleViewer, s.auditSearch))
	s.mux.Handle("GET /audit/export", s.need(RoleViewer, s.auditExport))
}

// csp allows the dashboard's own script, styles and requests only: no inline script or
// style, no framing, forms posting only to itself.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	if r.TLS != nil {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	if !s.hostAllowed(r.Host) {
		http.Error(w, "dashboard: this Host is not allowed (add it to admin.allowed_hosts)", http.StatusMisdirectedRequest)
		return
	}
	// Requests that change state must come from the dashboard's own pages: browsers say
	// where a request comes from (Sec-Fetch-Site, Origin); a cross-site form post is
	// refused here, before any handler. The per-session token is checked as well.
	if err := s.csrf.Check(r); err != nil {
		s.crossOrigin(w, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// hostAllowed accepts the listen address's host, loopback names when it listens on
// loopback, and admin.allowed_hosts.
func (s *Server) hostAllowed(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if lh, _, err := net.SplitHostPort(s.o.Listen); err == nil && lh != "" && strings.EqualFold(strings.Trim(lh, "[]"), host) {
		return true
	}
	if config.LoopbackAddr(s.o.Listen) && config.LoopbackAddr(host) {
		return true
	}
	return slices.ContainsFunc(s.o.AllowedHosts, func(a string) bool { return strings.EqualFold(a, host) })
}

// crossOrigin refuses a request that changes state and comes from another site.
func (s *Server) crossOrigin(w http.ResponseWriter, r *http.Request) {
	sess := s.sess.from(r)
	s.refused(r, sess, "cross-origin request refused", fmt.Sprintf("%s %s from origin %q (Sec-Fetch-Site %q)", r.Method, r.URL.Path, r.Header.Get("Origin"), r.Header.Get("Sec-Fetch-Site")))
	http.Error(w, "dashboard: cross-origin request refused", http.StatusForbidden)
}

// recorder returns the audit trail, or nil.
func (s *Server) recorder() Recorder { return s.o.Audit() }

// refused records a refused action (best effort: the request is refused either way).
func (s *Server) refused(r *http.Request, sess *session, what, detail string) {
	rec := s.recorder()
	if rec == nil {
		return
	}
	e := &audit.Event{Code: audit.CodeAdminRefused, Kind: audit.KindAdmin, Decision: audit.Denied,
		Method: "dashboard", Tool: r.URL.Path, Message: what + ": " + detail + " (from " + r.RemoteAddr + ")"}
	if sess != nil {
		e.Principal, e.AuthMethod = sess.p.ID, sess.p.Method
	}
	if err := rec.Record(context.WithoutCancel(r.Context()), e); err != nil {
		s.log.Error("could not record a refused dashboard request in the audit trail", "err", err)
	}
}
