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
	g := startServe(t, GatewayConfig{
		Servers: []ServerConfig{{Name: "leaky", Command: bin, Env: map[string]string{"LEAKY_DIR": dir},
			Sandbox: "{read_write: [" + q(dir) + "]}"}},
		Guards: "  detect-args:\n    canary_file: " + q(canaryFile) + "\n",
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

	refused := []struct {
		tool, detector string
		args           map[string]any
	}{
		{"read_file", "pathtrav", map[string]any{"path": "../../etc/passwd"}},
		{"fetch", "ssrf", map[string]any{"url": "http://169.254.169.254/latest/meta-data/"}},
		{"echo", "canary", map[string]any{"text": "my key is " + token}},
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
	logged := func() bool { return strings.Contains(g.Stderr.String(), "finding in result") }
	for deadline := time.Now().Add(5 * time.Second); !logged() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if !logged() {
		t.Errorf("the gateway did not log the finding")
	}
}
