package identity

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/identity/certtest"
	"github.com/portcullis-mcp/portcullis/internal/identity/oidctest"
)

func request(header ...string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "http://gw.example:8931/mcp", nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Add(header[i], header[i+1])
	}
	return r
}

func authErr(t *testing.T, err error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T), want *identity.Error", err, err)
	}
	return e
}

func TestAuthenticatorAPIKeys(t *testing.T) {
	ks := newMemKeys()
	tok, _ := ks.add(t, "ci-bot", "ci")
	a, err := NewAuthenticator(Options{APIKeys: NewAPIKeys(ks, 0, nil)})
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Authenticate(request("Authorization", "Bearer "+tok))
	if err != nil || p.ID != "ci-bot" {
		t.Fatalf("valid key: %+v, %v", p, err)
	}
	if p, err := a.Authenticate(request("Authorization", "bearer "+tok)); err != nil || p.ID != "ci-bot" {
		t.Errorf("scheme is case-insensitive: %v", err)
	}
	other, _, _ := NewKey("x", nil, time.Now())
	tests := []struct {
		name   string
		req    *http.Request
		reason string
		code   string // error= in the challenge; "" for none
	}{
		{"no credentials", request(), "authentication required: send an API key", ""},
		{"unknown key", request("Authorization", "Bearer "+other), "unknown API key", "invalid_token"},
		{"wrong secret", request("Authorization", "Bearer "+tok[:20]+strings.Repeat("x", secretLen)), "wrong secret", "invalid_token"},
		{"a JWT", request("Authorization", "Bearer eyJhbGciOiJSUzI1NiJ9.e30.sig"), "not an API key", "invalid_token"},
		{"basic", request("Authorization", "Basic dTpw"), `scheme "Basic" is not accepted`, "invalid_request"},
		{"empty bearer", request("Authorization", "Bearer "), "empty bearer token", "invalid_request"},
		{"two headers", request("Authorization", "Bearer "+tok, "Authorization", "Bearer "+tok), "more than one", "invalid_request"},
		{"X-API-Key", request("X-API-Key", tok), "X-API-Key is not accepted", "invalid_request"},
		{"key in the query", httptest.NewRequest(http.MethodPost, "http://gw.example:8931/mcp?api_key="+tok, nil), "credentials in the URL are refused", "invalid_request"},
		{"key in the query, valid header", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "http://gw.example:8931/mcp?x="+tok, nil)
			r.Header.Set("Authorization", "Bearer "+tok)
			return r
		}(), "credentials in the URL are refused", "invalid_request"},
		{"access_token in the query", httptest.NewRequest(http.MethodPost, "http://gw.example:8931/mcp?access_token=abc", nil), `"access_token"`, "invalid_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.Authenticate(tc.req)
			if err == nil {
				t.Fatal("accepted")
			}
			e := authErr(t, err)
			if e.Status != http.StatusUnauthorized {
				t.Errorf("status %d", e.Status)
			}
			if !strings.Contains(e.Reason, tc.reason) {
				t.Errorf("reason %q, want %q", e.Reason, tc.reason)
			}
			if strings.Contains(e.Reason, tok[20:]) || strings.Contains(e.Challenge, tok[20:]) {
				t.Error("the refusal repeats the secret")
			}
			if !strings.HasPrefix(e.Challenge, `Bearer realm="portcullis"`) {
				t.Errorf("challenge %q", e.Challenge)
			}
			if got := strings.Contains(e.Challenge, `error="`+tc.code+`"`); tc.code != "" && !got {
				t.Errorf("challenge %q lacks error=%q", e.Challenge, tc.code)
			}
			if tc.code == "" && strings.Contains(e.Challenge, "error=") {
				t.Errorf("challenge %q has an error code for a request without credentials", e.Challenge)
			}
		})
	}
	// An ordinary query parameter is fine.
	r := httptest.NewRequest(http.MethodPost, "http://gw.example:8931/mcp?debug=1", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	if _, err := a.Authenticate(r); err != nil {
		t.Errorf("harmless query: %v", err)
	}
}

func TestAuthenticatorOIDCChallenges(t *testing.T) {
	iss := oidctest.New()
	defer iss.Close()
	const resource = "https://gw.example/mcp"
	o := newOIDC(t, iss, func(c *OIDCConfig) { c.Audience = resource; c.ScopesRequired = []string{"mcp:tools"} })
	ks := newMemKeys()
	tok, _ := ks.add(t, "ci-bot")
	a, err := NewAuthenticator(Options{OIDC: o, APIKeys: NewAPIKeys(ks, 0, nil), Resource: resource})
	if err != nil {
		t.Fatal(err)
	}
	// No credentials: 401, resource_metadata and scope, no error code.
	_, err = a.Authenticate(request())
	e := authErr(t, err)
	want := `Bearer resource_metadata="https://gw.example/.well-known/oauth-protected-resource/mcp", scope="mcp:tools"`
	if e.Status != 401 || e.Challenge != want {
		t.Errorf("no credentials: %d %q, want 401 %q", e.Status, e.Challenge, want)
	}
	// Bad token: invalid_token with a description.
	c := iss.Claims("alice", "https://other.example/mcp")
	_, err = a.Authenticate(request("Authorization", "Bearer "+iss.Sign(c)))
	e = authErr(t, err)
	if e.Status != 401 || !strings.Contains(e.Challenge, `error="invalid_token", error_description="expected audience`) || !strings.Contains(e.Challenge, "resource_metadata=") {
		t.Errorf("wrong aud: %d %q", e.Status, e.Challenge)
	}
	// Missing scope: 403 insufficient_scope.
	c = iss.Claims("alice", resource)
	_, err = a.Authenticate(request("Authorization", "Bearer "+iss.Sign(c)))
	e = authErr(t, err)
	if e.Status != 403 || !strings.Contains(e.Challenge, `error="insufficient_scope"`) || !strings.Contains(e.Challenge, `scope="mcp:tools"`) {
		t.Errorf("missing scope: %d %q", e.Status, e.Challenge)
	}
	c["scope"] = "mcp:tools"
	if p, err := a.Authenticate(request("Authorization", "Bearer "+iss.Sign(c))); err != nil || p.ID != "alice" {
		t.Errorf("valid token: %+v %v", p, err)
	}
	// API keys still work on the same listener.
	if p, err := a.Authenticate(request("Authorization", "Bearer "+tok)); err != nil || p.ID != "ci-bot" {
		t.Errorf("API key next to OIDC: %+v %v", p, err)
	}
}

func TestAPIKeysNotAcceptedWhenOnlyOIDC(t *testing.T) {
	iss := oidctest.New()
	defer iss.Close()
	a, _ := NewAuthenticator(Options{OIDC: newOIDC(t, iss, nil)})
	tok, _, _ := NewKey("a", nil, time.Now())
	_, err := a.Authenticate(request("Authorization", "Bearer "+tok))
	if e := authErr(t, err); !strings.Contains(e.Reason, "API keys are not accepted") {
		t.Errorf("reason %q", e.Reason)
	}
}

func TestMetadata(t *testing.T) {
	iss := oidctest.New()
	defer iss.Close()
	a, _ := NewAuthenticator(Options{OIDC: newOIDC(t, iss, func(c *OIDCConfig) { c.ScopesRequired = []string{"mcp:tools"} })})
	h := a.MetadataHandler("/mcp")
	for _, path := range []string{MetadataPath, MetadataPath + "/mcp"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://gw.example:8931"+path, nil))
		var m struct {
			Resource      string   `json:"resource"`
			AuthServers   []string `json:"authorization_servers"`
			Scopes        []string `json:"scopes_supported"`
			BearerMethods []string `json:"bearer_methods_supported"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		if m.Resource != "http://gw.example:8931/mcp" || len(m.AuthServers) != 1 || m.AuthServers[0] != iss.URL ||
			strings.Join(m.Scopes, " ") != "mcp:tools" || strings.Join(m.BearerMethods, " ") != "header" {
			t.Errorf("%s: %s", path, rec.Body)
		}
	}
	ks := newMemKeys()
	b, _ := NewAuthenticator(Options{APIKeys: NewAPIKeys(ks, 0, nil)})
	if b.MetadataHandler("/mcp") != nil {
		t.Error("metadata served without an issuer")
	}
	if got := MetadataURL("https://gw.example:8443/team/mcp"); got != "https://gw.example:8443/.well-known/oauth-protected-resource/team/mcp" {
		t.Errorf("MetadataURL = %q", got)
	}
}

// mTLS through a real handshake: a certificate of the client CA names the principal; a
// certificate of another CA is refused during the handshake.
func TestMTLS(t *testing.T) {
	serverCA, clientCA, otherCA := certtest.NewCA("server CA"), certtest.NewCA("client CA"), certtest.NewCA("other CA")
	for _, tc := range []struct {
		identity string
		cert     certtest.Options
		want     string
	}{
		{"", certtest.Options{CN: "agent-1", URIs: []string{"spiffe://example.org/agent"}, DNS: []string{"agent.example"}, Client: true}, "spiffe://example.org/agent"},
		{"san", certtest.Options{CN: "agent-1", DNS: []string{"agent.example"}, Client: true}, "agent.example"},
		{"san", certtest.Options{CN: "agent-1", Client: true}, "agent-1"},
		{"cn", certtest.Options{CN: "agent-1", DNS: []string{"agent.example"}, OU: []string{"ops"}, Client: true}, "agent-1"},
	} {
		a, _ := NewAuthenticator(Options{MTLS: &MTLS{Identity: tc.identity}})
		var got Principal
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, err := a.Authenticate(r)
			if err != nil {
				http.Error(w, err.Error(), 401)
				return
			}
			got = p
		}))
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCA.Localhost().TLS}, ClientCAs: clientCA.Pool(), ClientAuth: tls.RequireAndVerifyClientCert}
		srv.StartTLS()
		do := func(ca *certtest.CA) (*http.Response, error) {
			leaf := ca.Issue(tc.cert)
			c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: serverCA.Pool(), Certificates: []tls.Certificate{leaf.TLS}}}}
			return c.Get(srv.URL)
		}
		resp, err := do(clientCA)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || got.ID != tc.want || got.Method != "mtls" {
			t.Errorf("identity %q: status %d, principal %+v, want id %q", tc.identity, resp.StatusCode, got, tc.want)
		}
		if _, err := do(otherCA); err == nil {
			t.Errorf("a certificate of another CA passed the handshake")
		}
		srv.Close()
	}
}

func TestMTLSNoName(t *testing.T) {
	ca := certtest.NewCA("ca")
	leaf := ca.Issue(certtest.Options{Client: true})
	m := &MTLS{Identity: "cn"}
	cs := &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{leaf.TLS.Leaf}}}
	_, ok, err := m.Principal(cs)
	if !ok || err == nil {
		t.Errorf("certificate without a CN: ok %v, err %v", ok, err)
	}
}
