package e2e

// End-to-end tests of the detector guards through `portcullis serve` with a real stdio
// server (testdata/leaky): traversal and SSRF arguments refused before the server sees
// them, a secret in a result redacted before the client sees it, a poisoned tool hidden,
// and a canary token refused.

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	leakyOnce sync.Once
	leakyBin  string
	leakyErr  error
)

// buildLeaky builds the fake server once per run.
func buildLeaky(t *testing.T) string {
	t.Helper()
	leakyOnce.Do(func() {
		leakyBin = filepath.Join(binDir, "leaky")
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", leakyBin, "./test/e2e/testdata/leaky")
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			leakyErr = err
			t.Logf("go build leaky: %s", out)
		}
	})
	if leakyErr != nil {
		t.Fatalf("building testdata/leaky: %v", leakyErr)
	}
	return leakyBin
}

func TestDetectors(t *testing.T) {
	requireE2E(t)
	bin := buildLeaky(t)
	dir := t.TempDir()
	canaryFile := filepath.Join(dir, "canaries.json")
	out, err := exec.Command(portcullisBin, "canary", "create", "-kind", "token", "-file", canaryFile, "-note", "e2e").CombinedOutput()
	if err != nil {
		t.Fatalf("portcullis canary create: %v\n%s", err, out)
	}
	var token string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "sk_") {
			token = l
		}
	}
	if token == "" {
		t.Fatalf("no token in canary output:\n%s", out)
	}
	const decoy = "export_workspace_credentials"
	if out, err := exec.Command(portcullisBin, "canary", "create", "-kind", "tool", "-base", decoy, "-file", canaryFile, "-note", "e2e decoy").CombinedOutput(); err != nil {
		t.Fatalf("portcullis canary create -kind tool: %v\n%s", err, out)
	}
	g := startServe(t, GatewayConfig{
		Servers: []ServerConfig{{Name: "leaky", Command: bin, Env: map[string]string{"LEAKY_DIR": dir},
			Sandbox: "{read_write: [" + q(dir) + "]}"}},
		Guards: "  detect-args:\n    canary_file: " + q(canaryFile) + "\n" +
			"  detect-listings:\n    canary_file: " + q(canaryFile) + "\n",
	})
	c := mustInit(t, g.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	names, err := c.ToolNames(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.Join(names, ","), "add") || !strings.Contains(strings.Join(names, ","), "read_file") {
		t.Errorf("tools listed = %v; want the poisoned tool add hidden and the others shown", names)
	}
	if !strings.Contains(strings.Join(names, ","), decoy) {
		t.Errorf("tools listed = %v; want the decoy tool %s listed", names, decoy)
	}

	refused := []struct {
		tool, detector string
		args           map[string]any
	}{
		{"read_file", "pathtrav", map[string]any{"path": "../../etc/passwd"}},
		{"fetch", "ssrf", map[string]any{"url": "http://169.254.169.254/latest/meta-data/"}},
		{"echo", "canary", map[string]any{"text": "my key is " + token}},
		{"echo", "secrets", map[string]any{"text": "aws_access_key_id = AKIAZ7QJ3NB4X5TLUE6M"}},
		{decoy, "canary", map[string]any{"scope": "all"}},
	}
	for _, r := range refused {
		os.Remove(filepath.Join(dir, "call-"+r.tool))
		m, err := c.CallTool(ctx, r.tool, r.args)
		if err != nil {
			t.Fatalf("%s: %v", r.tool, err)
		}
		if m.Error == nil || m.Error.Code != -32010 {
			t.Errorf("%s %v: %s / %s; want a -32010 refusal", r.tool, r.args, m.Error, m.Result)
			continue
		}
		var data struct {
			Guard    string `json:"guard"`
			Findings []struct {
				Detector string `json:"detector"`
			} `json:"findings"`
		}
		json.Unmarshal(m.Error.Data, &data)
		if data.Guard != "detect-args" || len(data.Findings) == 0 || data.Findings[0].Detector != r.detector {
			t.Errorf("%s: refusal data %s, want detect-args with a %s finding", r.tool, m.Error.Data, r.detector)
		}
		if fileExists(filepath.Join(dir, "call-"+r.tool)) {
			t.Errorf("%s: the server received the refused call", r.tool)
		}
	}

	if got := mustToolText(t, c, "read_file", map[string]any{"path": "docs/readme.md"}); got != "read docs/readme.md" {
		t.Errorf("read_file of a plain path = %q", got)
	}
	cfg := mustToolText(t, c, "get_config", nil)
	if strings.Contains(cfg, "AKIA") || strings.Contains(cfg, "ghp_") {
		t.Errorf("secrets reached the client: %q", cfg)
	}
	if !strings.Contains(cfg, "[REDACTED:aws-access-key-id]") || !strings.Contains(cfg, "[REDACTED:github-token]") || !strings.Contains(cfg, "region = eu-west-1") {
		t.Errorf("config = %q, want the secrets redacted and the rest kept", cfg)
	}
	customer := mustToolText(t, c, "get_customer", nil)
	if strings.Contains(customer, "4111 1111") || strings.Contains(customer, "DE89") ||
		!strings.Contains(customer, "card: [REDACTED:card-number]") || !strings.Contains(customer, "iban: [REDACTED:iban]") ||
		!strings.Contains(customer, "email: ada@example.com") {
		t.Errorf("customer = %q, want the card and IBAN redacted and the rest kept", customer)
	}
	// The canary token and the decoy call each raised an alert.
	alerts := func() int { return strings.Count(g.Stderr.String(), "ALERT: critical finding in arguments") }
	for deadline := time.Now().Add(5 * time.Second); alerts() < 2 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if alerts() < 2 || !strings.Contains(g.Stderr.String(), decoy) {
		t.Errorf("want two canary alerts in the gateway's log (token, decoy call), got %d", alerts())
	}
	logged := func() bool { return strings.Contains(g.Stderr.String(), "finding in result") }
	for deadline := time.Now().Add(5 * time.Second); !logged() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if !logged() {
		t.Errorf("the gateway did not log the finding")
	}
}

// TestClientRoots: with no roots in the configuration, detect-args bounds path arguments
// by the roots the client declared (the official SDK client answering roots/list).
func TestClientRoots(t *testing.T) {
	requireE2E(t)
	requireFile(t, nodeModule("@modelcontextprotocol", "sdk", "package.json"))
	bin := buildLeaky(t)
	dir := t.TempDir()
	g := startServe(t, GatewayConfig{
		Servers: []ServerConfig{{Name: "leaky", Command: bin, Env: map[string]string{"LEAKY_DIR": dir}}},
	})
	root := filepath.Join(dir, "project")
	inside, outside := filepath.Join(root, "src", "main.go"), filepath.Join(dir, "elsewhere", "notes.txt")
	script := filepath.Join(repoRoot, "test", "e2e", "clients", "sdk-client.mjs")
	out, err := runNode(t, 2*time.Minute, nil, script, "--root", "file://"+root,
		"--call", "read_file", `{"path":"`+inside+`"}`, "--call", "read_file", `{"path":"`+outside+`"}`, "--url", g.URL)
	if err != nil {
		t.Fatalf("sdk-client: %v\n%s", err, out)
	}
	var res sdkResult
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &res); err != nil || len(res.Calls) != 2 {
		t.Fatalf("sdk-client output: %v\n%s", err, out)
	}
	if text, isErr := toolText(res.Calls[0].Result); res.Calls[0].Error != nil || isErr || text != "read "+inside {
		t.Errorf("read inside the client's root: %s / %s", res.Calls[0].Error, res.Calls[0].Result)
	}
	if e := res.Calls[1].Error; e == nil || e.Code != -32010 || !strings.Contains(e.Message, "path") {
		t.Errorf("read outside the client's root: %v / %s, want a -32010 refusal", e, res.Calls[1].Result)
	}
}
