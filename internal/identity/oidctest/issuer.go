// Package oidctest is a small in-process OpenID Connect issuer for tests: discovery, a JWKS
// with RSA keys that can be rotated, and token signing (also the malicious kinds: alg none,
// HMAC keyed with the public key, unknown key ids).
package oidctest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Issuer is a running test issuer.
type Issuer struct {
	URL    string // the issuer identifier (http://127.0.0.1:port)
	server *httptest.Server
	mux    *http.ServeMux

	mu      sync.Mutex
	keys    []Key // keys[0] signs; all are published
	fetches atomic.Int64
}

// Key is a signing key and its id.
type Key struct {
	ID  string
	RSA *rsa.PrivateKey
}

// New starts an issuer with one key; Close stops it.
func New() *Issuer {
	i := &Issuer{}
	mux := http.NewServeMux()
	i.mux = mux
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                i.URL,
			"jwks_uri":                              i.URL + "/jwks",
			"authorization_endpoint":                i.URL + "/authorize",
			"token_endpoint":                        i.URL + "/token",
			"id_token_signing_alg_values_supported": []string{"RS256"},
			"response_types_supported":              []string{"code"},
			"subject_types_supported":               []string{"public"},
		})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		i.fetches.Add(1)
		i.mu.Lock()
		var set jose.JSONWebKeySet
		for _, k := range i.keys {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.RSA.PublicKey, KeyID: k.ID, Algorithm: "RS256", Use: "sig"})
		}
		i.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(set)
	})
	i.server = httptest.NewServer(mux)
	i.URL = i.server.URL
	i.Rotate(false)
	return i
}

// Close stops the issuer.
func (i *Issuer) Close() { i.server.Close() }

// JWKSFetches is how many times the key set was fetched.
func (i *Issuer) JWKSFetches() int { return int(i.fetches.Load()) }

var kidSeq atomic.Int64

// NewKey returns a new RSA key with a fresh id (not published).
func NewKey() Key {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return Key{ID: fmt.Sprintf("key-%d", kidSeq.Add(1)), RSA: k}
}

// Rotate makes a new key the signing key; keep says whether the old keys stay published.
func (i *Issuer) Rotate(keep bool) Key {
	k := NewKey()
	i.mu.Lock()
	defer i.mu.Unlock()
	if keep {
		i.keys = append([]Key{k}, i.keys...)
	} else {
		i.keys = []Key{k}
	}
	return k
}

// Current is the signing key.
func (i *Issuer) Current() Key {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.keys[0]
}

// Claims are the claims of a valid token for sub and audience, valid for an hour.
func (i *Issuer) Claims(sub, aud string) map[string]any {
	now := time.Now()
	return map[string]any{"iss": i.URL, "sub": sub, "aud": aud, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix()}
}

// Sign signs claims with the current key (RS256).
func (i *Issuer) Sign(claims map[string]any) string { return SignRSA(i.Current(), claims) }

// SignRSA signs claims with k (RS256, kid k.ID).
func SignRSA(k Key, claims map[string]any) string {
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", k.ID)
	return sign(jose.SigningKey{Algorithm: jose.RS256, Key: k.RSA}, opts, claims)
}

// SignNone returns an unsigned token (alg none), as an attacker would send it.
func SignNone(claims map[string]any) string {
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	p, _ := json.Marshal(claims)
	return h + "." + base64.RawURLEncoding.EncodeToString(p) + "."
}

// SignHMACWithPublicKey signs claims with HS256 keyed by the PEM of k's public key: the
// classic algorithm-confusion attack on verifiers that take the algorithm from the token.
func SignHMACWithPublicKey(k Key, claims map[string]any) string {
	der, err := x509.MarshalPKIXPublicKey(&k.RSA.PublicKey)
	if err != nil {
		panic(err)
	}
	secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", k.ID)
	return sign(jose.SigningKey{Algorithm: jose.HS256, Key: secret}, opts, claims)
}

func sign(key jose.SigningKey, opts *jose.SignerOptions, claims map[string]any) string {
	s, err := jose.NewSigner(key, opts)
	if err != nil {
		panic(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		panic(err)
	}
	obj, err := s.Sign(payload)
	if err != nil {
		panic(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		panic(err)
	}
	return out
}
