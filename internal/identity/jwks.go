package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// The issuer's keys (JWKS) are fetched at the first token, again when a token names a key
// id not in the set (the issuer rotated its keys), and again when the set is older than
// jwksMaxAge (a key the issuer withdrew stops being accepted). Unknown key ids cause a
// fetch at most once per jwksMinInterval, so tokens with random key ids cannot make the
// gateway hammer the issuer; between fetches they are refused at once.
//
// go-oidc's RemoteKeySet refetches on every unknown key id and never expires keys, hence
// this small replacement; go-jose parses and verifies.
const (
	jwksMinInterval = 5 * time.Second
	jwksMaxAge      = 15 * time.Minute
	jwksMaxBytes    = 1 << 20
)

type keySet struct {
	url    string
	client *http.Client
	algs   []jose.SignatureAlgorithm
	now    func() time.Time
	logger *slog.Logger

	mu       sync.Mutex
	keys     []jose.JSONWebKey
	fetched  time.Time     // last successful fetch
	tried    time.Time     // last attempt
	inflight chan struct{} // closed when the fetch in progress ends
}

type kidError struct{ kid string }

func (e *kidError) Error() string {
	return fmt.Sprintf("token signed with unknown key id %q (not in the issuer's JWKS)", e.kid)
}

// VerifySignature implements oidc.KeySet.
func (k *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSigned(raw, k.algs)
	if err != nil {
		return nil, err
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("token must have exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	keys := k.lookup(ctx, kid)
	if len(keys) == 0 {
		return nil, &kidError{kid}
	}
	for i := range keys {
		if payload, err := jws.Verify(&keys[i]); err == nil {
			return payload, nil
		}
	}
	return nil, errors.New("signature does not verify")
}

// lookup returns the keys kid may name (all of them when the token names none), fetching
// the set when it is needed and allowed.
func (k *keySet) lookup(ctx context.Context, kid string) []jose.JSONWebKey {
	for attempt := 0; ; attempt++ {
		k.mu.Lock()
		now := k.now()
		found := match(k.keys, kid)
		stale := k.fetched.IsZero() || now.Sub(k.fetched) > jwksMaxAge
		mayFetch := k.tried.IsZero() || now.Sub(k.tried) >= jwksMinInterval
		if attempt > 0 || (len(found) > 0 && !stale) || !mayFetch {
			k.mu.Unlock()
			return found
		}
		wait := k.inflight
		if wait == nil {
			wait = make(chan struct{})
			k.inflight = wait
			k.tried = now
			go k.fetch(wait)
		}
		k.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil
		}
	}
}

func match(keys []jose.JSONWebKey, kid string) []jose.JSONWebKey {
	if kid == "" {
		return keys
	}
	var out []jose.JSONWebKey
	for _, key := range keys {
		if key.KeyID == kid {
			out = append(out, key)
		}
	}
	return out
}

// fetch reads the set; on failure the keys already known stay in use.
func (k *keySet) fetch(done chan struct{}) {
	keys, err := k.get()
	k.mu.Lock()
	if err == nil {
		k.keys, k.fetched = keys, k.now()
	}
	k.inflight = nil
	k.mu.Unlock()
	close(done)
	if err != nil {
		k.logger.Warn("fetching the OIDC issuer's keys", "jwks_uri", k.url, "err", err)
	}
}

func (k *keySet) get() ([]jose.JSONWebKey, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, jwksMaxBytes))
	if err != nil {
		return nil, err
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("decoding the JWKS: %w", err)
	}
	var keys []jose.JSONWebKey
	for _, key := range set.Keys {
		// Only public signing keys: a symmetric key in a public set would let anyone who
		// reads it sign tokens.
		if !key.IsPublic() || key.Use == "enc" {
			continue
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, errors.New("the JWKS has no public signing keys")
	}
	return keys, nil
}
