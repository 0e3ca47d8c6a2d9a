package dashboard_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/dashboard"
	"github.com/portcullis-mcp/portcullis/internal/identity/oidctest"
)

// ssoFixture is a dashboard with single sign-on through a test issuer.
func ssoFixture(t *testing.T) (*fixture, *oidctest.CodeFlow) {
	iss := oidctest.New()
	t.Cleanup(iss.Close)
	flow := iss.ServeCodeFlow("dash", "s3cret")
	f := newFixtureWith(t, true, func(f *fixture, o *dashboard.Options, _ *http.Server) {
		o.OIDC = &dashboard.OIDCOptions{Issuer: iss.URL, ClientID: "dash", ClientSecret: "s3cret",
			RedirectURL: "https://" + f.srv.Listener.Addr().String() + "/login/oidc/callback",
			GroupsClaim: "realm_access.roles", UserClaim: "email"}
	})
	return f, flow
}

// sso follows the flow with a browser-like client and returns the client and the final
// status and page.
func sso(t *testing.T, f *fixture) (*http.Client, int, string) {
	c := f.client()
	c.CheckRedirect = nil // follow: dashboard -> issuer -> dashboard
	resp, err := c.Get(f.srv.URL + "/login/oidc")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c, resp.StatusCode, b.String()
}

func TestSingleSignOn(t *testing.T) {
	f, flow := ssoFixture(t)
	flow.SetUser(map[string]any{"sub": "u-123", "email": "ada@example.com", "realm_access": map[string]any{"roles": []any{"oncall"}}})
	c, code, page := sso(t, f)
	if code != 200 || !strings.Contains(page, `id="signedin"`) {
		t.Fatalf("after the sign-on: %d\n%s", code, page)
	}
	code, page = f.get(c, "/approvals")
	if code != 200 || !strings.Contains(page, `<span id="user">ada@example.com</span>`) || !strings.Contains(page, `id="role">approver<`) {
		t.Errorf("logged in page: %d\n%s", code, page)
	}
	ok := f.events(audit.CodeAdminLogin)
	if len(ok) != 1 || ok[0].Principal != "ada@example.com" || ok[0].AuthMethod != "oidc" {
		t.Errorf("login events %+v", ok)
	}
	// A person whose groups have no role is refused, and recorded.
	flow.SetUser(map[string]any{"sub": "u-9", "email": "mallory@example.com", "realm_access": map[string]any{"roles": []any{"dev"}}})
	c, code, _ = sso(t, f)
	if code != http.StatusUnauthorized {
		t.Errorf("no role: %d, want 401", code)
	}
	if code, _ := f.get(c, "/audit"); code != http.StatusSeeOther {
		t.Errorf("no role: a page answered %d, want a redirect to /login", code)
	}
	// A callback this browser did not start (login CSRF: an attacker's code and state) is
	// refused.
	other := f.client()
	if code, _ := f.get(other, "/login/oidc/callback?"+url.Values{"code": {"x"}, "state": {"y"}}.Encode()); code != http.StatusForbidden {
		t.Errorf("a callback without this browser's state: %d, want 403", code)
	}
	if n := len(f.events(audit.CodeAdminLoginFailed)); n != 1 {
		t.Errorf("%d failed sign-ons recorded, want 1", n)
	}
}
