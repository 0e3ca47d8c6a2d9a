package e2e

// The harness: it builds the portcullis binary (and the fake server) once per test run,
// starts and stops processes, writes configuration files, and speaks MCP to the gateway
// over Streamable HTTP and over stdio.
//
// Every process a test starts is killed in t.Cleanup (with its process group), its stderr
// goes to the test log when the test fails, and every wait has a deadline.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var (
	repoRoot      string // the module root
	e2eDir        string // what deps.sh installed: .e2e/ or $PORTCULLIS_E2E
	nodeBin       string // Node 22 (the system node may be too old)
	everythingBin string // the Go SDK's conformance server
	binDir        string // where TestMain built the binaries
	portcullisBin string
	crashyBin     string
	buildErr      error
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	repoRoot = root
	// Gateways without a store path keep their store under $XDG_STATE_HOME: a scratch one,
	// so that tests neither read nor change the user's own database.
	state, err := os.MkdirTemp("", "portcullis-e2e-state-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(state)
	os.Setenv("XDG_STATE_HOME", state)
	e2eDir = os.Getenv("PORTCULLIS_E2E")
	if e2eDir == "" {
		e2eDir = filepath.Join(repoRoot, ".e2e")
	}
	nodeBin = filepath.Join(e2eDir, "bin", "node")
	everythingBin = filepath.Join(e2eDir, "bin", "everything-server")
	if !testing.Short() && fileExists(nodeBin) {
		dir, err := os.MkdirTemp("", "portcullis-e2e-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		binDir = dir
		start := time.Now()
		buildErr = buildBinaries(dir)
		if buildErr == nil {
			fmt.Fprintf(os.Stderr, "e2e: built portcullis (race detector: %v) in %s\n", raceEnabled, time.Since(start).Round(time.Millisecond))
		}
	}
	return m.Run()
}

// buildBinaries builds portcullis and the fake server into dir. When the tests run with
// -race, so does the gateway: a data race in it then shows up in its stderr (and fails the
// test that started it).
func buildBinaries(dir string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	portcullisBin = filepath.Join(dir, "portcullis")
	crashyBin = filepath.Join(dir, "crashy")
	builds := [][]string{
		{"build", "-o", portcullisBin, "./cmd/portcullis"},
		{"build", "-o", crashyBin, "./test/e2e/testdata/crashy"},
	}
	if raceEnabled {
		builds[0] = slices.Insert(builds[0], 1, "-race")
	}
	for _, args := range builds {
		cmd := exec.CommandContext(ctx, goBin, args...)
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// requireE2E skips the test under -short or when the Node tools are not installed, and fails
// it when the binaries could not be built.
func requireE2E(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("e2e: skipped under -short (these tests start real MCP servers and clients)")
	}
	if !fileExists(nodeBin) {
		t.Skipf("e2e: %s is missing; run `bash test/e2e/deps.sh` to install the e2e dependencies", nodeBin)
	}
	if buildErr != nil {
		t.Fatalf("e2e: building the binaries failed: %v", buildErr)
	}
}

// requireFile skips the test when an installed dependency is missing.
func requireFile(t *testing.T, p string) {
	t.Helper()
	if !fileExists(p) {
		t.Skipf("e2e: %s is missing; run `bash test/e2e/deps.sh`", p)
	}
}

// nodeModule is the path of a file inside an installed npm package.
func nodeModule(elem ...string) string {
	return filepath.Join(append([]string{e2eDir, "node_modules"}, elem...)...)
}

// Entry points of the installed npm packages (from their package.json "bin").
var (
	memoryServerJS     = func() string { return nodeModule("@modelcontextprotocol", "server-memory", "dist", "index.js") }
	filesystemServerJS = func() string { return nodeModule("@modelcontextprotocol", "server-filesystem", "dist", "index.js") }
	inspectorJS        = func() string {
		return nodeModule("@modelcontextprotocol", "inspector", "clients", "launcher", "build", "index.js")
	}
)

// ---- processes ----

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reading test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Proc is a process started by a test.
type Proc struct {
	Name   string
	Cmd    *exec.Cmd
	Stderr *syncBuffer
	done   chan struct{}
	err    error
}

// startProc starts cmd in its own process group, with stderr captured (unless cmd sets its
// own), and registers its end: SIGTERM, then SIGKILL to the group, with bounded waits; the
// captured stderr goes to the log when the test failed, and a data race reported by a
// race-enabled binary fails the test.
func startProc(t *testing.T, name string, cmd *exec.Cmd) *Proc {
	t.Helper()
	p := &Proc{Name: name, Cmd: cmd, Stderr: &syncBuffer{}, done: make(chan struct{})}
	if cmd.Stderr == nil {
		cmd.Stderr = p.Stderr
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.WaitDelay = 3 * time.Second // do not hang on pipes held open by grandchildren
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s (%s): %v", name, cmd.Path, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Stop()
		out := p.Stderr.String()
		if strings.Contains(out, "WARNING: DATA RACE") {
			t.Errorf("%s reported a data race:\n%s", name, out)
		} else if t.Failed() && out != "" {
			t.Logf("---- stderr of %s (%s) ----\n%s---- end of %s ----", name, strings.Join(cmd.Args, " "), out, name)
		}
	})
	return p
}

// Stop ends the process (and its group) if it is still running, and waits for it.
func (p *Proc) Stop() {
	if p.Exited() {
		return
	}
	pid := p.Cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	if p.Wait(5 * time.Second) {
		return
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	p.Wait(5 * time.Second)
}

// Wait waits up to d for the process to exit and reports whether it did.
func (p *Proc) Wait(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ExitCode is the exit status once the process has exited (-1 for a signal).
func (p *Proc) ExitCode() int {
	<-p.done
	return p.Cmd.ProcessState.ExitCode()
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitFor polls cond every 50ms until it returns nil, the process p exits (when p is not
// nil), or d passes; it returns the last error.
func waitFor(d time.Duration, p *Proc, cond func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if p != nil && p.Exited() {
			return fmt.Errorf("%s exited (%v) while waiting: %v", p.Name, p.err, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gave up after %s: %v", d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startEverythingHTTP starts the Go SDK conformance server on a free loopback port and
// returns its MCP URL once it answers HTTP.
func startEverythingHTTP(t *testing.T) string {
	t.Helper()
	requireFile(t, everythingBin)
	for attempt := 0; ; attempt++ {
		addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
		p := startProc(t, "everything-server", exec.Command(everythingBin, "-http", addr, "-stateless=false"))
		url := "http://" + addr + "/mcp"
		err := waitFor(20*time.Second, p, func() error {
			resp, err := http.Get(url) // any HTTP answer will do
			if err != nil {
				return err
			}
			resp.Body.Close()
			return nil
		})
		if err == nil {
			return url
		}
		if attempt < 2 && strings.Contains(p.Stderr.String(), "address already in use") {
			continue
		}
		t.Fatalf("everything-server did not come up at %s: %v\n%s", url, err, p.Stderr.String())
	}
}

// ---- configuration ----

// ServerConfig is one upstream server of a gateway configuration.
type ServerConfig struct {
	Name      string
	URL       string
	Transport string
	Command   string
	Args      []string
	Env       map[string]string
	Dir       string // the server's working directory (cwd)
	// Sandbox is the server's sandbox block as a YAML flow mapping ("{read_write: [...]}").
	Sandbox string
}

// GatewayConfig is a gateway configuration; Guards is YAML put under "guards:" as it is
// (indented by the caller).
type GatewayConfig struct {
	Listen          string
	Servers         []ServerConfig
	Guards          string
	MaxMessageBytes int
	// ProcessEnv is added to the environment of the gateway process.
	ProcessEnv []string
	// Store is the store's path (pins, approvals, audit); writeConfig puts one in the
	// configuration's directory when empty, so that no test uses the home directory's.
	Store string
	// StoreDSN puts the store in PostgreSQL instead (fleet tests).
	StoreDSN string
	// Extra is more top-level YAML, with {{listen}} replaced by the listen address.
	Extra string
}

func q(s string) string { return strconv.Quote(s) } // a YAML double-quoted scalar

// YAML renders the configuration file.
func (c GatewayConfig) YAML() string {
	var b strings.Builder
	if c.Listen != "" {
		fmt.Fprintf(&b, "listen: %s\n", q(c.Listen))
	}
	b.WriteString("auth: none\nlog:\n  level: debug\n")
	switch {
	case c.StoreDSN != "":
		fmt.Fprintf(&b, "store: {driver: postgres, dsn: %s}\n", q(c.StoreDSN))
	case c.Store != "":
		fmt.Fprintf(&b, "store: {path: %s}\n", q(c.Store))
	}
	if c.Extra != "" {
		b.WriteString(strings.ReplaceAll(c.Extra, "{{listen}}", c.Listen))
		if !strings.HasSuffix(c.Extra, "\n") {
			b.WriteString("\n")
		}
	}
	if c.MaxMessageBytes > 0 {
		fmt.Fprintf(&b, "max_message_bytes: %d\n", c.MaxMessageBytes)
	}
	b.WriteString("servers:\n")
	for _, s := range c.Servers {
		fmt.Fprintf(&b, "  - name: %s\n", q(s.Name))
		if s.URL != "" {
			fmt.Fprintf(&b, "    url: %s\n", q(s.URL))
		}
		if s.Transport != "" {
			fmt.Fprintf(&b, "    transport: %s\n", q(s.Transport))
		}
		if s.Command != "" {
			fmt.Fprintf(&b, "    command: %s\n", q(s.Command))
		}
		if len(s.Args) > 0 {
			var qs []string
			for _, a := range s.Args {
				qs = append(qs, q(a))
			}
			fmt.Fprintf(&b, "    args: [%s]\n", strings.Join(qs, ", "))
		}
		if len(s.Env) > 0 {
			b.WriteString("    env:\n")
			keys := make([]string, 0, len(s.Env))
			for k := range s.Env {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				fmt.Fprintf(&b, "      %s: %s\n", k, q(s.Env[k]))
			}
		}
		if s.Dir != "" {
			fmt.Fprintf(&b, "    cwd: %s\n", q(s.Dir))
		}
		if s.Sandbox != "" {
			fmt.Fprintf(&b, "    sandbox: %s\n", s.Sandbox)
		}
	}
	if c.Guards != "" {
		b.WriteString("guards:\n")
		b.WriteString(c.Guards)
		if !strings.HasSuffix(c.Guards, "\n") {
			b.WriteString("\n")
		}
	}
	return b.String()
}

// writeConfig writes the configuration to a file in a temporary directory and checks it
// with `portcullis config check`.
func writeConfig(t *testing.T, c GatewayConfig) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "portcullis.yaml")
	if c.Store == "" && c.StoreDSN == "" {
		c.Store = filepath.Join(dir, "portcullis.db")
	}
	if err := os.WriteFile(path, []byte(c.YAML()), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, portcullisBin, "config", "check", path).CombinedOutput()
	if err != nil {
		t.Fatalf("portcullis config check: %v\n%s\n--- config ---\n%s", err, out, c.YAML())
	}
	return path
}

// ---- the gateway ----

// Gateway is a running `portcullis serve`.
type Gateway struct {
	*Proc
	URL    string // the MCP endpoint
	Base   string // http://host:port
	Config string // the configuration file
}

// startServe writes c (with a free loopback listen address) and starts `portcullis serve`,
// returning once /healthz answers.
func startServe(t *testing.T, c GatewayConfig) *Gateway {
	t.Helper()
	for attempt := 0; ; attempt++ {
		c.Listen = "127.0.0.1:" + strconv.Itoa(freePort(t))
		cfg := writeConfig(t, c)
		cmd := exec.Command(portcullisBin, "serve", "--config", cfg)
		if len(c.ProcessEnv) > 0 {
			cmd.Env = append(os.Environ(), c.ProcessEnv...)
		}
		p := startProc(t, "portcullis serve", cmd)
		g := &Gateway{Proc: p, Base: "http://" + c.Listen, URL: "http://" + c.Listen + "/mcp", Config: cfg}
		err := waitFor(20*time.Second, p, func() error {
			resp, err := http.Get(g.Base + "/healthz")
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
			continue
		}
		t.Fatalf("portcullis serve did not come up: %v\n%s", err, p.Stderr.String())
	}
}

// ---- MCP over Streamable HTTP ----

// Msg is a JSON-RPC message as the tests see it.
type Msg struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method,omitempty"`
	Params  json.RawMessage `json:"params,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *RPCError       `json:"error,omitempty"`
}

// RPCError is a JSON-RPC error object.
type RPCError struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

func (e *RPCError) String() string {
	if e == nil {
		return "<no error>"
	}
	s := fmt.Sprintf("%d %s", e.Code, e.Message)
	if len(e.Data) > 0 {
		s += " " + string(e.Data)
	}
	return s
}

// HTTPResponse is what a POST got back.
type HTTPResponse struct {
	Status      int
	Header      http.Header
	Body        []byte // for JSON replies
	Msg         *Msg   // the response (JSON body, or the SSE event answering the request)
	Events      []Msg  // other messages on the SSE stream (notifications, requests)
	ContentType string
}

const protocolVersion = "2025-11-25"

// HTTPClient is a minimal MCP client over Streamable HTTP (legacy sessions).
type HTTPClient struct {
	URL       string
	SessionID string
	HTTP      *http.Client
	next      atomic.Int64
}

func newHTTPClient(url string) *HTTPClient {
	return &HTTPClient{URL: url, HTTP: &http.Client{Timeout: 2 * time.Minute}}
}

// Post sends body and reads the reply: a JSON body, or an SSE stream read until the
// response to the request (or until the stream ends).
func (c *HTTPClient) Post(ctx context.Context, body []byte) (*HTTPResponse, error) {
	return c.PostWith(ctx, body, nil)
}

// PostWith is Post with extra headers.
func (c *HTTPClient) PostWith(ctx context.Context, body []byte, header http.Header) (*HTTPResponse, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if c.SessionID != "" {
		req.Header.Set("Mcp-Session-Id", c.SessionID)
		req.Header.Set("MCP-Protocol-Version", protocolVersion)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := &HTTPResponse{Status: resp.StatusCode, Header: resp.Header, ContentType: resp.Header.Get("Content-Type")}
	if strings.HasPrefix(out.ContentType, "text/event-stream") {
		var reqID json.RawMessage
		var probe struct {
			ID json.RawMessage `json:"id"`
		}
		if json.Unmarshal(body, &probe) == nil {
			reqID = probe.ID
		}
		err := readSSE(resp.Body, func(data []byte) bool {
			var m Msg
			if err := json.Unmarshal(data, &m); err != nil {
				out.Events = append(out.Events, Msg{Method: "<unparseable: " + string(data) + ">"})
				return true
			}
			if m.Method == "" && bytes.Equal(m.ID, reqID) {
				out.Msg = &m
				return false
			}
			out.Events = append(out.Events, m)
			return true
		})
		if err != nil && out.Msg == nil {
			return out, fmt.Errorf("reading the SSE stream: %w", err)
		}
		return out, nil
	}
	out.Body, err = io.ReadAll(resp.Body)
	if err != nil {
		return out, err
	}
	if len(bytes.TrimSpace(out.Body)) > 0 {
		var m Msg
		if err := json.Unmarshal(out.Body, &m); err != nil {
			return out, fmt.Errorf("HTTP %d, body is not JSON-RPC: %v: %.300s", out.Status, err, out.Body)
		}
		out.Msg = &m
	}
	return out, nil
}

// readSSE calls fn with the data of each event until fn returns false or the stream ends.
func readSSE(r io.Reader, fn func(data []byte) bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	var data []byte
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if len(data) > 0 {
				if !fn(data) {
					return nil
				}
				data = nil
			}
		case strings.HasPrefix(line, "data:"):
			if len(data) > 0 {
				data = append(data, '\n')
			}
			data = append(data, strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " ")...)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if len(data) > 0 {
		fn(data)
	}
	return io.ErrUnexpectedEOF
}

// Request sends a request and returns the response message; a JSON-RPC error is in
// Msg.Error, not in the Go error.
func (c *HTTPClient) Request(ctx context.Context, method string, params any) (*Msg, error) {
	id := c.next.Add(1)
	body, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params})
	if err != nil {
		return nil, err
	}
	resp, err := c.Post(ctx, body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	if resp.Msg == nil {
		return nil, fmt.Errorf("%s: HTTP %d without a response: %.300s", method, resp.Status, resp.Body)
	}
	return resp.Msg, nil
}

// Notify sends a notification and expects 202 Accepted.
func (c *HTTPClient) Notify(ctx context.Context, method string, params any) error {
	m := map[string]any{"jsonrpc": "2.0", "method": method}
	if params != nil {
		m["params"] = params
	}
	body, _ := json.Marshal(m)
	resp, err := c.Post(ctx, body)
	if err != nil {
		return err
	}
	if resp.Status != http.StatusAccepted {
		return fmt.Errorf("%s: HTTP %d, want 202: %.300s", method, resp.Status, resp.Body)
	}
	return nil
}

// Initialize opens a session.
func (c *HTTPClient) Initialize(ctx context.Context) (*Msg, error) {
	id := c.next.Add(1)
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": "initialize", "params": map[string]any{
		"protocolVersion": protocolVersion,
		"capabilities":    map[string]any{},
		"clientInfo":      map[string]any{"name": "portcullis-e2e", "version": "1.0.0"},
	}})
	resp, err := c.Post(ctx, body)
	if err != nil {
		return nil, fmt.Errorf("initialize: %w", err)
	}
	if resp.Msg == nil || resp.Msg.Error != nil {
		return resp.Msg, fmt.Errorf("initialize: HTTP %d: %v %s", resp.Status, resp.Msg.errorOrNil(), resp.Body)
	}
	c.SessionID = resp.Header.Get("Mcp-Session-Id")
	if c.SessionID == "" {
		return resp.Msg, errors.New("initialize: no Mcp-Session-Id in the response")
	}
	return resp.Msg, c.Notify(ctx, "notifications/initialized", nil)
}

func (m *Msg) errorOrNil() *RPCError {
	if m == nil {
		return nil
	}
	return m.Error
}

// mustInit opens a session or fails the test.
func mustInit(t *testing.T, url string) *HTTPClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := newHTTPClient(url)
	if _, err := c.Initialize(ctx); err != nil {
		t.Fatalf("MCP session with %s: %v", url, err)
	}
	return c
}

// CallTool calls a tool.
func (c *HTTPClient) CallTool(ctx context.Context, name string, args any) (*Msg, error) {
	if args == nil {
		args = map[string]any{}
	}
	return c.Request(ctx, "tools/call", map[string]any{"name": name, "arguments": args})
}

// ToolNames lists the tools, following nextCursor.
func (c *HTTPClient) ToolNames(ctx context.Context) ([]string, error) {
	var names []string
	params := map[string]any{}
	for page := 0; page < 50; page++ {
		m, err := c.Request(ctx, "tools/list", params)
		if err != nil {
			return nil, err
		}
		if m.Error != nil {
			return nil, fmt.Errorf("tools/list: %s", m.Error)
		}
		var res struct {
			Tools []struct {
				Name string `json:"name"`
			} `json:"tools"`
			NextCursor *string `json:"nextCursor"`
		}
		if err := json.Unmarshal(m.Result, &res); err != nil {
			return nil, fmt.Errorf("tools/list result: %v", err)
		}
		for _, tool := range res.Tools {
			names = append(names, tool.Name)
		}
		if res.NextCursor == nil || *res.NextCursor == "" {
			return names, nil
		}
		params = map[string]any{"cursor": *res.NextCursor}
	}
	return nil, errors.New("tools/list: too many pages")
}

// toolText returns the text content of a tools/call result, and whether it is an error
// result (isError).
func toolText(result json.RawMessage) (string, bool) {
	var r struct {
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
		IsError bool `json:"isError"`
	}
	json.Unmarshal(result, &r)
	var parts []string
	for _, c := range r.Content {
		if c.Type == "text" {
			parts = append(parts, c.Text)
		}
	}
	return strings.Join(parts, "\n"), r.IsError
}

// mustToolText calls a tool and returns its text, failing on any kind of error.
func mustToolText(t *testing.T, c *HTTPClient, name string, args any) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	m, err := c.CallTool(ctx, name, args)
	if err != nil {
		t.Fatalf("tools/call %s: %v", name, err)
	}
	if m.Error != nil {
		t.Fatalf("tools/call %s: JSON-RPC error %s", name, m.Error)
	}
	text, isErr := toolText(m.Result)
	if isErr {
		t.Fatalf("tools/call %s: tool error: %s", name, text)
	}
	return text
}

// ---- MCP over stdio (`portcullis run`) ----

// StdioClient drives `portcullis run` over its stdin and stdout.
type StdioClient struct {
	*Proc
	stdin io.WriteCloser
	msgs  chan Msg // everything read from stdout
	next  atomic.Int64
}

// startRun starts `portcullis run --config cfg server`.
func startRun(t *testing.T, cfg, server string) *StdioClient {
	t.Helper()
	cmd := exec.Command(portcullisBin, "run", "--config", cfg, server)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &StdioClient{stdin: stdin, msgs: make(chan Msg, 100)}
	c.Proc = startProc(t, "portcullis run", cmd)
	go func() {
		defer close(c.msgs)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
		for sc.Scan() {
			var m Msg
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				m = Msg{Method: "<unparseable: " + sc.Text() + ">"}
			}
			c.msgs <- m
		}
	}()
	return c
}

// Send writes one message.
func (c *StdioClient) Send(m map[string]any) error {
	m["jsonrpc"] = "2.0"
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = c.stdin.Write(append(b, '\n'))
	return err
}

// Await waits up to d for the response with id.
func (c *StdioClient) Await(id int64, d time.Duration) (*Msg, error) {
	want := strconv.FormatInt(id, 10)
	timeout := time.After(d)
	for {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				return nil, errors.New("portcullis run closed its stdout")
			}
			if m.Method == "" && string(m.ID) == want {
				return &m, nil
			}
		case <-timeout:
			return nil, fmt.Errorf("no response to request %d within %s", id, d)
		}
	}
}

// Request sends a request and waits up to d for its response.
func (c *StdioClient) Request(method string, params any, d time.Duration) (*Msg, error) {
	id := c.next.Add(1)
	if err := c.Send(map[string]any{"id": id, "method": method, "params": params}); err != nil {
		return nil, err
	}
	return c.Await(id, d)
}

// Initialize performs the handshake.
func (c *StdioClient) Initialize() error {
	m, err := c.Request("initialize", map[string]any{
		"protocolVersion": protocolVersion,
		"capabilities":    map[string]any{},
		"clientInfo":      map[string]any{"name": "portcullis-e2e", "version": "1.0.0"},
	}, 60*time.Second)
	if err != nil {
		return err
	}
	if m.Error != nil {
		return fmt.Errorf("initialize: %s", m.Error)
	}
	return c.Send(map[string]any{"method": "notifications/initialized"})
}

// CloseStdin closes the client's end, as a client that goes away does.
func (c *StdioClient) CloseStdin() error { return c.stdin.Close() }

// ---- Node scripts ----

// nodeCommand is node with args, in its own process group, which is killed when ctx ends
// (a script may have started `portcullis run`, and that its servers).
func nodeCommand(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, nodeBin, args...)
	cmd.Env = append(os.Environ(), "PORTCULLIS_E2E="+e2eDir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 3 * time.Second
	return cmd
}

// runNode runs a Node script with a deadline and returns stdout; stderr goes to the test
// log when the command fails.
func runNode(t *testing.T, d time.Duration, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := nodeCommand(ctx, args...)
	cmd.Env = append(cmd.Env, env...)
	var stdout bytes.Buffer
	stderr := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	err := cmd.Run()
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // whatever the script left behind
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("timed out after %s: %w", d, err)
		}
		t.Logf("node %s: %v\n---- stderr ----\n%s---- stdout ----\n%s", strings.Join(args, " "), err, stderr.String(), stdout.String())
	} else if strings.Contains(stderr.String(), "WARNING: DATA RACE") {
		t.Errorf("portcullis (under node %s) reported a data race:\n%s", strings.Join(args, " "), stderr.String())
	}
	return stdout.String(), err
}

// markerWait waits up to d for any of the named files to appear in dir and returns the
// first one found.
func markerWait(dir string, d time.Duration, names ...string) (string, error) {
	var found string
	err := waitFor(d, nil, func() error {
		for _, n := range names {
			if fileExists(filepath.Join(dir, n)) {
				found = n
				return nil
			}
		}
		return fmt.Errorf("none of %v in %s", names, dir)
	})
	return found, err
}
