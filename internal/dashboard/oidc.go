package dashboard

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/portcullis-mcp/portcullis/internal/identity"
)

// OIDCOptions configure single sign-on: the OpenID Connect authorization-code flow with
// PKCE (S256), a nonce, and a state bound to the browser.
type OIDCOptions struct {
	Issuer, ClientID, ClientSecret string
	RedirectURL                    string // .../login/oidc/callback, as registered with the issuer
	GroupsClaim                    string // default "groups"
	UserClaim                      string // default "sub"
	Scopes                         []string
}

const (
	oidcCookie     = "__Host-portcullis-oidc" // the state of a login under way
	oidcTTL        = 10 * time.Minute
	maxOIDCPending = 10000
)

type oidcLogin struct {
	o OIDCOptions

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
	conf     *oauth2.Config
	pending  map[string]oidcPending // by state
}

type oidcPending struct {
	nonce, verifier string
	expires         time.Time
}

// setup discovers the issuer on first use (an issuer that is down at start does not stop
// the gateway; API key logins keep working).
func (l *oidcLogin) setup(ctx context.Context) (*oauth2.Config, *oidc.IDTokenVerifier, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conf != nil {
		return l.conf, l.verifier, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(ctx, l.o.Issuer)
	if err != nil {
		return nil, nil, fmt.Errorf("discovering the issuer %s: %w", l.o.Issuer, err)
	}
	scopes := l.o.Scopes
	if len(scopes) == 0 {
		scopes = []string{oidc.ScopeOpenID, "profile", "email", "groups"}
	}
	l.conf = &oauth2.Config{ClientID: l.o.ClientID, ClientSecret: l.o.ClientSecret, RedirectURL: l.o.RedirectURL,
		Endpoint: p.Endpoint(), Scopes: scopes}
	// The verifier pins the algorithms to the asymmetric ones the issuer signs with; go-oidc
	// checks issuer, audience (the client id) and expiry.
	l.verifier = p.Verifier(&oidc.Config{ClientID: l.o.ClientID})
	return l.conf, l.verifier, nil
}

func (l *oidcLogin) begin(now time.Time) (state string, p oidcPending) {
	state = random()
	p = oidcPending{nonce: random(), verifier: oauth2.GenerateVerifier(), expires: now.Add(oidcTTL)}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.pending) >= maxOIDCPending {
		for k, v := range l.pending {
			if now.After(v.expires) {
				delete(l.pending, k)
			}
		}
		if len(l.pending) >= maxOIDCPending {
			for k := range l.pending { // still full: drop any one
				delete(l.pending, k)
				break
			}
		}
	}
	l.pending[state] = p
	return state, p
}

// take returns and forgets the login under way with state (a state works once).
func (l *oidcLogin) take(state string, now time.Time) (oidcPending, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.pending[state]
	delete(l.pending, state)
	return p, ok && now.Before(p.expires)
}

// oidcStart sends the browser to the issuer.
func (s *Server) oidcStart(w http.ResponseWriter, r *http.Request) {
	conf, _, err := s.oidc.setup(r.Context())
	if err != nil {
		s.log.Error("dashboard single sign-on unavailable", "err", err)
		s.showLogin(w, r, "Single sign-on is unavailable: the issuer could not be reached.", http.StatusBadGateway)
		return
	}
	state, p := s.oidc.begin(s.o.Now())
	// Lax, not Strict: the browser comes back from the issuer's site with a top-level
	// navigation, which must carry this cookie.
	http.SetCookie(w, &http.Cookie{Name: oidcCookie, Value: state, Path: "/", MaxAge: int(oidcTTL / time.Second), Secure: true,
		HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, conf.AuthCodeURL(state, oidc.Nonce(p.nonce), oauth2.S256ChallengeOption(p.verifier)), http.StatusFound)
}

// oidcCallback finishes the flow: the state must be this browser's, the code is exchanged
// with the PKCE verifier, and the ID token must verify and carry the login's nonce.
func (s *Server) oidcCallback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	http.SetCookie(w, &http.Cookie{Name: oidcCookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	c, err := r.Cookie(oidcCookie)
	if err != nil || q.Get("state") == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(q.Get("state"))) != 1 {
		s.refused(r, nil, "single sign-on callback without this browser's state", "")
		s.showLogin(w, r, "The sign-on did not start from this browser, or took too long; try again.", http.StatusForbidden)
		return
	}
	p, ok := s.oidc.take(q.Get("state"), s.o.Now())
	if !ok {
		s.showLogin(w, r, "The sign-on expired; try again.", http.StatusForbidden)
		return
	}
	if e := q.Get("error"); e != "" {
		s.finishLogin(w, r, identity.Principal{}, fmt.Errorf("the issuer refused the sign-on: %s %s", e, q.Get("error_description")))
		return
	}
	conf, verifier, err := s.oidc.setup(r.Context())
	if err != nil {
		s.showLogin(w, r, "Single sign-on is unavailable: the issuer could not be reached.", http.StatusBadGateway)
		return
	}
	pr, err := s.oidcPrincipal(r.Context(), conf, verifier, q.Get("code"), p)
	if !s.finishLogin(w, r, pr, err) {
		return
	}
	// The browser arrived here from the issuer's site: a redirect would keep the request
	// cross-site, and the SameSite=Strict session cookie would not go with it. A page of
	// the dashboard's own moves on instead.
	s.renderStatus(w, r, "signedin", nil, http.StatusOK)
}

func (s *Server) oidcPrincipal(ctx context.Context, conf *oauth2.Config, verifier *oidc.IDTokenVerifier, code string, p oidcPending) (identity.Principal, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(p.verifier))
	if err != nil {
		return identity.Principal{}, fmt.Errorf("exchanging the code: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return identity.Principal{}, errors.New("the issuer sent no ID token")
	}
	idt, err := verifier.Verify(ctx, raw)
	if err != nil {
		return identity.Principal{}, fmt.Errorf("ID token: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(p.nonce)) != 1 {
		return identity.Principal{}, errors.New("ID token: wrong nonce (a replayed token?)")
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return identity.Principal{}, fmt.Errorf("ID token claims: %w", err)
	}
	gc, uc := s.oidc.o.GroupsClaim, s.oidc.o.UserClaim
	if gc == "" {
		gc = "groups"
	}
	id := idt.Subject
	if uc != "" && uc != "sub" {
		if v := identity.ClaimStrings(claims, uc); len(v) == 1 && strings.TrimSpace(v[0]) != "" {
			id = v[0]
		} else {
			return identity.Principal{}, fmt.Errorf("ID token: no %s claim to name the person by (admin.oidc.user_claim)", uc)
		}
	}
	return identity.Principal{ID: id, Groups: identity.ClaimStrings(claims, gc), Method: "oidc", Claims: claims}, nil
}
