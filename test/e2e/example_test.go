package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

// The README's first command: `portcullis serve --config examples/portcullis.yaml` starts
// the gateway in front of the two reference servers, sandboxed, with npx fetching them
// from the npm registry through the egress proxy, and a client uses both.
func TestExampleConfig(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	state := t.TempDir()
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	cmd := exec.Command(portcullisBin, "serve", "--config", filepath.Join(repoRoot, "examples", "portcullis.yaml"), "--listen", addr)
	cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+state, "XDG_CONFIG_HOME="+state)
	p := startProc(t, "portcullis serve (example)", cmd)
	base := "http://" + addr
	if err := waitFor(60*time.Second, p, func() error {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/healthz: %s", resp.Status)
		}
		return nil
	}); err != nil {
		t.Fatalf("the example gateway did not come up: %v", err)
	}
	// The first session waits for npx to fetch both packages.
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c := newHTTPClient(base + "/mcp")
	if _, err := c.Initialize(ctx); err != nil {
		t.Fatal(err)
	}
	names, err := c.ToolNames(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"memory__create_entities", "everything__echo"} {
		if !slices.Contains(names, want) {
			t.Fatalf("tools %v lack %s", names, want)
		}
	}
	if got := mustToolText(t, c, "everything__echo", map[string]any{"message": "through the example"}); got != "Echo: through the example" {
		t.Errorf("everything__echo answered %q", got)
	}
	m, err := c.CallTool(ctx, "memory__read_graph", nil)
	if err != nil || m.Error != nil {
		t.Fatalf("memory__read_graph: %v %v", err, m.errorOrNil())
	}
}
