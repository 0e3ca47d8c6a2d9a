package dashboard

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/config"
	"github.com/portcullis-mcp/portcullis/internal/identity"
	"github.com/portcullis-mcp/portcullis/internal/store"
)

// Role is what a person may do on the dashboard; each role includes the ones below it.
type Role int

const (
	RoleNone     Role = iota
	RoleViewer        // reads every view
	RoleApprover      // also settles held calls
	RoleAdmin         // also approves changed tool definitions
)

func (r Role) String() string {
	switch r {
	case RoleViewer:
		return "viewer"
	case RoleApprover:
		return "approver"
	case RoleAdmin:
		return "admin"
	}
	return "none"
}

// RoleOf returns the highest role any of groups has in roles.
func RoleOf(roles config.Roles, groups []string) Role {
	has := func(gs []string) bool {
		return slices.ContainsFunc(groups, func(g string) bool { return slices.Contains(gs, g) })
	}
	switch {
	case has(roles.Admin):
		return RoleAdmin
	case has(roles.Approver):
		return RoleApprover
	case has(roles.Viewer):
		return RoleViewer
	}
	return RoleNone
}

const (
	sessionCookie = "__Host-portcullis-session"
	loginCookie   = "__Host-portcullis-login" // binds the login form's CSRF token to the browser
	maxSessions   = 10000
)

// session is one person logged in.
type session struct {
	id      string
	p       identity.Principal
	csrf    string
	expires time.Time
	flash   string // a message for the next page (after an action without script)
}

type sessions struct {
	ttl time.Duration
	now func() time.Time
	key []byte // signs login-form tokens

	mu sync.Mutex
	m  map[string]*session
}

func newSessions(ttl time.Duration, now func() time.Time) *sessions {
	return &sessions{ttl: ttl, now: now, key: []byte(random()), m: map[string]*session{}}
}

func random() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (ss *sessions) create(p identity.Principal) *session {
	s := &session{id: random(), p: p, csrf: random(), expires: ss.now().Add(ss.ttl)}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if len(ss.m) >= maxSessions {
		now := ss.now()
		for id, o := range ss.m {
			if now.After(o.expires) {
				delete(ss.m, id)
			}
		}
		if len(ss.m) >= maxSessions { // still full: the oldest login goes
			var oldest *session
			for _, o := range ss.m {
				if oldest == nil || o.expires.Before(oldest.expires) {
					oldest = o
				}
			}
			delete(ss.m, oldest.id)
		}
	}
	ss.m[s.id] = s
	return s
}

// from returns the request's live session, or nil.
func (ss *sessions) from(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.m[c.Value]
	if s == nil {
		return nil
	}
	if ss.now().After(s.expires) {
		delete(ss.m, s.id)
		return nil
	}
	return s
}

func (ss *sessions) setFlash(s *session, msg string) {
	ss.mu.Lock()
	s.flash = msg
	ss.mu.Unlock()
}

func (ss *sessions) takeFlash(s *session) string {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	f := s.flash
	s.flash = ""
	return f
}

func (ss *sessions) drop(id string) {
	ss.mu.Lock()
	delete(ss.m, id)
	ss.mu.Unlock()
}

// loginToken is the login form's CSRF token for the browser's login cookie.
func (ss *sessions) loginToken(cookie string) string {
	m := hmac.New(sha256.New, ss.key)
	m.Write([]byte(cookie))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func cookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode}
}

type ctxKey struct{}

// current is the request's session and the role its person has now.
type current struct {
	s    *session
	role Role
}

func sessionOf(ctx context.Context) *session {
	c, _ := ctx.Value(ctxKey{}).(current)
	return c.s
}

func roleOf(ctx context.Context) Role {
	c, _ := ctx.Value(ctxKey{}).(current)
	return c.role
}

// stillValid reports whether the credential behind a session still holds: an API key
// revoked since the login ends its sessions (checked at most every few seconds per key).
func (s *Server) stillValid(ctx context.Context, sess *session) bool {
	if sess.p.Method != "apikey" {
		return true
	}
	id, _ := sess.p.Claims["key_id"].(string)
	now := s.o.Now()
	s.keyMu.Lock()
	c, ok := s.keyChecks[id]
	s.keyMu.Unlock()
	if ok && now.Before(c.until) {
		return c.valid
	}
	k, err := s.o.Store.LookupKey(ctx, id)
	valid := err == nil && !k.Revoked()
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Error("dashboard: checking a session's API key", "key_id", id, "err", err)
		return false // fail closed; the next request checks again
	}
	s.keyMu.Lock()
	if len(s.keyChecks) > maxSessions {
		clear(s.keyChecks)
	}
	s.keyChecks[id] = keyCheck{valid: valid, until: now.Add(5 * time.Second)}
	s.keyMu.Unlock()
	return valid
}

type keyCheck struct {
	valid bool
	until time.Time
}

// need serves h to a logged-in person with at least role min. Pages send others to the
// login page; actions are refused (401 without a session, 403 without the role or without
// the session's CSRF token), and refused actions are audited.
func (s *Server) need(min Role, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess := s.sess.from(r)
		unsafe := r.Method != http.MethodGet && r.Method != http.MethodHead
		role := RoleNone
		if sess != nil {
			// The role comes from the configuration as it is now (a reload can take it
			// away), and the credential must still be valid.
			role = RoleOf(s.roles(), sess.p.Groups)
			if role == RoleNone || !s.stillValid(r.Context(), sess) {
				s.sess.drop(sess.id)
				sess = nil
			}
		}
		if sess == nil {
			if unsafe {
				s.refused(r, nil, "not logged in", r.Method+" "+r.URL.Path)
				http.Error(w, "dashboard: log in first", http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		if unsafe {
			tok := r.Header.Get("X-CSRF-Token")
			if tok == "" {
				tok = r.PostFormValue("csrf")
			}
			if subtle.ConstantTimeCompare([]byte(tok), []byte(sess.csrf)) != 1 {
				s.refused(r, sess, "missing or wrong CSRF token", r.Method+" "+r.URL.Path)
				http.Error(w, "dashboard: the form is stale or forged (CSRF token); reload the page", http.StatusForbidden)
				return
			}
		}
		if role < min {
			if unsafe {
				s.refused(r, sess, "role "+role.String()+" may not do this (needs "+min.String()+")", r.Method+" "+r.URL.Path)
			}
			http.Error(w, fmt.Sprintf("dashboard: your role (%s) may not do this; it needs %s", role, min), http.StatusForbidden)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, current{sess, role})))
	})
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	if s.sess.from(r) != nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	s.showLogin(w, r, "", http.StatusOK)
}

func (s *Server) showLogin(w http.ResponseWriter, r *http.Request, msg string, status int) {
	c, err := r.Cookie(loginCookie)
	val := ""
	if err == nil && len(c.Value) >= 40 {
		val = c.Value
	} else {
		val = random()
		http.SetCookie(w, cookie(loginCookie, val, 3600))
	}
	s.renderStatus(w, r, "login", map[string]any{"Token": s.sess.loginToken(val), "Error": msg, "SSO": s.oidc != nil}, status)
}

// login checks an API key from the store and opens a session with the role of its groups.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	c, err := r.Cookie(loginCookie)
	if err != nil || subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(s.sess.loginToken(c.Value))) != 1 {
		s.refused(r, nil, "login form without its CSRF token", "")
		s.showLogin(w, r, "The login form expired; try again.", http.StatusForbidden)
		return
	}
	if !s.fails.allow(r, s.o.Now()) {
		if s.fails.first(r) {
			s.refused(r, nil, "login attempts throttled", fmt.Sprintf("more than %d failed logins in a minute", maxFailedLogins))
		}
		s.showLogin(w, r, "Too many failed logins from your address; wait a minute.", http.StatusTooManyRequests)
		return
	}
	key := strings.TrimSpace(r.PostFormValue("key"))
	p, err := s.o.Keys.Verify(r.Context(), key)
	if s.finishLogin(w, r, p, err) {
		http.Redirect(w, r, "/", http.StatusSeeOther)
	} else {
		s.fails.add(r, s.o.Now())
	}
}

const maxFailedLogins = 10 // per address and minute

// failures counts failed logins per client address, per minute: past the limit, logins
// from it are refused without being checked (and recorded once), so that a flood of
// guesses neither reaches the store nor floods the audit trail.
type failures struct {
	mu sync.Mutex
	m  map[string]*failWindow
}

type failWindow struct {
	start     time.Time
	n         int
	throttled bool
}

func addrOf(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

func (f *failures) window(r *http.Request, now time.Time) *failWindow {
	if f.m == nil {
		f.m = map[string]*failWindow{}
	}
	a := addrOf(r)
	w := f.m[a]
	if w == nil || now.Sub(w.start) >= time.Minute {
		if len(f.m) >= maxSessions {
			clear(f.m)
		}
		w = &failWindow{start: now}
		f.m[a] = w
	}
	return w
}

func (f *failures) allow(r *http.Request, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.window(r, now).n < maxFailedLogins
}

func (f *failures) add(r *http.Request, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.window(r, now).n++
}

// first reports whether this is the first throttled attempt of the window.
func (f *failures) first(r *http.Request) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.m[addrOf(r)]
	if w == nil || w.throttled {
		return false
	}
	w.throttled = true
	return true
}

// finishLogin records a login (p, or err when the credential was refused) and, when p has
// a role and the login was recorded, opens the session. Otherwise it shows the login page
// again and returns false.
func (s *Server) finishLogin(w http.ResponseWriter, r *http.Request, p identity.Principal, err error) bool {
	role := RoleNone
	if err == nil {
		role = RoleOf(s.roles(), p.Groups)
	}
	rec := s.recorder()
	e := &audit.Event{Kind: audit.KindAdmin, Method: "dashboard/login", Principal: p.ID, AuthMethod: p.Method}
	switch {
	case err != nil:
		e.Code, e.Decision, e.Message = audit.CodeAdminLoginFailed, audit.Denied, fmt.Sprintf("login refused: %v (from %s)", err, r.RemoteAddr)
	case role == RoleNone:
		e.Code, e.Decision, e.Message = audit.CodeAdminLoginFailed, audit.Denied,
			fmt.Sprintf("login refused: groups %v have no dashboard role in admin.roles (from %s)", p.Groups, r.RemoteAddr)
	default:
		e.Code, e.Decision, e.Message = audit.CodeAdminLogin, audit.Allowed, fmt.Sprintf("logged in as %s (from %s)", role, r.RemoteAddr)
	}
	if rec == nil {
		s.showLogin(w, r, "The audit trail is off, so nobody can log in: enable guards.audit.", http.StatusServiceUnavailable)
		return false
	}
	if rerr := rec.Record(context.WithoutCancel(r.Context()), e); rerr != nil {
		s.log.Error("could not record a dashboard login; refused", "err", rerr)
		s.showLogin(w, r, "The login could not be recorded in the audit trail, so it was refused.", http.StatusServiceUnavailable)
		return false
	}
	if e.Code != audit.CodeAdminLogin {
		msg := "That key was not accepted."
		switch {
		case err == nil:
			msg = "Your groups have no dashboard role."
		case p.Method == "" && r.URL.Path != "/login":
			msg = "The sign-on was not accepted."
		}
		s.showLogin(w, r, msg, http.StatusUnauthorized)
		return false
	}
	sess := s.sess.create(p)
	http.SetCookie(w, cookie(sessionCookie, sess.id, int(s.o.SessionTTL/time.Second)))
	http.SetCookie(w, cookie(loginCookie, "", -1))
	return true
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	sess := sessionOf(r.Context())
	s.sess.drop(sess.id)
	if rec := s.recorder(); rec != nil {
		e := &audit.Event{Code: audit.CodeAdminLogout, Kind: audit.KindAdmin, Method: "dashboard/logout", Principal: sess.p.ID,
			AuthMethod: sess.p.Method, Message: "logged out"}
		if err := rec.Record(context.WithoutCancel(r.Context()), e); err != nil {
			s.log.Error("could not record a dashboard logout", "err", err)
		}
	}
	http.SetCookie(w, cookie(sessionCookie, "", -1))
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
