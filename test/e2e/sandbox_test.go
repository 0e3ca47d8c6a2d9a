package e2e

// The sandbox of local servers (internal/sandbox): a hostile server's escapes fail in the
// sandbox and succeed outside it; egress goes only through the gateway's proxy; the npm
// reference servers work inside it; a WebAssembly build of a server behaves as its native
// build and cannot leave its preopened directory; a missing protection that a server
// requires stops that server, not the gateway.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	sandboxServerOnce sync.Once
	sandboxServerBin  string
	sandboxServerWasm string
	sandboxServerErr  error
)

// buildSandboxServer builds testdata/sandboxserver for Linux and for WebAssembly (wasip1).
// wasmMemory is the wasm server's memory limit. The launcher runs the module in its own
// process under that limit, and a launcher built with the race detector (the tests build
// the gateway with -race when they run with it) maps far more than a normal one.
var wasmMemory = map[bool]string{false: "256MiB", true: "1024GiB"}[raceEnabled]

func buildSandboxServer(t *testing.T) (native, wasm string) {
	t.Helper()
	sandboxServerOnce.Do(func() {
		sandboxServerBin = filepath.Join(binDir, "sandboxserver")
		sandboxServerWasm = filepath.Join(binDir, "sandboxserver.wasm")
		for _, b := range []struct {
			out string
			env []string
		}{{sandboxServerBin, nil}, {sandboxServerWasm, []string{"GOOS=wasip1", "GOARCH=wasm"}}} {
			cmd := exec.Command("go", "build", "-o", b.out, "./test/e2e/testdata/sandboxserver")
			cmd.Dir = repoRoot
			cmd.Env = append(os.Environ(), b.env...)
			if out, err := cmd.CombinedOutput(); err != nil {
				sandboxServerErr = fmt.Errorf("%v\n%s", err, out)
				return
			}
		}
	})
	if sandboxServerErr != nil {
		t.Fatalf("building testdata/sandboxserver: %v", sandboxServerErr)
	}
	return sandboxServerBin, sandboxServerWasm
}

// callTool calls a tool and returns its text and whether it was a tool error; a JSON-RPC
// error fails the test.
func callTool(t *testing.T, c *HTTPClient, name string, args any) (string, bool) {
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
	return toolText(m.Result)
}

// hostAddress is a non-loopback address of this machine.
func hostAddress(t *testing.T) string {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	t.Skip("no non-loopback IPv4 address to play the external address")
	return ""
}

// accept serves a TCP listener that accepts and closes every connection.
func accept(t *testing.T, addr string) string {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().String()
}

func TestSandboxHostileServer(t *testing.T) {
	requireE2E(t)
	bin, _ := buildSandboxServer(t)
	home, work, outside, dir := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)
	key := filepath.Join(home, ".ssh", "id_rsa")
	os.WriteFile(key, []byte("the user's ssh key"), 0o600)
	loopback := accept(t, "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(accept(t, "0.0.0.0:0"))
	external := net.JoinHostPort(hostAddress(t), port)
	auditFile := filepath.Join(dir, "audit.jsonl")

	env := map[string]string{"HOME": home, "DECLARED": "declared-value"}
	g := startServe(t, GatewayConfig{
		Servers: []ServerConfig{
			{Name: "jailed", Command: bin, Env: env,
				Sandbox: "{read_write: [" + q(work) + "], processes: 32, memory: 256MiB}"},
			{Name: "open", Command: bin, Env: env, Sandbox: "{enabled: false}"},
		},
		// The gateway's own detectors would refuse most of these arguments: off, so that
		// every attempt reaches the server and only the sandbox stands in its way.
		Guards: "  detect-args: {disable: [pathtrav, ssrf, cmdinj, canary]}\n" +
			"  audit: {file: " + q(auditFile) + ", results: full}\n",
		ProcessEnv: []string{"USER=gateway-user", "XDG_CONFIG_HOME=" + filepath.Join(home, ".config")},
	})
	c := mustInit(t, g.URL)

	attempts := []struct {
		name string
		tool string
		args map[string]any
	}{
		{"read ~/.ssh/id_rsa", "read_file", map[string]any{"path": key}},
		{"read /etc/shadow", "read_file", map[string]any{"path": "/etc/shadow"}},
		{"write outside its directory", "write_file", map[string]any{"path": filepath.Join(outside, "planted"), "text": "x"}},
		{"list other processes", "ps", map[string]any{"pid": g.Proc.Cmd.Process.Pid}},
		{"connect to a loopback port", "connect", map[string]any{"address": loopback}},
		{"connect to an external address", "connect", map[string]any{"address": external}},
		{"fork-bomb", "fork_bomb", map[string]any{"n": 100}},
		{"allocate without bound", "alloc", map[string]any{"mb": 768}},
		{"ptrace", "ptrace", nil},
		{"mount", "mount", map[string]any{"dir": work}},
	}
	for _, a := range attempts {
		t.Run(a.name, func(t *testing.T) {
			text, isErr := callTool(t, c, "open__"+a.tool, a.args)
			if isErr || !strings.HasPrefix(text, "OK") {
				t.Fatalf("outside the sandbox the attempt should succeed (else the test proves nothing): %s", text)
			}
			text, isErr = callTool(t, c, "jailed__"+a.tool, a.args)
			if !isErr || !strings.HasPrefix(text, "FAILED") {
				t.Fatalf("in the sandbox the attempt succeeded: %s", text)
			}
			t.Logf("refused in the sandbox: %s", text)
		})
	}
	t.Run("print its environment", func(t *testing.T) {
		open, _ := callTool(t, c, "open__env", nil)
		jailed, _ := callTool(t, c, "jailed__env", nil)
		if !strings.Contains(open, "USER=gateway-user") || !strings.Contains(open, "XDG_CONFIG_HOME=") {
			t.Fatalf("outside the sandbox the server should see the gateway's USER and XDG_CONFIG_HOME:\n%s", open)
		}
		allowed := map[string]bool{"PATH": true, "HOME": true, "LANG": true, "LC_ALL": true, "TERM": true,
			"npm_config_cache": true, "TMPDIR": true, "DECLARED": true}
		for _, l := range strings.Split(strings.TrimPrefix(jailed, "OK: "), "\n") {
			k, _, _ := strings.Cut(l, "=")
			if !allowed[k] {
				t.Errorf("the sandboxed server sees %q, which was not declared", l)
			}
		}
		if !strings.Contains(jailed, "DECLARED=declared-value") {
			t.Errorf("the declared variable is missing:\n%s", jailed)
		}
	})
	// Writing inside its directory works, and the gateway is up after all this.
	if text, isErr := callTool(t, c, "jailed__write_file", map[string]any{"path": filepath.Join(work, "ok"), "text": "fine"}); isErr {
		t.Fatalf("writing in the declared directory failed: %s", text)
	}
	if g.Exited() {
		t.Fatal("the gateway exited")
	}
	if text, _ := callTool(t, c, "jailed__echo", map[string]any{"text": "still here"}); text != "OK: still here" {
		t.Fatalf("echo after the attempts: %q", text)
	}
	// The audit trail has the sandbox's start and every refused attempt with its outcome.
	b, err := os.ReadFile(auditFile)
	if err != nil {
		t.Fatal(err)
	}
	trail := string(b)
	if !strings.Contains(trail, `"code":"PC8501I"`) || !strings.Contains(trail, "landlock ABI") {
		t.Errorf("the audit trail has no sandbox start event (PC8501I)")
	}
	for _, a := range attempts {
		found := false
		sc := bufio.NewScanner(strings.NewReader(trail))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			l := sc.Text()
			if strings.Contains(l, `"server":"jailed"`) && strings.Contains(l, `"tool":"`+a.tool+`"`) && strings.Contains(l, "FAILED") {
				found = true
			}
		}
		if !found {
			t.Errorf("the audit trail lacks the refused %s attempt", a.name)
		}
	}
}

func TestSandboxEgress(t *testing.T) {
	requireE2E(t)
	bin, _ := buildSandboxServer(t)
	host := hostAddress(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello from outside") }))
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = ln
	srv.StartTLS()
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	target := net.JoinHostPort(host, port)
	auditFile := filepath.Join(t.TempDir(), "audit.jsonl")
	g := startServe(t, GatewayConfig{
		Servers: []ServerConfig{
			// May reach the test server (at an address of this machine, which may be a
			// private one, hence the allowance), and localhost, which resolves to loopback.
			{Name: "net", Command: bin, Sandbox: "{egress: [" + q(target) + ", " + q("localhost:"+port) + "], egress_allow_private: [" + q(host+"/32") + "]}"},
		},
		Guards: "  detect-args: {disable: [pathtrav, ssrf, cmdinj, canary]}\n  audit: {file: " + q(auditFile) + "}\n",
	})
	c := mustInit(t, g.URL)
	if text, isErr := callTool(t, c, "https_get", map[string]any{"url": "https://" + target, "insecure": true}); isErr || !strings.Contains(text, "hello from outside") {
		t.Fatalf("an allowed host through the proxy: %s", text)
	}
	for _, tc := range []struct{ target, want string }{
		{net.JoinHostPort(host, "1"), "not in the server's sandbox.egress list"},
		{"example.com:443", "not in the server's sandbox.egress list"},
		// Listed, but the name resolves to loopback: the proxy checks the address it dials.
		{"localhost:" + port, "resolves to"},
	} {
		text, isErr := callTool(t, c, "proxy_connect", map[string]any{"target": tc.target})
		if !isErr || !strings.Contains(text, "403") || !strings.Contains(text, tc.want) {
			t.Errorf("CONNECT %s: want a refusal by the proxy (%s), got %s", tc.target, tc.want, text)
		}
	}
	// Around the proxy there is no way out.
	if text, isErr := callTool(t, c, "connect", map[string]any{"address": target}); !isErr {
		t.Errorf("a direct connection to an allowed host: %s", text)
	}
	b, _ := os.ReadFile(auditFile)
	trail := string(b)
	for _, want := range []string{`"code":"PC8601I"`, `"code":"PC8602W"`, "not in the server's sandbox.egress list", "resolves to 127.0.0.1"} {
		if !strings.Contains(trail, want) {
			t.Errorf("the audit trail lacks %q", want)
		}
	}
}

func TestSandboxWasm(t *testing.T) {
	requireE2E(t)
	native, wasm := buildSandboxServer(t)
	dir, other := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(other, "secret"), []byte("outside the preopened directory"), 0o644)
	g := startServe(t, GatewayConfig{
		Servers: []ServerConfig{
			{Name: "native", Command: native, Sandbox: "{read_write: [" + q(dir) + "]}"},
			{Name: "wasm", Sandbox: "{wasm: " + q(wasm) + ", read_write: [" + q(dir) + "], memory: " + wasmMemory + "}"},
		},
		Guards: "  detect-args: {disable: [pathtrav]}\n",
	})
	c := mustInit(t, g.URL)
	calls := []struct {
		tool string
		args map[string]any
	}{
		{"echo", map[string]any{"text": "hello"}},
		{"write_file", map[string]any{"path": filepath.Join(dir, "a.txt"), "text": "written"}},
		{"read_file", map[string]any{"path": filepath.Join(dir, "a.txt")}},
		{"list_dir", map[string]any{"path": dir}},
		{"read_file", map[string]any{"path": filepath.Join(dir, "missing")}},
	}
	for _, cl := range calls {
		n, nErr := callTool(t, c, "native__"+cl.tool, cl.args)
		w, wErr := callTool(t, c, "wasm__"+cl.tool, cl.args)
		if nErr != wErr || (!nErr && n != w) {
			t.Errorf("%s %v: native %q (error %v), wasm %q (error %v)", cl.tool, cl.args, n, nErr, w, wErr)
		}
	}
	for _, p := range []string{filepath.Join(other, "secret"), "/etc/passwd"} {
		if text, isErr := callTool(t, c, "wasm__read_file", map[string]any{"path": p}); !isErr {
			t.Errorf("the wasm server read %s outside its preopened directory: %s", p, text)
		}
	}
}

func TestSandboxNPMServers(t *testing.T) {
	requireE2E(t)
	requireFile(t, filesystemServerJS())
	requireFile(t, memoryServerJS())
	npx, err := exec.LookPath("npx")
	if err != nil {
		t.Skip("npx is not installed")
	}
	parent, err := filepath.EvalSymlinks(t.TempDir()) // the server compares real paths
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(parent, "root")
	os.Mkdir(root, 0o755)
	os.WriteFile(filepath.Join(root, "inside.txt"), []byte("inside"), 0o644)
	os.WriteFile(filepath.Join(parent, "secret.txt"), []byte("outside"), 0o644)
	os.Symlink(filepath.Join(parent, "secret.txt"), filepath.Join(root, "link.txt"))
	mem := t.TempDir()
	g := startServe(t, GatewayConfig{
		Servers: []ServerConfig{
			{Name: "fs", Command: nodeBin, Args: []string{filesystemServerJS(), root}, Sandbox: "{read_write: [" + q(root) + "]}"},
			// Told it may use parent, so that its own symlink check lets the link through:
			// only the sandbox (which grants parent/root) stands in the way.
			{Name: "fsbroad", Command: nodeBin, Args: []string{filesystemServerJS(), parent}, Sandbox: "{read_write: [" + q(root) + "]}"},
			// Through npx, as client configurations start it (from the installed packages).
			{Name: "memory", Command: npx, Args: []string{"-y", "@modelcontextprotocol/server-memory"}, Dir: e2eDir,
				Env: map[string]string{"MEMORY_FILE_PATH": filepath.Join(mem, "memory.jsonl"), "npm_config_update_notifier": "false"}, Sandbox: "{read_write: [" + q(mem) + "]}"},
		},
		Guards: "  detect-args: {disable: [pathtrav]}\n",
	})
	c := mustInit(t, g.URL)
	if got := mustToolText(t, c, "fs__read_text_file", map[string]any{"path": filepath.Join(root, "inside.txt")}); got != "inside" {
		t.Errorf("reading inside: %q", got)
	}
	mustToolText(t, c, "fs__write_file", map[string]any{"path": filepath.Join(root, "new.txt"), "content": "new"})
	if b, _ := os.ReadFile(filepath.Join(root, "new.txt")); string(b) != "new" {
		t.Errorf("the file written through the sandboxed server holds %q", b)
	}
	if got := mustToolText(t, c, "fsbroad__read_text_file", map[string]any{"path": filepath.Join(root, "inside.txt")}); got != "inside" {
		t.Errorf("reading inside (broad): %q", got)
	}
	for _, srv := range []string{"fs", "fsbroad"} {
		for _, p := range []string{filepath.Join(root, "link.txt"), filepath.Join(parent, "secret.txt")} {
			text, isErr := callTool(t, c, srv+"__read_text_file", map[string]any{"path": p})
			if !isErr || strings.Contains(text, "outside") && !strings.Contains(text, "denied") {
				t.Errorf("%s read %s: %s", srv, p, text)
			}
			t.Logf("%s read %s: %s", srv, p, text)
		}
	}
	// The broad server's own checks allow these: the refusals come from the kernel.
	if text, _ := callTool(t, c, "fsbroad__read_text_file", map[string]any{"path": filepath.Join(root, "link.txt")}); !strings.Contains(text, "EACCES") {
		t.Errorf("reading through the symlink: want EACCES from the sandbox, got %s", text)
	}
	if text, isErr := callTool(t, c, "fsbroad__write_file", map[string]any{"path": filepath.Join(parent, "planted.txt"), "content": "x"}); !isErr {
		t.Errorf("the filesystem server wrote outside its directory: %s", text)
	}
	if _, err := os.Stat(filepath.Join(parent, "planted.txt")); err == nil {
		t.Errorf("planted.txt exists outside the declared directory")
	}
	mustToolText(t, c, "memory__create_entities", map[string]any{"entities": []any{map[string]any{"name": "sandbox", "entityType": "test", "observations": []any{"works"}}}})
	if got := mustToolText(t, c, "memory__read_graph", nil); !strings.Contains(got, "sandbox") {
		t.Errorf("memory read_graph: %s", got)
	}
	if _, err := os.Stat(filepath.Join(mem, "memory.jsonl")); err != nil {
		t.Errorf("the memory server did not write its file in its directory: %v", err)
	}
}

func TestSandboxRequiredProtectionMissing(t *testing.T) {
	requireE2E(t)
	bin, _ := buildSandboxServer(t)
	auditFile := filepath.Join(t.TempDir(), "audit.jsonl")
	out, _ := exec.Command(portcullisBin, "sandbox", "check").CombinedOutput()
	t.Logf("portcullis sandbox check:\n%s", out)
	cmd := exec.Command(portcullisBin, "sandbox", "check")
	cmd.Env = append(os.Environ(), "PORTCULLIS_SANDBOX_DISABLE=landlock")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "MISSING landlock") {
		t.Errorf("sandbox check with landlock off: %v\n%s", err, out)
	}
	g := startServe(t, GatewayConfig{
		Servers: []ServerConfig{
			{Name: "strict", Command: bin},
			{Name: "lenient", Command: bin, Sandbox: "{require: [namespaces, seccomp, rlimits]}"},
		},
		Guards:     "  audit: {file: " + q(auditFile) + "}\n",
		ProcessEnv: []string{"PORTCULLIS_SANDBOX_DISABLE=landlock"},
	})
	c := mustInit(t, g.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := c.CallTool(ctx, "strict__echo", map[string]any{"text": "x"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Error == nil || !strings.Contains(m.Error.Message+string(m.Error.Data), "landlock") {
		t.Errorf("a server requiring landlock on a gateway without it: want an error naming landlock, got %s %v", m.Result, m.Error)
	}
	if text, _ := callTool(t, c, "lenient__echo", map[string]any{"text": "x"}); text != "OK: x" {
		t.Errorf("a server not requiring landlock: %q", text)
	}
	if !strings.Contains(g.Stderr.String(), "protection=landlock") {
		t.Errorf("the gateway's log does not say landlock is unavailable")
	}
	b, _ := os.ReadFile(auditFile)
	if trail := string(b); !strings.Contains(trail, `"code":"PC8502W"`) || !strings.Contains(trail, "landlock") {
		t.Errorf("the audit trail has no refusal naming landlock (PC8502W):\n%s", trail)
	}
}
