package identity

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/store"
	"github.com/portcullis-mcp/portcullis/internal/store/sqlite"
)

// memKeys is a KeyStore in memory that counts lookups.
type memKeys struct {
	mu      sync.Mutex
	keys    map[string]store.Key
	lookups atomic.Int64
	touched chan string
}

func newMemKeys() *memKeys {
	return &memKeys{keys: map[string]store.Key{}, touched: make(chan string, 100)}
}

func (m *memKeys) LookupKey(_ context.Context, id string) (store.Key, error) {
	m.lookups.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.keys[id]
	if !ok {
		return store.Key{}, store.ErrNotFound
	}
	return k, nil
}

func (m *memKeys) TouchKey(_ context.Context, id string, at time.Time) error {
	m.mu.Lock()
	k := m.keys[id]
	k.LastUsed = &at
	m.keys[id] = k
	m.mu.Unlock()
	select {
	case m.touched <- id:
	default:
	}
	return nil
}

func (m *memKeys) add(t testing.TB, name string, groups ...string) (string, store.Key) {
	t.Helper()
	tok, k, err := NewKey(name, groups, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	m.keys[k.ID] = k
	m.mu.Unlock()
	return tok, k
}

func (m *memKeys) revoke(id string) {
	m.mu.Lock()
	k := m.keys[id]
	now := time.Now()
	k.RevokedAt = &now
	m.keys[id] = k
	m.mu.Unlock()
}

func TestNewKeyFormat(t *testing.T) {
	tok, k, err := NewKey("ci-bot", []string{"ci"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) != keyTokenSize || !strings.HasPrefix(tok, "pc_"+k.ID+"_") {
		t.Fatalf("token %q (len %d) for id %q", tok, len(tok), k.ID)
	}
	id, secret, err := ParseKey(tok)
	if err != nil || id != k.ID {
		t.Fatalf("ParseKey = %q, %v", id, err)
	}
	if h := HashSecret(secret); string(h[:]) != string(k.Hash) {
		t.Error("stored hash is not the hash of the secret")
	}
	if strings.Contains(string(k.Hash), secret) {
		t.Error("the secret is stored")
	}
	tok2, k2, _ := NewKey("ci-bot", nil, time.Now())
	if tok2 == tok || k2.ID == k.ID {
		t.Error("two keys are equal")
	}
	for _, bad := range []string{"", "-x", "a b", strings.Repeat("a", 65), "é"} {
		if _, _, err := NewKey(bad, nil, time.Now()); err == nil {
			t.Errorf("NewKey(%q) accepted the name", bad)
		}
	}
	if _, _, err := NewKey("a", []string{" x"}, time.Now()); err == nil {
		t.Error("a group with spaces was accepted")
	}
}

func TestParseKeyMalformed(t *testing.T) {
	tok, _, _ := NewKey("a", nil, time.Now())
	for _, bad := range []string{
		"", "pc_", "sk_" + tok[3:], tok[:len(tok)-1], tok + "A",
		"pc_" + strings.Repeat("!", 16) + tok[19:],    // id not base32
		tok[:19] + "_" + strings.Repeat("!", 42),      // secret not base64url
		strings.Replace(tok, "_", "-", 2),             // separators
		"pc_" + strings.ToUpper(tok[3:19]) + tok[19:], // id in upper case
	} {
		if _, _, err := ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) accepted it", bad)
		}
	}
}

func TestAPIKeysVerify(t *testing.T) {
	ks := newMemKeys()
	a := NewAPIKeys(ks, time.Minute, nil)
	tok, k := ks.add(t, "ci-bot", "ci", "deploy")
	ctx := context.Background()

	p, err := a.Verify(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != "ci-bot" || p.Method != "apikey" || strings.Join(p.Groups, ",") != "ci,deploy" || p.Claims["key_id"] != k.ID {
		t.Errorf("principal = %+v", p)
	}
	select {
	case id := <-ks.touched:
		if id != k.ID {
			t.Errorf("touched %s", id)
		}
	case <-time.After(5 * time.Second):
		t.Error("last use not recorded")
	}

	id, _, _ := ParseKey(tok)
	wrong := KeyPrefix + id + "_" + strings.Repeat("A", secretLen)
	other, _, _ := NewKey("x", nil, time.Now())
	for name, bad := range map[string]string{"wrong secret": wrong, "unknown id": other, "malformed": "pc_nope"} {
		if _, err := a.Verify(ctx, bad); err == nil {
			t.Errorf("%s: accepted", name)
		} else if len(bad) > 20 && strings.Contains(err.Error(), bad[20:]) {
			t.Errorf("%s: the error %q contains the secret", name, err)
		}
	}
}

func TestAPIKeysCacheAndRevocation(t *testing.T) {
	ks := newMemKeys()
	a := NewAPIKeys(ks, time.Minute, nil)
	now := time.Now()
	a.now = func() time.Time { return now }
	tok, k := ks.add(t, "alice")
	ctx := context.Background()
	for range 100 {
		if _, err := a.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if n := ks.lookups.Load(); n != 1 {
		t.Errorf("%d store lookups for 100 checks within the TTL, want 1", n)
	}
	// A wrong secret for a cached id is refused from the cache.
	id, _, _ := ParseKey(tok)
	if _, err := a.Verify(ctx, KeyPrefix+id+"_"+strings.Repeat("B", secretLen)); err == nil || !strings.Contains(err.Error(), "wrong secret") {
		t.Errorf("wrong secret: %v", err)
	}
	// Revoked in the store (by another process): still accepted until the TTL passes,
	// refused after.
	ks.revoke(k.ID)
	if _, err := a.Verify(ctx, tok); err != nil {
		t.Errorf("within the TTL: %v", err)
	}
	now = now.Add(time.Minute + time.Second)
	if _, err := a.Verify(ctx, tok); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("after the TTL: %v, want revoked", err)
	}
	// Forget makes a revocation in this process immediate.
	tok2, k2 := ks.add(t, "bob")
	a.Verify(ctx, tok2)
	ks.revoke(k2.ID)
	a.Forget(k2.ID)
	if _, err := a.Verify(ctx, tok2); err == nil {
		t.Error("revoked and forgotten key accepted")
	}
}

type failingKeys struct{}

func (failingKeys) LookupKey(context.Context, string) (store.Key, error) {
	return store.Key{}, errors.New("disk on fire")
}
func (failingKeys) TouchKey(context.Context, string, time.Time) error { return nil }

func TestAPIKeysStoreDown(t *testing.T) {
	a := NewAPIKeys(failingKeys{}, 0, nil)
	tok, _, _ := NewKey("a", nil, time.Now())
	_, err := a.Verify(context.Background(), tok)
	if err == nil || !strings.Contains(err.Error(), "store unavailable") || strings.Contains(err.Error(), "fire") {
		t.Errorf("store down: %v", err)
	}
}

// BenchmarkAPIKey is the cost of authenticating one request with an API key, through the
// Authenticator (header parsing, cache, SHA-256, constant-time compare).
func BenchmarkAPIKey(b *testing.B) {
	ks := newMemKeys()
	tok, _ := ks.add(b, "bench", "g")
	auth, _ := NewAuthenticator(Options{APIKeys: NewAPIKeys(ks, time.Hour, nil)})
	r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1/mcp", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := auth.Authenticate(r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAPIKeySQLite checks keys against a real SQLite store: "cached" is the steady
// state (one store read per key per TTL), "uncached" reads the store on every request, as
// the gateway would without the cache.
func BenchmarkAPIKeySQLite(b *testing.B) {
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "p.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	tok, k, _ := NewKey("bench", []string{"g"}, time.Now())
	if err := st.CreateKey(context.Background(), k); err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		ttl  time.Duration
	}{{"cached", time.Hour}, {"uncached", time.Nanosecond}} {
		b.Run(tc.name, func(b *testing.B) {
			keys := NewAPIKeys(st, tc.ttl, slog.New(slog.NewTextHandler(io.Discard, nil)))
			keys.touchDisabled = true
			b.ReportAllocs()
			for b.Loop() {
				if _, err := keys.Verify(context.Background(), tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
