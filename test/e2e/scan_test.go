package e2e

// End-to-end tests of scan, discover, wrap and unwrap: the real binary over real npm
// servers, hostile test servers (testdata/vulnserver) and client configuration files in a
// temporary home directory.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

var (
	vulnOnce sync.Once
	vulnBin  string
	vulnErr  error
)

// vulnServer builds testdata/vulnserver once.
func vulnServer(t *testing.T) string {
	t.Helper()
	vulnOnce.Do(func() {
		vulnBin = filepath.Join(binDir, "vulnserver")
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		cmd := exec.Command(goBin, "build", "-o", vulnBin, "./test/e2e/testdata/vulnserver")
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			vulnErr = fmt.Errorf("building vulnserver: %v\n%s", err, out)
		}
	})
	if vulnErr != nil {
		t.Fatal(vulnErr)
	}
	return vulnBin
}

// startVulnHTTP starts vulnserver in an HTTP mode and returns its MCP URL.
func startVulnHTTP(t *testing.T, mode string) string {
	t.Helper()
	bin := vulnServer(t)
	for attempt := 0; ; attempt++ {
		addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
		p := startProc(t, "vulnserver "+mode, exec.Command(bin, "-mode", mode, "-http", addr, "-token", "right-token"))
		url := "http://" + addr + "/mcp"
		err := waitFor(10*time.Second, p, func() error {
			resp, err := http.Get(url)
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
		t.Fatalf("vulnserver %s did not come up: %v", mode, err)
	}
}

func nodeServer(pkg string, args ...string) []string {
	return append([]string{nodeBin, nodeModule("@modelcontextprotocol", pkg, "dist", "index.js")}, args...)
}

type scanFinding struct {
	Rule     string `json:"rule"`
	Severity string `json:"severity"`
	Message  string `json:"message"`
	Location struct {
		File    string `json:"file"`
		Line    int    `json:"line"`
		URL     string `json:"url"`
		Server  string `json:"server"`
		Item    string `json:"item"`
		Pointer string `json:"pointer"`
	} `json:"location"`
}

type scanOutput struct {
	Summary  map[string]int `json:"summary"`
	Findings []scanFinding  `json:"findings"`
	Servers  []struct {
		Server  string   `json:"server"`
		File    string   `json:"file"`
		Tools   []string `json:"tools"`
		Error   string   `json:"error"`
		Dynamic bool     `json:"dynamic"`
	} `json:"servers"`
}

// runPortcullis runs the binary with env added to a clean environment and returns stdout,
// stderr and the exit code.
func runPortcullis(t *testing.T, env []string, d time.Duration, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, portcullisBin, args...)
	cmd.Env = append([]string{"PATH=" + filepath.Dir(nodeBin) + ":/usr/bin:/bin", "LANG=C.UTF-8"}, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("portcullis %s: %v\n%s", strings.Join(args, " "), err, errb.String())
		}
		code = ee.ExitCode()
	}
	return out.String(), errb.String(), code
}

func scanJSON(t *testing.T, env []string, args ...string) (scanOutput, int) {
	t.Helper()
	out, errs, code := runPortcullis(t, env, 5*time.Minute, append([]string{"scan", "--format", "json"}, args...)...)
	var so scanOutput
	if err := json.Unmarshal([]byte(out), &so); err != nil {
		t.Fatalf("scan output is not JSON (%v, exit %d):\n%s\n%s", err, code, out, errs)
	}
	return so, code
}

func writeJSON(t *testing.T, path string, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

func stdioEntry(argv []string, env map[string]string) map[string]any {
	e := map[string]any{"command": argv[0], "args": argv[1:]}
	if env != nil {
		e["env"] = env
	}
	return e
}

func validateSARIF(t *testing.T, doc []byte) {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "internal", "scan", "testdata", "sarif-schema-2.1.0.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	schema, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("sarif-schema-2.1.0.json", schema); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("sarif-schema-2.1.0.json")
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatalf("SARIF output is not JSON: %v", err)
	}
	if err := sch.Validate(inst); err != nil {
		t.Fatalf("SARIF output does not validate against the SARIF 2.1.0 schema: %v\n%s", err, doc)
	}
}

// TestScanRealServers scans the reference servers: they start, list, and raise no high or
// critical finding.
func TestScanRealServers(t *testing.T) {
	requireE2E(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	os.MkdirAll(root, 0o755)
	requireFile(t, nodeServer("server-sequential-thinking")[1])
	cfg := filepath.Join(dir, ".cursor", "mcp.json")
	writeJSON(t, cfg, map[string]any{"mcpServers": map[string]any{
		"everything":          stdioEntry(nodeServer("server-everything"), nil),
		"filesystem":          stdioEntry(nodeServer("server-filesystem", root), nil),
		"memory":              stdioEntry(nodeServer("server-memory"), map[string]string{"MEMORY_FILE_PATH": filepath.Join(dir, "memory.jsonl")}),
		"sequential-thinking": stdioEntry(nodeServer("server-sequential-thinking"), nil),
	}})
	env := []string{"HOME=" + dir}
	so, code := scanJSON(t, env, cfg)
	if code != 0 {
		t.Errorf("scan exited %d, want 0 (no high finding)", code)
	}
	if len(so.Servers) != 4 {
		t.Fatalf("scanned %d servers, want 4", len(so.Servers))
	}
	for _, s := range so.Servers {
		if !s.Dynamic || s.Error != "" || len(s.Tools) == 0 {
			t.Errorf("server %s was not listed: dynamic %v, error %q, %d tools", s.Server, s.Dynamic, s.Error, len(s.Tools))
		}
	}
	for _, f := range so.Findings {
		if f.Severity == "high" || f.Severity == "critical" {
			t.Errorf("a reference server raised %s %s at %+v: %s", f.Severity, f.Rule, f.Location, f.Message)
		}
	}
	out, errs, code := runPortcullis(t, env, 5*time.Minute, "scan", "--format", "sarif", cfg)
	if code != 0 {
		t.Fatalf("sarif scan exited %d: %s", code, errs)
	}
	validateSARIF(t, []byte(out))
}

// TestScanHostileServers scans servers with one flaw each: every flaw is reported, where
// it is, and the command injection only with --active.
func TestScanHostileServers(t *testing.T) {
	requireE2E(t)
	bin := vulnServer(t)
	noauth := startVulnHTTP(t, "noauth")
	anyorigin := startVulnHTTP(t, "anyorigin")
	clean := startVulnHTTP(t, "clean")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "project", ".mcp.json")
	// One server per line, so that each has a known line.
	data := fmt.Sprintf(`{
  "mcpServers": {
    "poisoned": {"command": %q, "args": ["-mode", "poisoned"]},
    "cmdinj": {"command": %q, "args": ["-mode", "cmdinj"]},
    "noauth": {"type": "http", "url": %q},
    "anyorigin": {"type": "http", "url": %q, "headers": {"Authorization": "Bearer ${VULN_TOKEN}"}},
    "clean": {"type": "http", "url": %q, "headers": {"Authorization": "Bearer ${VULN_TOKEN}"}}
  }
}
`, bin, bin, noauth, anyorigin, clean)
	os.MkdirAll(filepath.Dir(cfg), 0o755)
	os.WriteFile(cfg, []byte(data), 0o644)
	line := map[string]int{"poisoned": 3, "cmdinj": 4, "noauth": 5, "anyorigin": 6, "clean": 7}
	env := []string{"HOME=" + dir, "VULN_TOKEN=right-token"}

	find := func(so scanOutput, server, rule string) *scanFinding {
		for i, f := range so.Findings {
			if f.Location.Server == server && f.Rule == rule {
				return &so.Findings[i]
			}
		}
		return nil
	}
	check := func(so scanOutput, server, rule string, sevs ...string) *scanFinding {
		t.Helper()
		f := find(so, server, rule)
		if f == nil {
			t.Errorf("no %s finding for server %s; findings: %+v", rule, server, so.Findings)
			return nil
		}
		if !slices.Contains(sevs, f.Severity) {
			t.Errorf("%s on %s has severity %s, want one of %v", rule, server, f.Severity, sevs)
		}
		if f.Location.File != cfg || f.Location.Line != line[server] {
			t.Errorf("%s on %s is located at %s:%d, want %s:%d", rule, server, f.Location.File, f.Location.Line, cfg, line[server])
		}
		return f
	}

	so, code := scanJSON(t, env, cfg)
	if code != 1 {
		t.Errorf("scan exited %d, want 1 (high findings)", code)
	}
	if f := check(so, "poisoned", "tool-poisoning", "high", "critical"); f != nil && (f.Location.Item != "tool:get_weather" || f.Location.Pointer != "/description") {
		t.Errorf("poisoning located at %s %s, want tool:get_weather /description", f.Location.Item, f.Location.Pointer)
	}
	check(so, "noauth", "no-auth", "medium", "high")
	check(so, "anyorigin", "dns-rebinding", "high")
	for _, bad := range []struct{ server, rule string }{
		{"cmdinj", "command-injection"}, {"noauth", "dns-rebinding"}, {"anyorigin", "no-auth"}, {"poisoned", "command-injection"},
	} {
		if find(so, bad.server, bad.rule) != nil {
			t.Errorf("%s reported for %s, which does not have it (or not without --active)", bad.rule, bad.server)
		}
	}
	for _, f := range so.Findings {
		if f.Location.Server == "clean" && f.Rule != "shadowing" {
			t.Errorf("the clean server got %s %s", f.Severity, f.Rule)
		}
		if f.Location.Item == "tool:add" {
			t.Errorf("the benign tool add was reported: %+v", f)
		}
	}

	so, code = scanJSON(t, env, "--active", cfg)
	if code != 1 {
		t.Errorf("active scan exited %d, want 1", code)
	}
	if f := check(so, "cmdinj", "command-injection", "critical"); f != nil && (f.Location.Item != "tool:ping" || f.Location.Pointer != "/inputSchema/properties/host") {
		t.Errorf("command injection located at %s %s, want tool:ping /inputSchema/properties/host", f.Location.Item, f.Location.Pointer)
	}
	for _, server := range []string{"poisoned", "noauth", "anyorigin", "clean"} {
		for _, rule := range []string{"command-injection", "path-traversal", "ssrf"} {
			if find(so, server, rule) != nil {
				t.Errorf("--active reported %s for %s", rule, server)
			}
		}
	}

	out, _, code := runPortcullis(t, env, 5*time.Minute, "scan", "--active", "--format", "sarif", cfg)
	if code != 1 {
		t.Errorf("sarif scan exited %d, want 1", code)
	}
	validateSARIF(t, []byte(out))
	for _, want := range []string{`"ruleId": "PCS401"`, `"ruleId": "PCS202"`, `"ruleId": "PCS301"`, `"ruleId": "PCS302"`, `"startLine": 4`} {
		if !strings.Contains(out, want) {
			t.Errorf("SARIF lacks %s", want)
		}
	}
	// The CI gate: nothing at or above critical without --active.
	if _, _, code := runPortcullis(t, env, 5*time.Minute, "scan", "--fail-on", "critical", cfg); code != 0 {
		t.Errorf("--fail-on critical exited %d without a critical finding", code)
	}
}

// stdioTools starts argv as a client would (with env) and returns its tool names.
func stdioTools(t *testing.T, argv, env []string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	p := startProc(t, filepath.Base(argv[0]), cmd)
	defer p.Stop()
	lines := make(chan []byte, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
		for sc.Scan() {
			lines <- append([]byte(nil), sc.Bytes()...)
		}
		close(lines)
	}()
	send := func(s string) { stdin.Write([]byte(s + "\n")) }
	await := func(id string) json.RawMessage {
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("%s closed stdout; stderr:\n%s", argv, p.Stderr.String())
				}
				var m struct {
					ID     json.RawMessage `json:"id"`
					Method string          `json:"method"`
					Result json.RawMessage `json:"result"`
					Error  json.RawMessage `json:"error"`
				}
				if json.Unmarshal(l, &m) == nil && m.Method == "" && string(m.ID) == id {
					if m.Error != nil {
						t.Fatalf("%s: error %s", argv, m.Error)
					}
					return m.Result
				}
			case <-ctx.Done():
				t.Fatalf("%s: no answer to %s; stderr:\n%s", argv, id, p.Stderr.String())
			}
		}
	}
	send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"e2e","version":"1"}}}`)
	await("1")
	send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	send(`{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}`)
	var res struct {
		Tools []struct {
			Name string `json:"name"`
		} `json:"tools"`
	}
	json.Unmarshal(await("2"), &res)
	var names []string
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
	}
	sort.Strings(names)
	stdin.Close()
	return names
}

func mustReadFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type clientEntry struct {
	Command string            `json:"command"`
	Args    []string          `json:"args"`
	Env     map[string]string `json:"env"`
}

func entryEnv(base []string, e clientEntry) []string {
	env := append([]string{}, base...)
	for k, v := range e.Env {
		env = append(env, k+"="+v)
	}
	return env
}

// TestWrapUnwrap wraps a Cursor and a Claude Code configuration in a home directory, runs
// the wrapped entries for real (the same tools as before, now through portcullis run), and
// unwraps them back to the original bytes. A malformed client file stops everything first.
func TestWrapUnwrap(t *testing.T) {
	requireE2E(t)
	home := t.TempDir()
	root := filepath.Join(home, "root")
	os.MkdirAll(root, 0o755)
	cursor := filepath.Join(home, ".cursor", "mcp.json")
	claude := filepath.Join(home, ".claude.json")
	cursorOrig := writeJSON(t, cursor, map[string]any{"mcpServers": map[string]any{
		"memory": stdioEntry(nodeServer("server-memory"), map[string]string{"MEMORY_FILE_PATH": filepath.Join(home, "memory.jsonl")}),
	}})
	claudeOrig := writeJSON(t, claude, map[string]any{
		"numStartups": 3,
		"mcpServers": map[string]any{
			"filesystem": map[string]any{"type": "stdio", "command": nodeBin, "args": nodeServer("server-filesystem", root)[1:], "env": map[string]string{}},
		},
		"projects": map[string]any{home: map[string]any{"mcpServers": map[string]any{
			"thinking": map[string]any{"type": "stdio", "command": nodeBin, "args": nodeServer("server-sequential-thinking")[1:]},
		}}},
	})
	base := []string{"HOME=" + home, "PATH=" + filepath.Dir(nodeBin) + ":/usr/bin:/bin"}
	read := func(path string) map[string]clientEntry {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			MCPServers map[string]clientEntry `json:"mcpServers"`
			Projects   map[string]struct {
				MCPServers map[string]clientEntry `json:"mcpServers"`
			} `json:"projects"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out := doc.MCPServers
		for _, p := range doc.Projects {
			for k, v := range p.MCPServers {
				out[k] = v
			}
		}
		return out
	}
	before := map[string][]string{}
	for _, f := range []string{cursor, claude} {
		for name, e := range read(f) {
			before[name] = stdioTools(t, append([]string{e.Command}, e.Args...), entryEnv(base, e))
			if len(before[name]) == 0 {
				t.Fatalf("%s lists no tools", name)
			}
		}
	}

	// A malformed file of another client: nothing is written anywhere.
	bad := filepath.Join(home, ".codeium", "windsurf", "mcp_config.json")
	os.MkdirAll(filepath.Dir(bad), 0o755)
	os.WriteFile(bad, []byte(`{"mcpServers": {"x": {"command": "npx",`), 0o644)
	_, errs, code := runPortcullis(t, base, time.Minute, "wrap", "--portcullis", portcullisBin)
	if code == 0 || !strings.Contains(errs, bad) {
		t.Fatalf("wrap with a malformed %s exited %d: %s", bad, code, errs)
	}
	if b, _ := os.ReadFile(cursor); !bytes.Equal(b, cursorOrig) {
		t.Fatal("a failed wrap changed the Cursor file")
	}
	if _, err := os.Stat(filepath.Join(home, ".config", "portcullis")); !os.IsNotExist(err) {
		t.Fatal("a failed wrap wrote a portcullis configuration")
	}
	os.Remove(bad)

	out, errs, code := runPortcullis(t, base, time.Minute, "wrap", "--portcullis", portcullisBin)
	if code != 0 {
		t.Fatalf("wrap exited %d: %s\n%s", code, errs, out)
	}
	if !strings.Contains(out, "+++ b/"+strings.TrimPrefix(cursor, "/")) || !strings.Contains(out, "wrapped 3 servers") {
		t.Errorf("wrap did not show its diff and summary:\n%s", out)
	}
	for _, f := range []string{cursor, claude} {
		for name, e := range read(f) {
			if e.Command != portcullisBin || len(e.Args) != 4 || e.Args[0] != "run" {
				t.Errorf("%s: %s not wrapped: %+v", f, name, e)
				continue
			}
			got := stdioTools(t, append([]string{e.Command}, e.Args...), entryEnv(base, e))
			if strings.Join(got, ",") != strings.Join(before[name], ",") {
				t.Errorf("%s through portcullis run lists %v, before %v", name, got, before[name])
			}
		}
	}
	wrapped, _ := os.ReadFile(claude)
	out, _, code = runPortcullis(t, base, time.Minute, "wrap", "--portcullis", portcullisBin)
	if code != 0 || !strings.Contains(out, "nothing to wrap") {
		t.Errorf("second wrap (exit %d): %s", code, out)
	}
	if b, _ := os.ReadFile(claude); !bytes.Equal(b, wrapped) {
		t.Error("the second wrap changed the file")
	}
	// discover sees them registered (wrapped).
	checkAllWrapped(t, base, 3, "--project", home)

	// Cursor's file stays as wrap wrote it; Claude Code rewrites its own (a counter, its
	// own layout) while wrapped, as it does all the time.
	var doc map[string]any
	json.Unmarshal(wrapped, &doc)
	doc["numStartups"] = 4
	rewritten, _ := json.Marshal(doc)
	os.WriteFile(claude, rewritten, 0o644)

	out, errs, code = runPortcullis(t, base, time.Minute, "unwrap")
	if code != 0 {
		t.Fatalf("unwrap exited %d: %s\n%s", code, errs, out)
	}
	if b, _ := os.ReadFile(cursor); !bytes.Equal(b, cursorOrig) {
		t.Errorf("unwrap did not restore %s:\n%s", cursor, b)
	}
	var after, orig map[string]any
	if err := json.Unmarshal(mustReadFile(t, claude), &after); err != nil {
		t.Fatalf("%s after unwrap: %v", claude, err)
	}
	json.Unmarshal(claudeOrig, &orig)
	orig["numStartups"] = 4.0
	if a, o := fmt.Sprint(after), fmt.Sprint(orig); a != o {
		t.Errorf("unwrap of the file Claude Code changed:\n%s\nwant the original servers and the new counter:\n%s", a, o)
	}
	if _, err := os.Stat(filepath.Join(home, ".config", "portcullis", "portcullis.yaml")); !os.IsNotExist(err) {
		t.Errorf("the configuration wrap created is still there")
	}
}

// TestDiscover finds configured servers (registered or Shadow MCP) and an MCP endpoint on
// loopback that no configuration names.
func TestDiscover(t *testing.T) {
	requireE2E(t)
	listed := startVulnHTTP(t, "noauth")
	unlisted := startVulnHTTP(t, "noauth")
	home := t.TempDir()
	memory := nodeServer("server-memory")
	writeJSON(t, filepath.Join(home, ".cursor", "mcp.json"), map[string]any{"mcpServers": map[string]any{
		"memory": stdioEntry(memory, map[string]string{"MEMORY_FILE_PATH": "/tmp/x.jsonl"}),
		"shadow": stdioEntry([]string{"npx", "-y", "some-unvetted-server"}, map[string]string{"API_TOKEN": "${API_TOKEN}"}),
		"remote": map[string]any{"url": listed},
	}})
	gw := filepath.Join(home, "gateway.yaml")
	os.WriteFile(gw, []byte(fmt.Sprintf("auth: none\nservers:\n  - name: mem\n    command: %q\n    args: [%q]\n", memory[0], memory[1])), 0o644)
	port := func(u string) string { return strings.TrimSuffix(strings.Split(u, ":")[2], "/mcp") }
	out, errs, code := runPortcullis(t, []string{"HOME=" + home}, time.Minute, "discover", "--format", "json", "--config", gw,
		"--project", home, "--ports", port(listed)+","+port(unlisted))
	if code != 0 {
		t.Fatalf("discover exited %d: %s", code, errs)
	}
	var d struct {
		Servers []struct {
			Client     string   `json:"client"`
			Name       string   `json:"name"`
			Registered bool     `json:"registered"`
			Registry   string   `json:"registry_name"`
			Env        []string `json:"env"`
			Line       int      `json:"line"`
		} `json:"servers"`
		Endpoints []struct {
			URL        string `json:"url"`
			ServerInfo string `json:"server_info"`
			Configured bool   `json:"configured"`
			PID        int    `json:"pid"`
		} `json:"endpoints"`
	}
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	got := map[string]string{}
	for _, s := range d.Servers {
		got[s.Name] = fmt.Sprintf("%s registered=%v %s env=%v", s.Client, s.Registered, s.Registry, s.Env)
	}
	want := map[string]string{
		"memory": "cursor registered=true mem env=[MEMORY_FILE_PATH]",
		"shadow": "cursor registered=false  env=[API_TOKEN]",
		"remote": "cursor registered=false  env=[]",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("server %s: %q, want %q", k, got[k], v)
		}
	}
	eps := map[string]bool{}
	for _, e := range d.Endpoints {
		eps[e.URL] = e.Configured
		if e.ServerInfo != "vulnserver-noauth 1.0.0" {
			t.Errorf("endpoint %s server info %q", e.URL, e.ServerInfo)
		}
	}
	if c, ok := eps[listed]; !ok || !c {
		t.Errorf("the configured endpoint %s: found %v, configured %v (%s)", listed, ok, c, out)
	}
	if c, ok := eps[unlisted]; !ok || c {
		t.Errorf("the unlisted endpoint %s: found %v, configured %v (%s)", unlisted, ok, c, out)
	}
	text, _, _ := runPortcullis(t, []string{"HOME=" + home}, time.Minute, "discover", "--config", gw, "--project", home, "--ports", port(unlisted))
	if !strings.Contains(text, "SHADOW") || !strings.Contains(text, "UNLISTED") {
		t.Errorf("text output lacks SHADOW or UNLISTED:\n%s", text)
	}
}

// TestScanActiveSandboxed: --active runs stdio servers in the sandbox (the default), and
// the canaries are still reachable from there, and only from the scan's own sandbox: a
// server that reads any path it is given (traversal) and one that fetches any URL (SSRF)
// are each reported at their parameter; the same tools done right are not.
func TestScanActiveSandboxed(t *testing.T) {
	requireE2E(t)
	bin := vulnServer(t)
	if out, err := exec.Command(portcullisBin, "sandbox", "check").CombinedOutput(); err != nil {
		t.Skipf("the sandbox is not fully available here:\n%s", out)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "project", ".mcp.json")
	data := fmt.Sprintf(`{
  "mcpServers": {
    "traversal": {"command": %q, "args": ["-mode", "traversal"]},
    "ssrf": {"command": %q, "args": ["-mode", "ssrf"]},
    "safe": {"command": %q, "args": ["-mode", "safe"]}
  }
}
`, bin, bin, bin)
	os.MkdirAll(filepath.Dir(cfg), 0o755)
	os.WriteFile(cfg, []byte(data), 0o644)
	so, code := scanJSON(t, []string{"HOME=" + dir}, "--active", cfg)
	if code != 1 {
		t.Errorf("active scan exited %d, want 1", code)
	}
	for _, s := range so.Servers {
		if s.Error != "" || len(s.Tools) == 0 {
			t.Errorf("server %s was not scanned: %q", s.Server, s.Error)
		}
	}
	got := map[string]string{}
	for _, f := range so.Findings {
		switch f.Rule {
		case "command-injection", "path-traversal", "ssrf":
			got[f.Location.Server+" "+f.Rule] = fmt.Sprintf("%s %s %s line %d", f.Severity, f.Location.Item, f.Location.Pointer, f.Location.Line)
		}
	}
	want := map[string]string{
		"traversal path-traversal": "high tool:read_note /inputSchema/properties/name line 3",
		"ssrf ssrf":                "high tool:fetch_url /inputSchema/properties/url line 4",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected active finding %s: %s", k, got[k])
		}
	}
}

// checkAllWrapped runs discover (no probing) with env and extra arguments and checks that
// it finds want servers, each registered and wrapped.
func checkAllWrapped(t *testing.T, env []string, want int, args ...string) {
	t.Helper()
	out, _, _ := runPortcullis(t, env, time.Minute, append([]string{"discover", "--no-probe", "--format", "json"}, args...)...)
	var d struct {
		Servers []struct {
			Name       string `json:"name"`
			Registered bool   `json:"registered"`
			Wrapped    bool   `json:"wrapped"`
		} `json:"servers"`
	}
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("discover printed no JSON (%v): %s", err, out)
	}
	if len(d.Servers) != want {
		t.Errorf("discover after wrap found %d servers, want %d: %s", len(d.Servers), want, out)
	}
	for _, s := range d.Servers {
		if !s.Registered || !s.Wrapped {
			t.Errorf("discover: %s is not registered and wrapped after wrap", s.Name)
		}
	}
}
