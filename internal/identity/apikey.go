package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/store"
)

// API keys look like pc_<id>_<secret>: id is 10 random bytes in lowercase base32 (16
// characters, no '_'), secret 32 random bytes in unpadded base64url (43 characters). The id
// is public (it names the key in listings and logs); only a hash of the secret is stored.
const (
	KeyPrefix    = "pc_"
	keyIDBytes   = 10
	secretBytes  = 32
	keyIDLen     = 16
	secretLen    = 43
	keyTokenSize = len(KeyPrefix) + keyIDLen + 1 + secretLen
)

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// KeyNameRE is what a key's name (its principal id) may be.
var KeyNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// NewKey returns a new key: the token to give its holder (shown once, never stored) and the
// record to store.
func NewKey(name string, groups []string, now time.Time) (token string, k store.Key, err error) {
	if !KeyNameRE.MatchString(name) {
		return "", store.Key{}, fmt.Errorf("key name %q: use 1-64 letters, digits, '.', '_', '@' or '-'", name)
	}
	for _, g := range groups {
		if strings.TrimSpace(g) == "" || g != strings.TrimSpace(g) {
			return "", store.Key{}, fmt.Errorf("group %q: empty or with surrounding spaces", g)
		}
	}
	raw := make([]byte, keyIDBytes+secretBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", store.Key{}, err
	}
	id := idEncoding.EncodeToString(raw[:keyIDBytes])
	secret := base64.RawURLEncoding.EncodeToString(raw[keyIDBytes:])
	h := HashSecret(secret)
	k = store.Key{ID: id, Name: name, Groups: groups, Hash: h[:], CreatedAt: now.UTC()}
	return KeyPrefix + id + "_" + secret, k, nil
}

// HashSecret is what is stored of a key's secret. One SHA-256 is enough here, unlike for
// passwords: the secret is 256 random bits, so a stolen hash cannot be reversed by guessing
// (no dictionary, 2^256 candidates), and a slow KDF (bcrypt, argon2) would only add
// milliseconds to every request.
func HashSecret(secret string) [sha256.Size]byte { return sha256.Sum256([]byte(secret)) }

// ParseKey splits a token into its id and secret, or says why it is not an API key.
func ParseKey(token string) (id, secret string, err error) {
	rest, ok := strings.CutPrefix(token, KeyPrefix)
	if !ok {
		return "", "", errors.New("not an API key (no pc_ prefix)")
	}
	if len(token) != keyTokenSize || rest[keyIDLen] != '_' {
		return "", "", errors.New("malformed API key (want pc_<16 characters>_<43 characters>)")
	}
	id, secret = rest[:keyIDLen], rest[keyIDLen+1:]
	if _, err := idEncoding.DecodeString(id); err != nil {
		return "", "", errors.New("malformed API key id")
	}
	if _, err := base64.RawURLEncoding.DecodeString(secret); err != nil {
		return "", "", errors.New("malformed API key secret")
	}
	return id, secret, nil
}

// KeyStore is what API key checks need of the store.
type KeyStore interface {
	LookupKey(ctx context.Context, id string) (store.Key, error)
	TouchKey(ctx context.Context, id string, at time.Time) error
}

// DefaultKeyCacheTTL is how long a key read from the store is trusted before it is read
// again: a key revoked with `portcullis keys revoke` (another process) stops working
// within this time. Reading it again also updates its last-used time, so that is
// precise to about this much.
const DefaultKeyCacheTTL = 5 * time.Second

// maxCachedKeys bounds the cache; past it, expired entries are dropped, and if it is still
// full new keys are checked against the store every time (correct, just slower).
const maxCachedKeys = 10000

// APIKeys checks API keys against the store, keeping what it read for a short while.
type APIKeys struct {
	store  KeyStore
	ttl    time.Duration
	now    func() time.Time
	logger *slog.Logger

	mu    sync.RWMutex
	cache map[string]*cachedKey

	touchDisabled bool // benchmarks: no last-use writes
}

type cachedKey struct {
	hash      [sha256.Size]byte
	revoked   bool
	principal Principal
	expires   time.Time
}

// NewAPIKeys returns a checker of keys in s; ttl <= 0 means DefaultKeyCacheTTL.
func NewAPIKeys(s KeyStore, ttl time.Duration, logger *slog.Logger) *APIKeys {
	if ttl <= 0 {
		ttl = DefaultKeyCacheTTL
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &APIKeys{store: s, ttl: ttl, now: time.Now, logger: logger, cache: map[string]*cachedKey{}}
}

// Verify returns the principal of an API key. The error (a plain one: the Authenticator
// makes it an *Error) says why a key is refused.
func (a *APIKeys) Verify(ctx context.Context, token string) (Principal, error) {
	id, secret, err := ParseKey(token)
	if err != nil {
		return Principal{}, err
	}
	h := HashSecret(secret)
	now := a.now()
	a.mu.RLock()
	e := a.cache[id]
	a.mu.RUnlock()
	if e == nil || now.After(e.expires) {
		if e, err = a.load(ctx, id, now); err != nil {
			return Principal{}, err
		}
	}
	// Compare before looking at revocation, in constant time: the answer's timing says
	// nothing about the secret.
	if subtle.ConstantTimeCompare(h[:], e.hash[:]) != 1 {
		return Principal{}, fmt.Errorf("wrong secret for API key %s", id)
	}
	if e.revoked {
		return Principal{}, fmt.Errorf("API key %s was revoked", id)
	}
	return e.principal, nil
}

func (a *APIKeys) load(ctx context.Context, id string, now time.Time) (*cachedKey, error) {
	k, err := a.store.LookupKey(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("unknown API key %s", id)
	}
	if err != nil {
		a.logger.Error("reading an API key from the store", "key_id", id, "err", err)
		return nil, fmt.Errorf("API key %s could not be checked (store unavailable)", id)
	}
	e := &cachedKey{
		revoked:   k.Revoked(),
		principal: Principal{ID: k.Name, Groups: k.Groups, Method: "apikey", Claims: map[string]any{"key_id": k.ID}},
		expires:   now.Add(a.ttl),
	}
	if len(k.Hash) != len(e.hash) {
		return nil, fmt.Errorf("API key %s has a malformed hash in the store", id)
	}
	copy(e.hash[:], k.Hash)
	a.mu.Lock()
	if len(a.cache) >= maxCachedKeys {
		for kid, c := range a.cache {
			if now.After(c.expires) {
				delete(a.cache, kid)
			}
		}
	}
	if len(a.cache) < maxCachedKeys {
		a.cache[id] = e
	}
	a.mu.Unlock()
	if !e.revoked && !a.touchDisabled {
		// Last use is recorded when the key is read, so at most once per ttl: no write
		// per request. The request does not wait for it.
		go func() {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := a.store.TouchKey(ctx, id, now); err != nil && !errors.Is(err, store.ErrNotFound) {
				a.logger.Warn("recording an API key's last use", "key_id", id, "err", err)
			}
		}()
	}
	return e, nil
}

// Forget drops a key from the cache, so a revocation made in this process applies at once.
func (a *APIKeys) Forget(id string) {
	a.mu.Lock()
	delete(a.cache, id)
	a.mu.Unlock()
}
