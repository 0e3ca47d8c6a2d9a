package e2e

// wrap with HTTP servers and package launchers: an HTTP entry stays HTTP and points at the
// gateway's endpoint of its server (a running `portcullis serve`), with an API key made
// for the client; an npx entry runs through `portcullis run` in the sandbox, fetching its
// package from the registry through the egress proxy into a cache of its own.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

type cursorEntry struct {
	Command string            `json:"command"`
	Args    []string          `json:"args"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers"`
}

func readCursor(t *testing.T, path string) map[string]cursorEntry {
	t.Helper()
	var doc struct {
		MCPServers map[string]cursorEntry `json:"mcpServers"`
	}
	if err := json.Unmarshal(mustReadFile(t, path), &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return doc.MCPServers
}

func sdkHeaders(h map[string]string) []string {
	var out []string
	for k, v := range h {
		out = append(out, "--header", k+": "+v)
	}
	return out
}

// TestWrapHTTPThroughGateway wraps a Cursor configuration holding an HTTP server (the Go
// SDK's everything-server) and an npx server; the official TypeScript SDK client lists
// the same tools through the gateway's endpoint as directly, and `portcullis run` lists
// the npx server's tools from the sandbox. Unwrap gives back the bytes and revokes the key.
func TestWrapHTTPThroughGateway(t *testing.T) {
	requireE2E(t)
	npx, err := exec.LookPath("npx")
	if err != nil {
		t.Skip("npx is not installed")
	}
	everything := startEverythingHTTP(t)
	home := t.TempDir()
	cursor := filepath.Join(home, ".cursor", "mcp.json")
	memoryPkg := "@modelcontextprotocol/server-memory@2026.8.31"
	orig := writeJSON(t, cursor, map[string]any{"mcpServers": map[string]any{
		"everything": map[string]any{"url": everything},
		"memory":     map[string]any{"command": "npx", "args": []string{"-y", memoryPkg}},
	}})
	os.Chmod(cursor, 0o644)
	base := []string{"HOME=" + home, "PATH=" + filepath.Dir(npx) + ":" + filepath.Dir(nodeBin) + ":/usr/bin:/bin"}

	direct := runSDKClient(t, []string{"--url", everything})
	if len(direct.Tools) == 0 {
		t.Fatal("everything-server lists no tools")
	}

	port := freePort(t)
	gw := "http://127.0.0.1:" + strconv.Itoa(port)
	out, errs, code := runPortcullis(t, base, time.Minute, "wrap", "--portcullis", portcullisBin, "--gateway", gw, "--client", "cursor")
	if code != 0 {
		t.Fatalf("wrap exited %d: %s\n%s", code, errs, out)
	}
	if !strings.Contains(out, "wrapped 2 servers") || !strings.Contains(out, "portcullis serve --config") {
		t.Errorf("wrap output:\n%s", out)
	}
	cfg := filepath.Join(home, ".config", "portcullis", "portcullis.yaml")
	entries := readCursor(t, cursor)
	ev, mem := entries["everything"], entries["memory"]
	if ev.URL != gw+"/mcp/everything" || ev.Command != "" || !strings.HasPrefix(ev.Headers["Authorization"], "Bearer ") {
		t.Fatalf("the HTTP entry after wrap: %+v", ev)
	}
	if mem.Command != portcullisBin || strings.Join(mem.Args, " ") != "run --config "+cfg+" memory" {
		t.Fatalf("the npx entry after wrap: %+v", mem)
	}
	if st, _ := os.Stat(cursor); st.Mode().Perm() != 0o600 {
		t.Errorf("the file holding the API key is mode %v, want 0600", st.Mode().Perm())
	}
	if strings.Contains(out, strings.TrimPrefix(ev.Headers["Authorization"], "Bearer ")) {
		t.Error("wrap printed the API key (the diff must not show it)")
	}

	// The gateway of that configuration, on the address wrap pointed the entry at (the
	// listen address wrap wrote in the configuration it created).
	serve := startProc(t, "portcullis serve", func() *exec.Cmd {
		c := exec.Command(portcullisBin, "serve", "--config", cfg)
		c.Env = base
		return c
	}())
	if err := waitFor(30*time.Second, serve, func() error {
		resp, err := http.Get(gw + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}); err != nil {
		t.Fatalf("portcullis serve did not come up: %v\n%s", err, serve.Stderr.String())
	}
	through := runSDKClient(t, append(sdkHeaders(ev.Headers), "--url", ev.URL), toolCall{"test_simple_text", map[string]any{}})
	if !slices.Equal(through.Tools, direct.Tools) {
		t.Errorf("through the gateway's endpoint the SDK client lists %v, directly %v", through.Tools, direct.Tools)
	}
	if text, _ := toolText(through.Calls[0].Result); text == "" {
		t.Errorf("a tool called through the gateway's endpoint returned no text: %s", through.Calls[0].Result)
	}
	// The same endpoint without the key is refused.
	req, _ := http.NewRequest(http.MethodPost, ev.URL, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the endpoint without the API key: %v %v", resp.StatusCode, err)
	} else {
		resp.Body.Close()
	}

	// The npx server, as the client now starts it: in the sandbox, fetching its package.
	memDirect := stdioTools(t, []string{"npx", "-y", memoryPkg}, base)
	memWrapped := stdioTools(t, append([]string{mem.Command}, mem.Args...), base)
	if len(memDirect) == 0 || !slices.Equal(memWrapped, memDirect) {
		t.Errorf("the npx server through portcullis run lists %v, directly %v", memWrapped, memDirect)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(cfg), "cache", "npx-memory")); err != nil {
		t.Errorf("the npx server's cache: %v", err)
	}

	// Idempotent, and discover sees both registered and wrapped.
	wrapped := mustReadFile(t, cursor)
	out, _, code = runPortcullis(t, base, time.Minute, "wrap", "--portcullis", portcullisBin, "--gateway", gw, "--client", "cursor")
	if code != 0 || !strings.Contains(out, "nothing to wrap") || !bytes.Equal(mustReadFile(t, cursor), wrapped) {
		t.Errorf("second wrap (exit %d) changed something:\n%s", code, out)
	}
	checkAllWrapped(t, base, 2)

	// scan checks the wrapped HTTP entry as the server it fronts, where it is registered:
	// the API key in the client's file is not reported as a secret written there.
	so, _ := scanJSON(t, base, "--static", cursor)
	for _, f := range so.Findings {
		if f.Rule == "secret-in-config" {
			t.Errorf("scan reports the gateway's API key: %+v", f)
		}
	}
	located := false
	for _, s := range so.Servers {
		located = located || s.Server == "everything" && s.File == cfg
	}
	if !located {
		t.Errorf("scan did not locate the wrapped HTTP entry in %s: %+v", cfg, so.Servers)
	}

	out, errs, code = runPortcullis(t, base, time.Minute, "unwrap")
	if code != 0 || !strings.Contains(out, "revoked") {
		t.Fatalf("unwrap exited %d: %s\n%s", code, errs, out)
	}
	if b := mustReadFile(t, cursor); !bytes.Equal(b, orig) {
		t.Errorf("unwrap did not restore %s:\n%s", cursor, b)
	}
	if st, _ := os.Stat(cursor); st.Mode().Perm() != 0o644 {
		t.Errorf("mode after unwrap %v, want 0644", st.Mode().Perm())
	}
	// The key is revoked in the store (the default one, which the gateway used too).
	probe := filepath.Join(home, "probe.yaml")
	os.WriteFile(probe, []byte(fmt.Sprintf("servers:\n  - name: x\n    url: %s\n", everything)), 0o600)
	kout, kerr, code := runPortcullis(t, base, time.Minute, "keys", "list", "--config", probe)
	if code != 0 || !strings.Contains(kout, "wrap-cursor") || !strings.Contains(kout, "revoked") {
		t.Errorf("keys after unwrap (exit %d): %s %s", code, kout, kerr)
	}
}
