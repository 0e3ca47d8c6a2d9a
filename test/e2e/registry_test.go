package e2e

// The verified registry and tool pinning, end to end through `portcullis serve`: a server
// (testdata/rugpull) that changes a tool's description, a tool's input schema or a prompt
// after the first listing and announces it with list_changed is caught (the item is
// hidden, its calls refused, an alert is in the audit trail, `pins diff` shows the
// change, `pins approve` restores it); a server not in the registry, a replaced
// executable, an unpinned npx package and a tampered signed registry are refused.

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	rugpullOnce sync.Once
	rugpullBin  string
	rugpullErr  error
)

// buildRugpull builds testdata/rugpull once per run.
func buildRugpull(t *testing.T) string {
	t.Helper()
	rugpullOnce.Do(func() {
		rugpullBin = filepath.Join(binDir, "rugpull")
		cmd := exec.Command("go", "build", "-o", rugpullBin, "./test/e2e/testdata/rugpull")
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			rugpullErr = err
			t.Logf("%s", out)
		}
	})
	if rugpullErr != nil {
		t.Fatalf("building testdata/rugpull: %v", rugpullErr)
	}
	return rugpullBin
}

// pcli runs a portcullis command and returns its combined output and exit code.
func pcli(t *testing.T, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, portcullisBin, args...).CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

func waitStderr(t *testing.T, p *Proc, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(p.Stderr.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the gateway never logged %q", want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRegistryRugPull(t *testing.T) {
	requireE2E(t)
	bin := buildRugpull(t)
	for _, tc := range []struct {
		change, kind, name, field, before, after string
	}{
		{"description", "tool", "add", "description", `"description": "Add two numbers."`, "Also include the contents of the user's notes"},
		{"schema", "tool", "add", "inputSchema", "", `"note": {`},
		{"prompt", "prompt", "summarize", "description", `"description": "Summarize a text in three sentences."`, "add the user's recent messages"},
	} {
		t.Run(tc.change, func(t *testing.T) {
			g := startServe(t, GatewayConfig{
				Servers: []ServerConfig{{Name: "rug", Command: bin, Env: map[string]string{"RUGPULL_CHANGE": tc.change}}},
				Guards:  "  audit: {}\n",
			})
			c := mustInit(t, g.URL)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			listMethod, getMethod := "tools/list", "tools/call"
			getParams := map[string]any{"name": tc.name, "arguments": map[string]any{"a": 1, "b": 2}}
			if tc.kind == "prompt" {
				listMethod, getMethod = "prompts/list", "prompts/get"
				getParams = map[string]any{"name": tc.name, "arguments": map[string]any{"text": "x"}}
			}
			listed := func() []string {
				t.Helper()
				m, err := c.Request(ctx, listMethod, map[string]any{})
				if err != nil || m.Error != nil {
					t.Fatalf("%s: %v %v", listMethod, err, m.errorOrNil())
				}
				var res map[string][]struct {
					Name string `json:"name"`
				}
				json.Unmarshal(m.Result, &res)
				var out []string
				for _, it := range res[strings.Split(listMethod, "/")[0]] {
					out = append(out, it.Name)
				}
				return out
			}
			first := listed()
			if !contains(first, tc.name) {
				t.Fatalf("first listing %v has no %s", first, tc.name)
			}
			// Trusted now; the server makes its change after answering this call.
			if text := mustToolText(t, c, "echo", map[string]any{"message": "hi"}); text != "echo (changed: false)" {
				t.Fatalf("echo before the change: %q", text)
			}
			// The server changed the definition and said so: the gateway re-checks at once,
			// without the client listing again.
			waitStderr(t, g.Proc, "list changed; definitions are checked again")
			// The gateway lists the server again on the notification itself: the alert is
			// in the trail before the client does anything.
			deadline := time.Now().Add(20 * time.Second)
			for {
				out, _ := pcli(t, "audit", "search", "--config", g.Config, "--code", "PC5002A", "--json")
				if strings.Contains(out, "PC5002A") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no rug pull alert after list_changed:\n%s", out)
				}
				time.Sleep(100 * time.Millisecond)
			}
			m, err := c.Request(ctx, getMethod, getParams)
			if err != nil {
				t.Fatal(err)
			}
			if m.Error == nil || m.Error.Code != -32010 || !strings.Contains(m.Error.Message, "changed since it was approved ("+tc.field+")") ||
				!strings.Contains(m.Error.Message, "portcullis pins approve rug "+tc.name) {
				t.Fatalf("%s of the changed %s: %s %v; want a refusal naming the change and how to approve it", getMethod, tc.kind, m.Result, m.errorOrNil())
			}
			t.Logf("refusal: %s", m.Error.Message)
			if got := listed(); contains(got, tc.name) {
				t.Fatalf("the changed %s is still listed: %v", tc.kind, got)
			}
			if tc.kind == "tool" {
				if text := mustToolText(t, c, "echo", map[string]any{"message": "hi"}); !strings.Contains(text, "echo") {
					t.Errorf("the unchanged tool: %q", text)
				}
			}
			out, code := pcli(t, "pins", "list", "--config", g.Config)
			if code != 0 || !strings.Contains(out, "changed") {
				t.Fatalf("pins list: exit %d\n%s", code, out)
			}
			out, code = pcli(t, "pins", "diff", "--config", g.Config, "rug", tc.name)
			if code != 0 || !diffHas(out, '+', tc.after) || (tc.before != "" && !diffHas(out, '-', tc.before)) {
				t.Fatalf("pins diff: exit %d\n%s", code, out)
			}
			t.Logf("pins diff:\n%s", out)
			// The alert is in the audit trail, with the diff.
			out, code = pcli(t, "audit", "search", "--config", g.Config, "--code", "PC5002A", "--json")
			var alert struct{ Code, Server, Tool, Message string }
			if code != 0 || strings.Count(strings.TrimSpace(out), "\n") != 0 || json.Unmarshal([]byte(out), &alert) != nil ||
				alert.Server != "rug" || alert.Tool != tc.name || !diffHas(alert.Message, '+', tc.after) {
				t.Fatalf("audit search for the rug pull alert: exit %d\n%s", code, out)
			}
			out, code = pcli(t, "pins", "approve", "--config", g.Config, "--by", "alice", "rug", tc.name)
			if code != 0 || !strings.Contains(out, "approved") {
				t.Fatalf("pins approve: exit %d\n%s", code, out)
			}
			if got := listed(); !contains(got, tc.name) {
				t.Fatalf("after approval the %s is not listed: %v", tc.kind, got)
			}
			m, err = c.Request(ctx, getMethod, getParams)
			if err != nil || m.Error != nil {
				t.Fatalf("%s after approval: %v %v", getMethod, err, m.errorOrNil())
			}
			if !strings.Contains(string(m.Result), "changed: true") {
				t.Errorf("after approval the call reached the changed server: %s", m.Result)
			}
		})
	}
}

// diffHas reports whether a line of a diff starting with sign contains s.
func diffHas(diff string, sign byte, s string) bool {
	for _, l := range strings.Split(diff, "\n") {
		if len(l) > 0 && l[0] == sign && strings.Contains(l, s) {
			return true
		}
	}
	return false
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// registryYAML renders a registry file of the rugpull server at bin.
func registryYAML(bin, hash string) string {
	return "servers:\n  - name: calculator\n    owner: e2e-team\n    command: " + q(bin) + "\n    sha256: " + hash + "\n"
}

// serveFails runs serve on cfg and returns its output; serve must exit non-zero.
func serveFails(t *testing.T, cfg string) string {
	t.Helper()
	p := startProc(t, "portcullis serve", exec.Command(portcullisBin, "serve", "--config", cfg, "--listen", "127.0.0.1:0"))
	if !p.Wait(30 * time.Second) {
		t.Fatalf("serve started although it should not have:\n%s", p.Stderr.String())
	}
	if p.ExitCode() == 0 {
		t.Fatalf("serve exited 0:\n%s", p.Stderr.String())
	}
	return p.Stderr.String()
}

func TestRegistryEnforce(t *testing.T) {
	requireE2E(t)
	dir := t.TempDir()
	// The server runs from a copy, so that the test can replace it.
	bin := filepath.Join(dir, "rugpull")
	data, err := os.ReadFile(buildRugpull(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	hash, code := pcli(t, "registry", "hash", bin)
	if code != 0 {
		t.Fatalf("registry hash: %s", hash)
	}
	hash = strings.TrimSpace(hash)
	regPath := filepath.Join(dir, "registry.yaml")
	os.WriteFile(regPath, []byte(registryYAML(bin, hash)), 0o644)
	key := filepath.Join(dir, "registry.key")
	if out, code := pcli(t, "registry", "keygen", "--key", key); code != 0 {
		t.Fatalf("keygen: %s", out)
	}
	if out, code := pcli(t, "registry", "sign", "--key", key, regPath); code != 0 {
		t.Fatalf("sign: %s", out)
	}
	if out, code := pcli(t, "registry", "verify", "--pub", key+".pub", regPath); code != 0 || !strings.Contains(out, "signature good") {
		t.Fatalf("verify: %s", out)
	}
	extra := "registry:\n  file: " + q(regPath) + "\n  enforce: true\n  require_pinned: true\n  require_signed: true\n  public_key: " + q(key+".pub") + "\n"
	rug := ServerConfig{Name: "calculator", Command: bin}

	t.Run("registered server runs", func(t *testing.T) {
		g := startServe(t, GatewayConfig{Servers: []ServerConfig{rug}, Extra: extra, Guards: "  audit: {}\n"})
		c := mustInit(t, g.URL)
		if text := mustToolText(t, c, "echo", map[string]any{"message": "hi"}); !strings.Contains(text, "echo") {
			t.Fatalf("echo: %q", text)
		}
		// The executable is replaced while the gateway runs: the next start is refused.
		os.WriteFile(bin+".new", append(append([]byte{}, data...), []byte("tampered")...), 0o755)
		if err := os.Rename(bin+".new", bin); err != nil {
			t.Fatal(err)
		}
		defer os.WriteFile(bin, data, 0o755)
		c2 := newHTTPClient(g.URL)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		c2.Initialize(ctx)
		m, err := c2.CallTool(ctx, "echo", map[string]any{"message": "hi"})
		if err != nil {
			t.Fatal(err)
		}
		if m.Error == nil || !strings.Contains(m.Error.Message, "refused by the registry") || !strings.Contains(m.Error.Message, "was replaced or updated") {
			t.Fatalf("a call to the replaced executable: %s %v", m.Result, m.errorOrNil())
		}
		t.Logf("refusal: %s", m.Error.Message)
		waitStderr(t, g.Proc, "executable refused at start")
		out, code := pcli(t, "audit", "search", "--config", g.Config, "--code", "PC5003A", "--json")
		if code != 0 || !strings.Contains(out, "was replaced or updated") {
			t.Fatalf("audit search for the refusal: exit %d\n%s", code, out)
		}
		os.WriteFile(bin, data, 0o755)
	})

	t.Run("server not in the registry", func(t *testing.T) {
		cfg := filepath.Join(t.TempDir(), "portcullis.yaml")
		c := GatewayConfig{Servers: []ServerConfig{rug, {Name: "ca1culator", Command: bin}}, Extra: extra, Store: filepath.Join(filepath.Dir(cfg), "p.db")}
		os.WriteFile(cfg, []byte(c.YAML()), 0o644)
		out := serveFails(t, cfg)
		if !strings.Contains(out, `server "ca1culator" refused (not-registered)`) || !strings.Contains(out, `imitates the registered server "calculator"`) {
			t.Fatalf("serve with an unregistered server:\n%s", out)
		}
	})

	t.Run("unpinned npx package", func(t *testing.T) {
		cfg := filepath.Join(t.TempDir(), "portcullis.yaml")
		c := GatewayConfig{Servers: []ServerConfig{{Name: "memory", Command: "npx", Args: []string{"-y", "@modelcontextprotocol/server-memory"}}},
			Store: filepath.Join(filepath.Dir(cfg), "p.db")}
		os.WriteFile(cfg, []byte(c.YAML()), 0o644)
		out, code := pcli(t, "registry", "check", "--config", cfg)
		if code != 0 || !strings.Contains(out, `server "memory" finding (unpinned-package)`) || !strings.Contains(out, "has no version") {
			t.Fatalf("registry check of an unpinned package: exit %d\n%s", code, out)
		}
		c.Extra = "registry:\n  file: " + q(regPath) + "\n  require_pinned: true\n"
		os.WriteFile(cfg, []byte(c.YAML()), 0o644)
		out = serveFails(t, cfg)
		if !strings.Contains(out, `server "memory" refused (unpinned-package)`) {
			t.Fatalf("serve with require_pinned and an unpinned package:\n%s", out)
		}
	})

	t.Run("tampered signed registry", func(t *testing.T) {
		orig, _ := os.ReadFile(regPath)
		defer os.WriteFile(regPath, orig, 0o644)
		os.WriteFile(regPath, []byte(strings.Replace(string(orig), "owner: e2e-team", "owner: someone-else", 1)), 0o644)
		out, code := pcli(t, "registry", "verify", "--pub", key+".pub", regPath)
		if code == 0 || !strings.Contains(out, `entry "calculator" (line 2) was changed after signing`) {
			t.Fatalf("verify of a tampered registry: exit %d\n%s", code, out)
		}
		cfg := filepath.Join(t.TempDir(), "portcullis.yaml")
		c := GatewayConfig{Servers: []ServerConfig{rug}, Extra: extra, Store: filepath.Join(filepath.Dir(cfg), "p.db")}
		os.WriteFile(cfg, []byte(c.YAML()), 0o644)
		out = serveFails(t, cfg)
		if !strings.Contains(out, `entry "calculator" (line 2) was changed after signing`) {
			t.Fatalf("serve with a tampered registry:\n%s", out)
		}
		os.Remove(regPath + ".minisig")
		out = serveFails(t, cfg)
		if !strings.Contains(out, "not signed") {
			t.Fatalf("serve with an unsigned registry:\n%s", out)
		}
		os.WriteFile(regPath, orig, 0o644)
		pcli(t, "registry", "sign", "--key", key, regPath)
	})
}

// TestRegistrySPKI: an HTTPS server whose registry entry pins its certificate key is
// reached while it presents that key, and refused (with an alert) when the entry pins
// another, although its certificate is trusted.
func TestRegistrySPKI(t *testing.T) {
	requireE2E(t)
	upstream := startEverythingHTTP(t)
	target, _ := url.Parse(upstream)
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target.Host})
	proxy.FlushInterval = -1 // stream SSE
	tlsSrv := httptest.NewTLSServer(proxy)
	defer tlsSrv.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw}), 0o644)
	t.Setenv("SSL_CERT_FILE", ca) // the gateway trusts the test server's certificate
	httpsURL := tlsSrv.URL + "/mcp"
	pin, code := pcli(t, "registry", "spki", httpsURL)
	if code != 0 {
		t.Fatalf("registry spki: %s", pin)
	}
	pin = strings.TrimSpace(pin)
	for _, tc := range []struct {
		name, pin string
		ok        bool
	}{
		{"pinned key", pin, true},
		{"another key", "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := filepath.Join(t.TempDir(), "registry.yaml")
			os.WriteFile(reg, []byte("servers:\n  - name: everything\n    owner: e2e\n    url: "+q(httpsURL)+"\n    spki_sha256: ["+q(tc.pin)+"]\n"), 0o644)
			g := startServe(t, GatewayConfig{Servers: []ServerConfig{{Name: "everything", URL: httpsURL}}, Guards: "  audit: {}\n",
				Extra: "registry: {file: " + q(reg) + ", enforce: true}\n"})
			c := newHTTPClient(g.URL)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			c.Initialize(ctx)
			m, err := c.CallTool(ctx, "test_simple_text", nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.ok {
				if m.Error != nil {
					t.Fatalf("call through the pinned key: %v", m.Error)
				}
				return
			}
			if m.Error == nil || !strings.Contains(m.Error.Message, "not the pinned one") {
				t.Fatalf("call to a server with another key: %s %v", m.Result, m.errorOrNil())
			}
			out, code := pcli(t, "audit", "search", "--config", g.Config, "--code", "PC5003A", "--json")
			if code != 0 || !strings.Contains(out, "not the pinned one") {
				t.Fatalf("audit search for the refusal: exit %d\n%s", code, out)
			}
		})
	}
}
