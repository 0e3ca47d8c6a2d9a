package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// bearer adds an API key to every request of a client.
type bearer struct{ key string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return http.DefaultTransport.RoundTrip(r)
}

// TestAuthzFilesystemTwoPrincipals puts the reference filesystem server behind the gateway
// with a policy for two groups: readers see and call only the read tools, and only inside
// the workspace; writers also write. Each principal's tools/list shows only what it may use.
func TestAuthzFilesystemTwoPrincipals(t *testing.T) {
	requireE2E(t)
	requireFile(t, filesystemServerJS())
	fs, root := filesystemServer(t)
	ws := filepath.Join(root, "workspace")
	os.MkdirAll(ws, 0o755)
	os.WriteFile(filepath.Join(ws, "notes.txt"), []byte("inside"), 0o644)
	os.WriteFile(filepath.Join(root, "secret.txt"), []byte("outside"), 0o644)
	policy := fmt.Sprintf(`guards:
  authz:
    rules:
      - name: readers-read-workspace
        effect: allow
        when: '"readers" in principal.groups && (!has(args.path) || args.path.startsWith(%q))'
        tools: ["read_*", "list_*", "get_file_info", "search_files", "directory_tree", "list_allowed_directories"]
      - name: writers-everything
        effect: allow
        when: '"writers" in principal.groups'
`, ws+"/")
	g := startAuthServe(t, "http", nil, func(string) string {
		return fmt.Sprintf("auth: {api_keys: true}\nservers:\n  - name: fs\n    command: %q\n    args: [%q, %q]\n    sandbox: %s\n%s", fs.Command, fs.Args[0], fs.Args[1], fs.Sandbox, policy)
	})
	reader := keysCLI(t, g.Config, "create", "--name", "rita", "--groups", "readers")
	writer := keysCLI(t, g.Config, "create", "--name", "wes", "--groups", "writers")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	open := func(key string) *HTTPClient {
		c := newHTTPClient(g.URL)
		c.HTTP = &http.Client{Timeout: time.Minute, Transport: bearer{key}}
		if _, err := c.Initialize(ctx); err != nil {
			t.Fatal(err)
		}
		return c
	}
	rc, wc := open(reader), open(writer)
	rTools, err := rc.ToolNames(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wTools, err := wc.ToolNames(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("reader sees %v", rTools)
	t.Logf("writer sees %v", wTools)
	if !slices.Contains(rTools, "read_text_file") || slices.Contains(rTools, "write_file") || slices.Contains(rTools, "move_file") {
		t.Errorf("reader's tools/list: %v, want read tools only", rTools)
	}
	if !slices.Contains(wTools, "write_file") || len(wTools) <= len(rTools) {
		t.Errorf("writer's tools/list: %v, want every tool", wTools)
	}
	// The reader reads inside the workspace, not outside it, and cannot write.
	if got := mustToolText(t, rc, "read_text_file", map[string]any{"path": filepath.Join(ws, "notes.txt")}); !strings.Contains(got, "inside") {
		t.Errorf("reader read %q", got)
	}
	for _, call := range []struct {
		tool string
		args map[string]any
	}{
		{"read_text_file", map[string]any{"path": filepath.Join(root, "secret.txt")}},
		{"write_file", map[string]any{"path": filepath.Join(ws, "new.txt"), "content": "x"}},
	} {
		msg, err := rc.CallTool(ctx, call.tool, call.args)
		if err != nil {
			t.Fatal(err)
		}
		if e := msg.errorOrNil(); e == nil || e.Code != -32010 {
			t.Errorf("reader %s %v: %+v, want a -32010 refusal", call.tool, call.args, msg)
		}
	}
	if _, err := os.Stat(filepath.Join(ws, "new.txt")); err == nil {
		t.Error("the refused write happened")
	}
	// The writer writes.
	if msg, err := wc.CallTool(ctx, "write_file", map[string]any{"path": filepath.Join(ws, "new.txt"), "content": "x"}); err != nil || msg.errorOrNil() != nil {
		t.Fatalf("writer write_file: %v %+v", err, msg)
	}
	if b, _ := os.ReadFile(filepath.Join(ws, "new.txt")); string(b) != "x" {
		t.Errorf("writer's file holds %q", b)
	}
}
