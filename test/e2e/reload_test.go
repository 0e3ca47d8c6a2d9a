package e2e

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestPolicyReloadOnFileChange edits the configuration of a running gateway: the new policy
// takes effect without a signal, and a broken file keeps the running policy.
func TestPolicyReloadOnFileChange(t *testing.T) {
	requireE2E(t)
	upstream := startEverythingHTTP(t)
	allowAll := "  authz:\n    rules:\n      - name: everyone\n        effect: allow\n"
	g := startServe(t, GatewayConfig{Servers: []ServerConfig{{Name: "everything", URL: upstream}}, Guards: allowAll})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := mustInit(t, g.URL)
	if msg, err := c.CallTool(ctx, "test_simple_text", map[string]any{}); err != nil || msg.errorOrNil() != nil {
		t.Fatalf("allowed call: %v %+v", err, msg)
	}
	orig, err := os.ReadFile(g.Config)
	if err != nil {
		t.Fatal(err)
	}
	// A broken file is refused and the running policy stays.
	if err := os.WriteFile(g.Config, []byte(string(orig)+"  bogus: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(g.Stderr.String(), "reload failed") {
		if time.Now().After(deadline) {
			t.Fatalf("a broken configuration was not reported:\n%s", g.Stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if msg, err := c.CallTool(ctx, "test_simple_text", map[string]any{}); err != nil || msg.errorOrNil() != nil {
		t.Fatalf("after a bad reload the old policy should stay: %v %+v", err, msg)
	}
	// A deny rule for the tool takes effect.
	deny := strings.Replace(string(orig), allowAll, allowAll+"      - name: no-simple-text\n        effect: deny\n        tools: [\"test_simple_text\"]\n", 1)
	if err := os.WriteFile(g.Config, []byte(deny), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(20 * time.Second)
	for {
		msg, err := c.CallTool(ctx, "test_simple_text", map[string]any{})
		if err == nil && msg.errorOrNil() != nil && strings.Contains(msg.errorOrNil().Message+string(msg.errorOrNil().Data), "no-simple-text") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new deny rule did not take effect: %v %+v", err, msg)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
