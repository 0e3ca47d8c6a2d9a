package identity

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/identity/oidctest"
)

const aud = "http://127.0.0.1:8931/mcp"

func newOIDC(t *testing.T, iss *oidctest.Issuer, mod func(*OIDCConfig)) *OIDC {
	t.Helper()
	cfg := OIDCConfig{Issuer: iss.URL, Audience: aud}
	if mod != nil {
		mod(&cfg)
	}
	o, err := NewOIDC(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestOIDCAccepts(t *testing.T) {
	iss := oidctest.New()
	defer iss.Close()
	o := newOIDC(t, iss, nil)
	c := iss.Claims("alice", aud)
	c["groups"] = []any{"dev", "ops"}
	c["email"] = "alice@example.com"
	p, err := o.Verify(context.Background(), iss.Sign(c))
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != "alice" || p.Method != "oidc" || !slices.Equal(p.Groups, []string{"dev", "ops"}) || p.Claims["email"] != "alice@example.com" {
		t.Errorf("principal = %+v", p)
	}
	// aud may be an array that contains ours.
	c = iss.Claims("bob", aud)
	c["aud"] = []any{"other", aud}
	if _, err := o.Verify(context.Background(), iss.Sign(c)); err != nil {
		t.Errorf("aud array: %v", err)
	}
}

func TestOIDCRefuses(t *testing.T) {
	iss := oidctest.New()
	defer iss.Close()
	other := oidctest.New() // a different issuer, with its own keys
	defer other.Close()
	o := newOIDC(t, iss, nil)
	now := time.Now()
	with := func(mod func(map[string]any)) map[string]any {
		c := iss.Claims("alice", aud)
		mod(c)
		return c
	}
	tests := []struct {
		name, token, want string
	}{
		{"expired", iss.Sign(with(func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() })), "expired"},
		{"no exp", iss.Sign(with(func(c map[string]any) { delete(c, "exp") })), "exp"},
		{"not yet valid", iss.Sign(with(func(c map[string]any) { c["nbf"] = now.Add(10 * time.Minute).Unix() })), "not valid before"},
		{"wrong aud", iss.Sign(with(func(c map[string]any) { c["aud"] = "https://elsewhere.example/mcp" })), "audience"},
		{"wrong iss", iss.Sign(with(func(c map[string]any) { c["iss"] = other.URL })), "issued by a different provider"},
		{"other issuer's key", other.Sign(with(func(c map[string]any) {})), "unknown key id"},
		{"no sub", iss.Sign(with(func(c map[string]any) { delete(c, "sub") })), "sub"},
		{"alg none", oidctest.SignNone(with(func(c map[string]any) {})), `"none" is not accepted`},
		{"HS256 keyed with the RSA public key", oidctest.SignHMACWithPublicKey(iss.Current(), with(func(c map[string]any) {})), `algorithm "HS256" is not accepted`},
		{"unknown kid", oidctest.SignRSA(oidctest.NewKey(), with(func(c map[string]any) {})), "unknown key id"},
		{"tampered", tamper(iss.Sign(with(func(c map[string]any) {}))), "signature"},
		{"garbage", "not.a.jwt", "malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := o.Verify(context.Background(), tc.token)
			if err == nil {
				t.Fatal("accepted")
			}
			e, ok := err.(*Error)
			if !ok || e.Status != http.StatusUnauthorized {
				t.Errorf("error %#v, want an *Error with 401", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("reason %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

// tamper changes the payload of a signed token, keeping the signature.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	p := []byte(parts[1])
	if p[5] == 'A' {
		p[5] = 'B'
	} else {
		p[5] = 'A'
	}
	return parts[0] + "." + string(p) + "." + parts[2]
}

func TestOIDCLeeway(t *testing.T) {
	iss := oidctest.New()
	defer iss.Close()
	o := newOIDC(t, iss, nil)
	c := iss.Claims("alice", aud)
	c["exp"] = time.Now().Add(-10 * time.Second).Unix() // within the 30s leeway
	c["nbf"] = time.Now().Add(10 * time.Second).Unix()
	if _, err := o.Verify(context.Background(), iss.Sign(c)); err != nil {
		t.Errorf("small clock skew refused: %v", err)
	}
}

func TestOIDCAlgorithms(t *testing.T) {
	for _, bad := range []string{"none", "HS256", "HS512", "rs256"} {
		if _, err := NewOIDC(context.Background(), OIDCConfig{Issuer: "http://127.0.0.1:1", Audience: "a", Algorithms: []string{bad}}, nil); err == nil {
			t.Errorf("algorithm %q accepted in the configuration", bad)
		}
	}
	iss := oidctest.New()
	defer iss.Close()
	o := newOIDC(t, iss, func(c *OIDCConfig) { c.Algorithms = []string{"ES256"} })
	_, err := o.Verify(context.Background(), iss.Sign(iss.Claims("a", aud)))
	if err == nil || !strings.Contains(err.Error(), `"RS256" is not accepted`) {
		t.Errorf("RS256 with only ES256 allowed: %v", err)
	}
}

func TestOIDCScopesAndGroups(t *testing.T) {
	iss := oidctest.New()
	defer iss.Close()
	o := newOIDC(t, iss, func(c *OIDCConfig) {
		c.ScopesRequired = []string{"mcp:tools", "mcp:read"}
		c.GroupsClaim = "realm_access.roles"
	})
	c := iss.Claims("alice", aud)
	c["scope"] = "openid mcp:tools"
	_, err := o.Verify(context.Background(), iss.Sign(c))
	e, ok := err.(*Error)
	if !ok || e.Status != http.StatusForbidden || !strings.Contains(e.Reason, "mcp:read") || strings.Contains(e.Reason, "mcp:tools") {
		t.Fatalf("missing scope: %#v", err)
	}
	c["scp"] = []any{"mcp:read"}
	c["realm_access"] = map[string]any{"roles": []any{"admin"}}
	p, err := o.Verify(context.Background(), iss.Sign(c))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Groups, []string{"admin"}) {
		t.Errorf("groups from a dotted claim path = %v", p.Groups)
	}
}

// The issuer rotates its key: the first token signed with the new key makes the gateway
// fetch the key set again, and is accepted. Tokens with random key ids do not make it
// fetch more than once per interval.
func TestOIDCKeyRotation(t *testing.T) {
	iss := oidctest.New()
	defer iss.Close()
	o := newOIDC(t, iss, nil)
	now := time.Now()
	o.now = func() time.Time { return now }
	ctx := context.Background()
	if _, err := o.Verify(ctx, iss.Sign(iss.Claims("a", aud))); err != nil {
		t.Fatal(err)
	}
	fetches := iss.JWKSFetches()
	iss.Rotate(false)
	now = now.Add(jwksMinInterval)
	if _, err := o.Verify(ctx, iss.Sign(iss.Claims("a", aud))); err != nil {
		t.Fatalf("token signed with the rotated key: %v", err)
	}
	if got := iss.JWKSFetches(); got != fetches+1 {
		t.Errorf("%d fetches for the rotation, want 1", got-fetches)
	}
	fetches = iss.JWKSFetches()
	for range 20 {
		if _, err := o.Verify(ctx, oidctest.SignRSA(oidctest.NewKey(), iss.Claims("a", aud))); err == nil {
			t.Fatal("unknown kid accepted")
		}
	}
	if got := iss.JWKSFetches(); got > fetches+1 {
		t.Errorf("20 unknown kids within the interval made %d fetches", got-fetches)
	}
	// The old key, withdrawn by the issuer, stops working once the set is refreshed.
	old := iss.Current()
	iss.Rotate(false)
	now = now.Add(jwksMaxAge + time.Second)
	if _, err := o.Verify(ctx, oidctest.SignRSA(old, iss.Claims("a", aud))); err == nil {
		t.Error("a withdrawn key is still accepted after the key set expired")
	}
}

func TestOIDCIssuerDown(t *testing.T) {
	iss := oidctest.New()
	url := iss.URL
	tok := iss.Sign(iss.Claims("a", aud))
	iss.Close()
	o, err := NewOIDC(context.Background(), OIDCConfig{Issuer: url, Audience: aud}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = o.Verify(context.Background(), tok)
	if e, ok := err.(*Error); !ok || e.Status != http.StatusServiceUnavailable {
		t.Errorf("issuer down: %#v, want 503", err)
	}
}
