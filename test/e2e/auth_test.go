package e2e

// Authentication at the edge, through a real `portcullis serve` and a real HTTP client:
// each method is accepted with valid credentials and refused, with 401/403 and a reason,
// for each kind of bad credential; a refused request never reaches the server (a fake HTTP
// MCP server records everything it receives), and the client's Authorization header never
// reaches it either.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/identity/certtest"
	"github.com/portcullis-mcp/portcullis/internal/identity/oidctest"
)

// ---- a fake HTTP MCP server that records ----

type recorded struct {
	Method string // JSON-RPC method ("" for responses), or "HTTP <verb>" for non-POST
	Name   string // params.name
	Header http.Header
}

type recordingServer struct {
	URL string
	mu  sync.Mutex
	got []recorded
}

// startRecordingServer starts a minimal stateless Streamable HTTP MCP server with the tools
// echo and secret.
func startRecordingServer(t *testing.T) *recordingServer {
	t.Helper()
	rs := &recordingServer{}
	srv := &http.Server{Handler: http.HandlerFunc(rs.serve)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	rs.URL = "http://" + ln.Addr().String() + "/mcp"
	return rs
}

func (rs *recordingServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		rs.record(recorded{Method: "HTTP " + r.Method, Header: r.Header.Clone()})
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	var m struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params struct {
			Name            string `json:"name"`
			ProtocolVersion string `json:"protocolVersion"`
		} `json:"params"`
	}
	body, _ := io.ReadAll(r.Body)
	json.Unmarshal(body, &m)
	rs.record(recorded{Method: m.Method, Name: m.Params.Name, Header: r.Header.Clone()})
	if len(m.ID) == 0 || m.Method == "" {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	var result any
	switch m.Method {
	case "initialize":
		v := m.Params.ProtocolVersion
		if v == "" {
			v = protocolVersion
		}
		result = map[string]any{"protocolVersion": v, "capabilities": map[string]any{"tools": map[string]any{}},
			"serverInfo": map[string]any{"name": "recorder", "version": "1"}}
	case "tools/list":
		schema := map[string]any{"type": "object"}
		result = map[string]any{"tools": []any{
			map[string]any{"name": "echo", "inputSchema": schema},
			map[string]any{"name": "secret", "inputSchema": schema},
		}}
	case "tools/call":
		result = map[string]any{"content": []any{map[string]any{"type": "text", "text": "called " + m.Params.Name}}}
	case "ping":
		result = map[string]any{}
	default:
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`, m.ID)
		return
	}
	res, _ := json.Marshal(result)
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":%s}`, m.ID, res)
}

func (rs *recordingServer) record(r recorded) {
	rs.mu.Lock()
	rs.got = append(rs.got, r)
	rs.mu.Unlock()
}

func (rs *recordingServer) received() []recorded {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return append([]recorded(nil), rs.got...)
}

func (rs *recordingServer) count() int { return len(rs.received()) }

// calls are the tools/call names received.
func (rs *recordingServer) calls() []string {
	var out []string
	for _, r := range rs.received() {
		if r.Method == "tools/call" {
			out = append(out, r.Name)
		}
	}
	return out
}

// checkNoClientCredentials fails the test if any request the server received carried an
// Authorization header, or any of the secrets in a header.
func (rs *recordingServer) checkNoClientCredentials(t *testing.T, secrets ...string) {
	t.Helper()
	for _, r := range rs.received() {
		if v := r.Header.Values("Authorization"); len(v) > 0 {
			t.Errorf("the server received Authorization %q with %s", v, r.Method)
		}
		for k, vs := range r.Header {
			for _, v := range vs {
				for _, s := range secrets {
					if s != "" && strings.Contains(v, s) {
						t.Errorf("the server received the client's credential in header %s", k)
					}
				}
			}
		}
	}
}

// ---- a gateway with authentication ----

type authGateway struct {
	*Proc
	Base   string // scheme://127.0.0.1:port
	URL    string // the MCP endpoint
	Config string
	Dir    string // holds the configuration and the store
	Client *http.Client
}

// startAuthServe writes a configuration (body gets the base URL, for audiences) and starts
// `portcullis serve`, returning once /healthz answers through client (nil: a plain client).
func startAuthServe(t *testing.T, scheme string, client *http.Client, body func(base string) string) *authGateway {
	t.Helper()
	if client == nil {
		client = &http.Client{Timeout: time.Minute}
	}
	dir := t.TempDir()
	for attempt := 0; ; attempt++ {
		addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
		base := scheme + "://" + addr
		cfg := filepath.Join(dir, "portcullis.yaml")
		yaml := fmt.Sprintf("listen: %q\nlog: {level: debug}\nstore: {path: portcullis.db}\n%s", addr, body(base))
		if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		p := startProc(t, "portcullis serve", exec.Command(portcullisBin, "serve", "--config", cfg))
		g := &authGateway{Proc: p, Base: base, URL: base + "/mcp", Config: cfg, Dir: dir, Client: client}
		err := waitFor(20*time.Second, p, func() error {
			resp, err := client.Get(base + "/healthz")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("/healthz: %s", resp.Status)
			}
			return nil
		})
		if err == nil {
			return g
		}
		if attempt < 2 && strings.Contains(p.Stderr.String(), "address already in use") {
			p.Stop()
			continue
		}
		t.Fatalf("portcullis serve did not come up: %v\n--- config ---\n%s\n--- stderr ---\n%s", err, yaml, p.Stderr.String())
	}
}

func serversYAML(upstream string) string {
	return fmt.Sprintf("servers:\n  - name: rec\n    url: %q\n", upstream)
}

// keysCLI runs `portcullis keys ...` and returns its stdout.
func keysCLI(t *testing.T, cfg string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, portcullisBin, append([]string{"keys", args[0], "--config", cfg}, args[1:]...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("portcullis keys %v: %v\n%s", args, err, stderr.String())
	}
	return strings.TrimSpace(stdout.String())
}

// initBody is a legacy initialize request.
func initBody() []byte {
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": map[string]any{
		"protocolVersion": protocolVersion, "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "portcullis-e2e", "version": "1.0.0"},
	}})
	return b
}

// post sends body to the gateway with the given headers, through its client.
func (g *authGateway) post(t *testing.T, url string, body []byte, header ...string) (*HTTPResponse, error) {
	t.Helper()
	c := newHTTPClient(url)
	c.HTTP = g.Client
	h := http.Header{}
	for i := 0; i+1 < len(header); i += 2 {
		h.Add(header[i], header[i+1])
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return c.PostWith(ctx, body, h)
}

// session opens a legacy session with the given headers and calls tool echo; it fails the
// test unless both work.
func (g *authGateway) session(t *testing.T, header ...string) *HTTPClient {
	t.Helper()
	c := newHTTPClient(g.URL)
	c.HTTP = g.Client
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h := http.Header{}
	for i := 0; i+1 < len(header); i += 2 {
		h.Add(header[i], header[i+1])
	}
	resp, err := c.PostWith(ctx, initBody(), h)
	if err != nil || resp.Msg == nil || resp.Msg.Error != nil || resp.Status != 200 {
		t.Fatalf("initialize with %v: %v, HTTP %d, %s %.300s", header, err, statusOf(resp), resp.msgError(), bodyOf(resp))
	}
	c.SessionID = resp.Header.Get("Mcp-Session-Id")
	call, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": map[string]any{"name": "echo", "arguments": map[string]any{}}})
	resp, err = c.PostWith(ctx, call, h)
	if err != nil || resp.Msg == nil || resp.Msg.Error != nil {
		t.Fatalf("tools/call echo with %v: %v, HTTP %d, %s", header, err, statusOf(resp), resp.msgError())
	}
	if text, _ := toolText(resp.Msg.Result); text != "called echo" {
		t.Fatalf("tools/call echo = %q", text)
	}
	return c
}

func statusOf(r *HTTPResponse) int {
	if r == nil {
		return 0
	}
	return r.Status
}

func bodyOf(r *HTTPResponse) []byte {
	if r == nil {
		return nil
	}
	return r.Body
}

func (r *HTTPResponse) msgError() *RPCError {
	if r == nil || r.Msg == nil {
		return nil
	}
	return r.Msg.Error
}

// refusal is an expected refusal: a request (headers, optional URL suffix) and what the
// answer must be.
type refusal struct {
	name      string
	header    []string
	query     string // appended to the URL
	status    int
	reason    string // in the JSON-RPC error message
	challenge string // in WWW-Authenticate ("" to skip the check)
}

// checkRefusals sends an initialize for each case and checks the status, the reason, the
// challenge, and that the server received nothing.
func (g *authGateway) checkRefusals(t *testing.T, rs *recordingServer, cases []refusal) {
	t.Helper()
	before := rs.count()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := g.post(t, g.URL+tc.query, initBody(), tc.header...)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != tc.status {
				t.Errorf("HTTP %d, want %d: %.300s", resp.Status, tc.status, resp.Body)
			}
			if resp.Msg == nil || resp.Msg.Error == nil || !strings.Contains(resp.Msg.Error.Message, tc.reason) {
				t.Errorf("error %s, want a reason containing %q", resp.msgError(), tc.reason)
			}
			if ch := resp.Header.Get("WWW-Authenticate"); !strings.Contains(ch, tc.challenge) {
				t.Errorf("WWW-Authenticate %q, want it to contain %q", ch, tc.challenge)
			}
		})
	}
	if n := rs.count(); n != before {
		t.Errorf("refused requests reached the server: %v", rs.received()[before:])
	}
}

var printedKeyRE = regexp.MustCompile(`pc_[a-z2-7]{16}_[A-Za-z0-9_-]{43}`)

// ---- tests ----

func TestAuthAPIKeys(t *testing.T) {
	requireE2E(t)
	rs := startRecordingServer(t)
	g := startAuthServe(t, "http", nil, func(string) string { return "auth: {api_keys: true}\n" + serversYAML(rs.URL) })
	alice := keysCLI(t, g.Config, "create", "--name", "alice", "--groups", "dev")
	revoked := keysCLI(t, g.Config, "create", "--name", "old")
	revokedID := strings.Split(revoked, "_")[1]
	keysCLI(t, g.Config, "revoke", revokedID)
	if !printedKeyRE.MatchString(alice) {
		t.Fatalf("keys create printed %q", alice)
	}

	g.session(t, "Authorization", "Bearer "+alice)
	rs.checkNoClientCredentials(t, alice)

	aliceID := strings.Split(alice, "_")[1]
	wrongSecret := "pc_" + aliceID + "_" + strings.Repeat("A", 43)
	unknown := "pc_" + strings.Repeat("a", 16) + "_" + strings.Repeat("A", 43)
	g.checkRefusals(t, rs, []refusal{
		{name: "no credentials", status: 401, reason: "authentication required", challenge: `Bearer realm="portcullis"`},
		{name: "unknown key", header: []string{"Authorization", "Bearer " + unknown}, status: 401, reason: "unknown API key", challenge: `error="invalid_token"`},
		{name: "wrong key", header: []string{"Authorization", "Bearer " + wrongSecret}, status: 401, reason: "wrong secret", challenge: `error="invalid_token"`},
		{name: "revoked key", header: []string{"Authorization", "Bearer " + revoked}, status: 401, reason: "revoked", challenge: `error="invalid_token"`},
		{name: "key in the query string", query: "?api_key=" + alice, status: 401, reason: "credentials in the URL are refused", challenge: `error="invalid_request"`},
		{name: "key in the query string and the header", header: []string{"Authorization", "Bearer " + alice}, query: "?key=" + alice, status: 401, reason: "credentials in the URL"},
		{name: "X-API-Key", header: []string{"X-API-Key", alice}, status: 401, reason: "X-API-Key is not accepted"},
		{name: "basic auth", header: []string{"Authorization", "Basic YWxpY2U6cHc="}, status: 401, reason: `"Basic" is not accepted`},
		{name: "a JWT without an issuer", header: []string{"Authorization", "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln"}, status: 401, reason: "no token issuer"},
	})

	// A key revoked while the gateway runs stops working within the cache time (5s).
	c := g.session(t, "Authorization", "Bearer "+alice)
	keysCLI(t, g.Config, "revoke", aliceID)
	start := time.Now()
	err := waitFor(15*time.Second, g.Proc, func() error {
		m, err := c.CallToolWith(t, "echo", "Authorization", "Bearer "+alice)
		if err != nil {
			return nil // refused at the HTTP level: see below
		}
		return fmt.Errorf("still accepted: %v", m)
	})
	if err != nil {
		t.Fatalf("revoked key: %v", err)
	}
	t.Logf("revocation took effect after %s", time.Since(start).Round(100*time.Millisecond))
	resp, _ := g.post(t, g.URL, initBody(), "Authorization", "Bearer "+alice)
	if resp.Status != 401 || !strings.Contains(resp.msgError().String(), "revoked") {
		t.Errorf("revoked while running: HTTP %d %s", resp.Status, resp.msgError())
	}
	if out := keysCLI(t, g.Config, "list"); !strings.Contains(out, aliceID) || strings.Count(out, "revoked") != 2 {
		t.Errorf("keys list:\n%s", out)
	}
}

// CallToolWith calls a tool in c's session with extra headers; an HTTP refusal is an error.
func (c *HTTPClient) CallToolWith(t *testing.T, name string, header ...string) (*Msg, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": c.next.Add(100), "method": "tools/call", "params": map[string]any{"name": name, "arguments": map[string]any{}}})
	h := http.Header{}
	for i := 0; i+1 < len(header); i += 2 {
		h.Add(header[i], header[i+1])
	}
	resp, err := c.PostWith(ctx, body, h)
	if err != nil {
		return nil, err
	}
	if resp.Status != 200 {
		return nil, fmt.Errorf("HTTP %d %s", resp.Status, resp.msgError())
	}
	return resp.Msg, nil
}

// Without an auth section, serve creates a key on first start, prints it once, and
// requires it.
func TestAuthSecureByDefault(t *testing.T) {
	requireE2E(t)
	rs := startRecordingServer(t)
	g := startAuthServe(t, "http", nil, func(string) string { return serversYAML(rs.URL) })
	key := printedKeyRE.FindString(g.Stderr.String())
	if key == "" {
		t.Fatalf("no key printed at first start:\n%s", g.Stderr.String())
	}
	g.checkRefusals(t, rs, []refusal{{name: "no credentials", status: 401, reason: "authentication required"}})
	g.session(t, "Authorization", "Bearer "+key)

	// A restart prints no new key, and the first one still works.
	g.Stop()
	yaml, _ := os.ReadFile(g.Config)
	p := startProc(t, "portcullis serve (restart)", exec.Command(portcullisBin, "serve", "--config", g.Config))
	if err := waitFor(20*time.Second, p, func() error {
		resp, err := http.Get(g.Base + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}); err != nil {
		t.Fatalf("restart: %v\n%s\n%s", err, yaml, p.Stderr.String())
	}
	if printedKeyRE.MatchString(p.Stderr.String()) {
		t.Errorf("the restart printed a new key:\n%s", p.Stderr.String())
	}
	g.Proc = p
	g.session(t, "Authorization", "Bearer "+key)
}

func TestAuthNoneRefusedOnNonLoopback(t *testing.T) {
	requireE2E(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "p.yaml")
	os.WriteFile(cfg, []byte("auth: none\nservers: [{name: a, url: \"http://127.0.0.1:1/mcp\"}]\n"), 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, portcullisBin, "serve", "--config", cfg, "--listen", "0.0.0.0:"+strconv.Itoa(freePort(t))).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "allow_remote_none") {
		t.Errorf("auth: none on 0.0.0.0: %v\n%s", err, out)
	}
}

func TestAuthOIDC(t *testing.T) {
	requireE2E(t)
	iss := oidctest.New()
	defer iss.Close()
	other := oidctest.New()
	defer other.Close()
	rs := startRecordingServer(t)
	g := startAuthServe(t, "http", nil, func(base string) string {
		return fmt.Sprintf(`auth:
  oidc:
    issuer: %q
    audience: %q
    scopes_required: [mcp:tools]
`, iss.URL, base+"/mcp") + serversYAML(rs.URL) + `guards:
  authz:
    rules:
      - name: devs
        effect: allow
        when: '"dev" in principal.groups && principal.claims.email.endsWith("@example.com")'
`
	})
	aud := g.URL
	claims := func(mod func(map[string]any)) map[string]any {
		c := iss.Claims("alice", aud)
		c["scope"] = "openid mcp:tools"
		c["groups"] = []any{"dev"}
		c["email"] = "alice@example.com"
		if mod != nil {
			mod(c)
		}
		return c
	}
	bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }
	valid := iss.Sign(claims(nil))
	g.session(t, bearer(valid)...)
	rs.checkNoClientCredentials(t, valid)

	// Groups and claims reach the policy: bob, without the dev group, is denied.
	bobTok := iss.Sign(claims(func(c map[string]any) { c["groups"] = []any{"sales"}; c["sub"] = "bob" }))
	resp, err := g.post(t, g.URL, initBody(), bearer(bobTok)...)
	if err != nil || resp.Status != 200 {
		t.Fatalf("bob initialize: %v %d", err, statusOf(resp))
	}
	bob := newHTTPClient(g.URL)
	bob.SessionID = resp.Header.Get("Mcp-Session-Id")
	m, err := bob.CallToolWith(t, "echo", bearer(bobTok)...)
	if err != nil || m.Error == nil || m.Error.Code != -32010 {
		t.Errorf("bob (no dev group) calling echo: %v %s", err, m.errorOrNil())
	}

	now := time.Now()
	metaURL := g.Base + "/.well-known/oauth-protected-resource/mcp"
	g.checkRefusals(t, rs, []refusal{
		{name: "no credentials", status: 401, reason: "authentication required", challenge: `Bearer resource_metadata="` + metaURL + `", scope="mcp:tools"`},
		{name: "expired", header: bearer(iss.Sign(claims(func(c map[string]any) { c["exp"] = now.Add(-5 * time.Minute).Unix() }))), status: 401, reason: "expired", challenge: `error="invalid_token"`},
		{name: "wrong aud", header: bearer(iss.Sign(claims(func(c map[string]any) { c["aud"] = "https://other.example/mcp" }))), status: 401, reason: "audience", challenge: `error="invalid_token"`},
		{name: "wrong iss", header: bearer(iss.Sign(claims(func(c map[string]any) { c["iss"] = other.URL }))), status: 401, reason: "different provider"},
		{name: "another issuer's token", header: bearer(other.Sign(claims(func(c map[string]any) { c["iss"] = other.URL }))), status: 401, reason: "unknown key id"},
		{name: "alg none", header: bearer(oidctest.SignNone(claims(nil))), status: 401, reason: `"none" is not accepted`},
		{name: "HS256 keyed with the RSA public key", header: bearer(oidctest.SignHMACWithPublicKey(iss.Current(), claims(nil))), status: 401, reason: `"HS256" is not accepted`},
		{name: "unknown kid", header: bearer(oidctest.SignRSA(oidctest.NewKey(), claims(nil))), status: 401, reason: "unknown key id"},
		{name: "token in the query string", query: "?access_token=" + valid, status: 401, reason: "credentials in the URL are refused"},
		{name: "missing scope", header: bearer(iss.Sign(claims(func(c map[string]any) { c["scope"] = "openid" }))), status: 403, reason: "lacks scope mcp:tools",
			challenge: `error="insufficient_scope"`},
	})

	// RFC 9728 metadata, at the root and for the /mcp path.
	for _, path := range []string{"/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"} {
		resp, err := http.Get(g.Base + path)
		if err != nil {
			t.Fatal(err)
		}
		var meta struct {
			Resource      string   `json:"resource"`
			AuthServers   []string `json:"authorization_servers"`
			Scopes        []string `json:"scopes_supported"`
			BearerMethods []string `json:"bearer_methods_supported"`
		}
		json.NewDecoder(resp.Body).Decode(&meta)
		resp.Body.Close()
		if resp.StatusCode != 200 || meta.Resource != g.URL || len(meta.AuthServers) != 1 || meta.AuthServers[0] != iss.URL ||
			strings.Join(meta.Scopes, " ") != "mcp:tools" || strings.Join(meta.BearerMethods, " ") != "header" {
			t.Errorf("%s: HTTP %d %+v", path, resp.StatusCode, meta)
		}
	}

	// Key rotation: the issuer signs with a new key; the gateway fetches the key set again
	// (unknown key ids may cause that once per 5s) and accepts the token.
	iss.Rotate(false)
	rotated := iss.Sign(claims(nil))
	err = waitFor(15*time.Second, g.Proc, func() error {
		resp, err := g.post(t, g.URL, initBody(), bearer(rotated)...)
		if err != nil {
			return err
		}
		if resp.Status != 200 {
			return fmt.Errorf("HTTP %d %s", resp.Status, resp.msgError())
		}
		return nil
	})
	if err != nil {
		t.Errorf("token signed with the rotated key: %v", err)
	}
	rs.checkNoClientCredentials(t, valid, rotated)
}

func TestAuthMTLS(t *testing.T) {
	requireE2E(t)
	serverCA, clientCA, otherCA := certtest.NewCA("server CA"), certtest.NewCA("client CA"), certtest.NewCA("other CA")
	dir := t.TempDir()
	srvCert, srvKey, err := serverCA.Localhost().WriteFiles(dir, "server")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "clients.pem")
	os.WriteFile(caFile, clientCA.PEM, 0o644)
	clientFor := func(ca *certtest.CA, uri string) *http.Client {
		tc := &tls.Config{RootCAs: serverCA.Pool()}
		if ca != nil {
			// Always sent: Go's client would otherwise send nothing when the server's list of
			// acceptable CAs does not name the certificate's issuer.
			cert := ca.Issue(certtest.Options{CN: "agent", URIs: []string{uri}, Client: true}).TLS
			tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
		}
		return &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: tc}}
	}
	const agent = "spiffe://example.org/agent"
	good := clientFor(clientCA, agent)
	rs := startRecordingServer(t)
	tlsYAML := fmt.Sprintf("tls: {cert: %q, key: %q, client_ca: %q}\n", srvCert, srvKey, caFile)
	policy := `guards:
  authz:
    rules:
      - {name: agent, effect: allow, when: 'principal.method == "mtls" && principal.id == "` + agent + `"'}
`
	g := startAuthServe(t, "https", good, func(string) string {
		return "auth: {mtls: {}}\n" + tlsYAML + serversYAML(rs.URL) + policy
	})
	g.session(t)

	// Another name from the right CA authenticates, and the policy (on principal.id) denies.
	g.Client = clientFor(clientCA, "spiffe://example.org/intruder")
	c := newHTTPClient(g.URL)
	c.HTTP = g.Client
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.Initialize(ctx); err != nil {
		t.Fatal(err)
	}
	if m, err := c.CallTool(ctx, "echo", nil); err != nil || m.Error == nil || m.Error.Code != -32010 {
		t.Errorf("another principal: %v %s", err, m.errorOrNil())
	}

	before := rs.count()
	for name, cl := range map[string]*http.Client{"certificate of another CA": clientFor(otherCA, agent), "no certificate": clientFor(nil, "")} {
		g.Client = cl
		if resp, err := g.post(t, g.URL, initBody()); err == nil {
			t.Errorf("%s: HTTP %d, want a refused handshake", name, resp.Status)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	if rs.count() != before {
		t.Errorf("refused connections reached the server")
	}
	g.Stop()

	// Combined with API keys: a certificate is optional, but one from another CA is still
	// refused at the handshake, whatever key comes with it.
	rs2 := startRecordingServer(t)
	g2 := startAuthServe(t, "https", clientFor(nil, ""), func(string) string {
		return "auth: {api_keys: true, mtls: {}}\n" + tlsYAML + serversYAML(rs2.URL)
	})
	key := keysCLI(t, g2.Config, "create", "--name", "ci")
	g2.session(t, "Authorization", "Bearer "+key)
	g2.Client = good
	g2.session(t)
	g2.Client = clientFor(otherCA, agent)
	if _, err := g2.post(t, g2.URL, initBody(), "Authorization", "Bearer "+key); err == nil {
		t.Error("a certificate of another CA passed the handshake next to a valid key")
	}
	g2.Client = clientFor(nil, "")
	g2.checkRefusals(t, rs2, []refusal{{name: "neither", status: 401, reason: "send an API key (Authorization: Bearer pc_...), or a client certificate"}})
}

// A 2026-07-28 client whose Mcp-Name header names an allowed tool while the body calls a
// denied one is refused, and the server never sees the call; so are duplicate names.
func TestAuthModernHeaderMismatch(t *testing.T) {
	requireE2E(t)
	rs := startRecordingServer(t)
	g := startAuthServe(t, "http", nil, func(string) string {
		return "auth: {api_keys: true}\n" + serversYAML(rs.URL) + `guards:
  authz:
    rules:
      - {name: echo-only, effect: allow, tools: [echo]}
`
	})
	key := keysCLI(t, g.Config, "create", "--name", "alice")
	send := func(name, header string, rawParams string) *HTTPResponse {
		meta := `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"e2e","version":"1"}}`
		params := rawParams
		if params == "" {
			params = fmt.Sprintf(`{"name":%q,"arguments":{},%s}`, name, meta)
		} else {
			params = strings.Replace(params, "META", meta, 1)
		}
		body := []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":` + params + `}`)
		resp, err := g.post(t, g.URL, body, "Authorization", "Bearer "+key, "MCP-Protocol-Version", "2026-07-28", "Mcp-Method", "tools/call", "Mcp-Name", header)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if resp := send("echo", "echo", ""); resp.Msg == nil || resp.Msg.Error != nil {
		t.Fatalf("allowed call: HTTP %d %s %.300s", resp.Status, resp.msgError(), resp.Body)
	}
	resp := send("secret", "echo", "")
	if resp.Status != 400 || resp.msgError() == nil || !strings.Contains(resp.msgError().Message, "Header mismatch") {
		t.Errorf("header echo, body secret: HTTP %d %s", resp.Status, resp.msgError())
	}
	resp = send("", "echo", `{"name":"echo","name":"secret","arguments":{},META}`)
	if resp.msgError() == nil {
		t.Errorf("duplicate name: HTTP %d, accepted", resp.Status)
	}
	resp = send("secret", "secret", "")
	if resp.msgError() == nil || resp.msgError().Code != -32010 {
		t.Errorf("denied tool: HTTP %d %s", resp.Status, resp.msgError())
	}
	for _, name := range rs.calls() {
		if name != "echo" {
			t.Errorf("the server received tools/call %q", name)
		}
	}
	rs.checkNoClientCredentials(t, key)
}

// A session id presented by another principal is answered as unknown, and logged with
// both principals.
func TestAuthSessionBoundToPrincipal(t *testing.T) {
	requireE2E(t)
	rs := startRecordingServer(t)
	g := startAuthServe(t, "http", nil, func(string) string { return "auth: {api_keys: true}\n" + serversYAML(rs.URL) })
	alice := keysCLI(t, g.Config, "create", "--name", "alice")
	mallory := keysCLI(t, g.Config, "create", "--name", "mallory")
	c := g.session(t, "Authorization", "Bearer "+alice)
	before := rs.count()
	if _, err := c.CallToolWith(t, "echo", "Authorization", "Bearer "+mallory); err == nil || !strings.Contains(err.Error(), "HTTP 404") {
		t.Errorf("mallory with alice's session: %v, want HTTP 404", err)
	}
	if rs.count() != before {
		t.Error("the call reached the server")
	}
	err := waitFor(5*time.Second, nil, func() error {
		log := g.Stderr.String()
		if strings.Contains(log, "session id presented by another principal") && strings.Contains(log, "session_owner=alice") && strings.Contains(log, "principal=mallory") {
			return nil
		}
		return fmt.Errorf("not logged with both principals")
	})
	if err != nil {
		t.Error(err)
	}
	if _, err := c.CallToolWith(t, "echo", "Authorization", "Bearer "+alice); err != nil {
		t.Errorf("alice after the attempt: %v", err)
	}
}
