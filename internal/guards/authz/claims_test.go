package authz_test

import (
	"context"
	"testing"

	"github.com/portcullis-mcp/portcullis/internal/config"
	"github.com/portcullis-mcp/portcullis/internal/guards/authz"
	"github.com/portcullis-mcp/portcullis/internal/identity"
)

// The claims of the principal's credential (a JWT's claims) reach the rules.
func TestPrincipalClaims(t *testing.T) {
	cfg, err := config.Parse("claims.yaml", []byte(`
auth: none
servers: [{name: filesystem, command: fs-server}]
guards:
  authz:
    rules:
      - name: verified-employees
        effect: allow
        when: 'principal.method == "oidc" && principal.claims.email.endsWith("@example.com") && principal.claims.email_verified == true'
`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := authz.Load(cfg.GuardSections()["authz"])
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		claims map[string]any
		allow  bool
	}{
		{map[string]any{"email": "alice@example.com", "email_verified": true}, true},
		{map[string]any{"email": "alice@example.com", "email_verified": false}, false},
		{map[string]any{"email": "mallory@evil.example", "email_verified": true}, false},
		{nil, false},
	} {
		up := &upstream{}
		h := authz.New(p, authz.Options{})(up)
		who := identity.Principal{ID: "alice", Method: "oidc", Claims: tc.claims}
		_, err := h.Handle(context.Background(), toolCall(who, "filesystem", "read_file", map[string]any{}))
		if allowed := err == nil && up.reached.Load() == 1; allowed != tc.allow {
			t.Errorf("claims %v: allowed %v, want %v (%v)", tc.claims, allowed, tc.allow, err)
		}
	}
}
