package e2e

import (
	"context"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestLegacySSEUpstream puts the reference everything server, run with the legacy HTTP+SSE
// transport (2024-11-05), behind the gateway, and calls its tools through Streamable HTTP.
func TestLegacySSEUpstream(t *testing.T) {
	requireE2E(t)
	js := nodeModule("@modelcontextprotocol", "server-everything", "dist", "index.js")
	requireFile(t, js)
	port := strconv.Itoa(freePort(t))
	cmd := exec.Command(nodeBin, js, "sse")
	cmd.Env = append(cmd.Environ(), "PORT="+port)
	p := startProc(t, "server-everything (sse)", cmd)
	if err := waitFor(30*time.Second, p, func() error {
		if !strings.Contains(p.Stderr.String(), port) {
			return errors.New("not listening yet")
		}
		return nil
	}); err != nil {
		t.Fatalf("server-everything sse did not start: %v\n%s", err, p.Stderr.String())
	}
	g := startServe(t, GatewayConfig{Servers: []ServerConfig{
		{Name: "legacy", URL: "http://127.0.0.1:" + port + "/sse", Transport: "sse"},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := mustInit(t, g.URL)
	names, err := c.ToolNames(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatal("no tools listed through the SSE upstream")
	}
	got := mustToolText(t, c, "echo", map[string]any{"message": "through sse"})
	if !strings.Contains(got, "through sse") {
		t.Fatalf("echo through the SSE upstream returned %q", got)
	}
}
