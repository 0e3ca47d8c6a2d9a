package oidctest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// CodeFlow makes the issuer serve the authorization-code flow (with PKCE, S256) for one
// client: /authorize logs in the current user at once (no page) and redirects back with a
// code; /token exchanges it for an ID token signed with the current key, carrying the
// user's claims, the client as audience and the request's nonce.
type CodeFlow struct {
	ClientID, ClientSecret string

	mu    sync.Mutex
	user  map[string]any
	codes map[string]grant
}

type grant struct {
	claims    map[string]any
	redirect  string
	challenge string
}

// SetUser sets the claims of whoever logs in next (sub, groups, email, ...).
func (f *CodeFlow) SetUser(claims map[string]any) {
	f.mu.Lock()
	f.user = claims
	f.mu.Unlock()
}

// ServeCodeFlow adds the flow for clientID and secret to the issuer.
func (i *Issuer) ServeCodeFlow(clientID, secret string) *CodeFlow {
	f := &CodeFlow{ClientID: clientID, ClientSecret: secret, codes: map[string]grant{}}
	i.mux.HandleFunc("/authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		redirect, err := url.Parse(q.Get("redirect_uri"))
		if q.Get("client_id") != clientID || q.Get("response_type") != "code" || err != nil || redirect.Scheme == "" {
			http.Error(w, "oidctest: bad authorization request", http.StatusBadRequest)
			return
		}
		if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
			http.Error(w, "oidctest: PKCE (S256) is required", http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		claims := map[string]any{}
		for k, v := range f.user {
			claims[k] = v
		}
		f.mu.Unlock()
		if n := q.Get("nonce"); n != "" {
			claims["nonce"] = n
		}
		code := randomID()
		f.mu.Lock()
		f.codes[code] = grant{claims: claims, redirect: redirect.String(), challenge: q.Get("code_challenge")}
		f.mu.Unlock()
		v := redirect.Query()
		v.Set("code", code)
		v.Set("state", q.Get("state"))
		redirect.RawQuery = v.Encode()
		http.Redirect(w, r, redirect.String(), http.StatusFound)
	})
	i.mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		id, sec, ok := r.BasicAuth()
		if !ok {
			id, sec = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
		}
		f.mu.Lock()
		g, found := f.codes[r.PostFormValue("code")]
		delete(f.codes, r.PostFormValue("code")) // a code works once
		f.mu.Unlock()
		sum := sha256.Sum256([]byte(r.PostFormValue("code_verifier")))
		switch {
		case id != clientID || sec != secret:
			tokenError(w, "invalid_client")
			return
		case !found || r.PostFormValue("grant_type") != "authorization_code" || r.PostFormValue("redirect_uri") != g.redirect:
			tokenError(w, "invalid_grant")
			return
		case base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge:
			tokenError(w, "invalid_grant")
			return
		}
		claims := i.Claims("", clientID)
		for k, v := range g.claims {
			claims[k] = v
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": randomID(), "token_type": "Bearer",
			"expires_in": int(time.Hour / time.Second), "id_token": i.Sign(claims)})
	})
	return f
}

func tokenError(w http.ResponseWriter, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(w).Encode(map[string]string{"error": code})
}

func randomID() string {
	var b [18]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
