package e2e

// The listing checks on live listings: tools/list of real npm MCP servers (pinned in
// test/e2e/deps.sh, started without credentials), collected with the inspector CLI at test
// time, so that the false-positive rate is not only measured on a frozen file.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/detect/eval"
)

// liveServer is a server whose listing is collected: an entry point under $PORTCULLIS_E2E
// and its arguments ("$DIR" is a scratch directory).
type liveServer struct {
	pkg  string
	js   []string
	args []string
	env  []string
}

var liveServers = []liveServer{
	{pkg: "@modelcontextprotocol/server-everything", js: []string{"node_modules", "@modelcontextprotocol", "server-everything", "dist", "index.js"}, args: []string{"stdio"}},
	{pkg: "@modelcontextprotocol/server-filesystem", js: []string{"node_modules", "@modelcontextprotocol", "server-filesystem", "dist", "index.js"}, args: []string{"$DIR"}},
	{pkg: "@modelcontextprotocol/server-memory", js: []string{"node_modules", "@modelcontextprotocol", "server-memory", "dist", "index.js"}, env: []string{"MEMORY_FILE_PATH=$DIR/memory.json"}},
	{pkg: "@modelcontextprotocol/server-sequential-thinking", js: []string{"listings", "node_modules", "@modelcontextprotocol", "server-sequential-thinking", "dist", "index.js"}},
	{pkg: "@modelcontextprotocol/server-github", js: []string{"listings", "node_modules", "@modelcontextprotocol", "server-github", "dist", "index.js"}},
	{pkg: "@modelcontextprotocol/server-postgres", js: []string{"listings", "node_modules", "@modelcontextprotocol", "server-postgres", "dist", "index.js"}, args: []string{"postgresql://127.0.0.1:1/none"}},
	{pkg: "@agent-infra/mcp-server-commands", js: []string{"listings", "node_modules", "@agent-infra", "mcp-server-commands", "dist", "index.cjs"}},
	{pkg: "@agent-infra/mcp-server-filesystem", js: []string{"listings", "node_modules", "@agent-infra", "mcp-server-filesystem", "dist", "index.cjs"}, args: []string{"--allowed-directories", "$DIR"}},
	{pkg: "@antv/mcp-server-chart", js: []string{"listings", "node_modules", "@antv", "mcp-server-chart", "build", "index.js"}},
	{pkg: "@playwright/mcp", js: []string{"listings", "node_modules", "@playwright", "mcp", "cli.js"}},
	{pkg: "@upstash/context7-mcp", js: []string{"listings", "node_modules", "@upstash", "context7-mcp", "dist", "index.js"}},
	{pkg: "@notionhq/notion-mcp-server", js: []string{"listings", "node_modules", "@notionhq", "notion-mcp-server", "bin", "cli.mjs"}},
}

// TestLiveListings collects the listings and checks that at most 1% of the tools are
// flagged at warning level (the target for benign tools). Set
// PORTCULLIS_LIVE_LISTINGS to a file to keep the collected tools (one JSON per line, the
// form `portcullis eval` reads).
func TestLiveListings(t *testing.T) {
	requireE2E(t)
	requireFile(t, inspectorJS())
	rn, err := eval.NewRunner()
	if err != nil {
		t.Fatal(err)
	}
	var keep *os.File
	if p := os.Getenv("PORTCULLIS_LIVE_LISTINGS"); p != "" {
		if keep, err = os.Create(p); err != nil {
			t.Fatal(err)
		}
		defer keep.Close()
	}
	servers, tools, flagged := 0, 0, 0
	var report []string
	for _, s := range liveServers {
		js := filepath.Join(append([]string{e2eDir}, s.js...)...)
		if !fileExists(js) {
			t.Errorf("%s: %s is missing; run `bash test/e2e/deps.sh`", s.pkg, js)
			continue
		}
		dir := t.TempDir()
		target := []string{"--transport", "stdio"}
		for _, e := range s.env {
			target = append(target, "-e", strings.ReplaceAll(e, "$DIR", dir))
		}
		target = append(target, "--", nodeBin, js)
		for _, a := range s.args {
			target = append(target, strings.ReplaceAll(a, "$DIR", dir))
		}
		args := append([]string{inspectorJS(), "--cli", "--method", "tools/list"}, target...)
		out, err := runNode(t, 2*time.Minute, []string{"HOME=" + dir, "MCP_CATALOG_PATH=" + filepath.Join(dir, "catalog.json")}, args...)
		if err != nil {
			t.Errorf("%s: inspector tools/list: %v\n%s", s.pkg, err, out)
			continue
		}
		var list struct {
			Tools []json.RawMessage `json:"tools"`
		}
		firstJSON(t, out, &list)
		if len(list.Tools) == 0 {
			t.Errorf("%s listed no tools:\n%s", s.pkg, out)
			continue
		}
		servers++
		fs := rn.CheckServerListing(s.pkg, toBytes(list.Tools))
		n := 0
		for i, f := range fs {
			tools++
			name := toolName(list.Tools[i])
			if eval.Flagged(f) {
				flagged++
				n++
				t.Logf("flagged: %s/%s: %v", s.pkg, name, f)
			}
			if keep != nil {
				var m map[string]any
				json.Unmarshal(list.Tools[i], &m)
				m["server"], m["label"] = s.pkg, "benign"
				b, _ := json.Marshal(m)
				fmt.Fprintf(keep, "%s\n", b)
			}
		}
		report = append(report, fmt.Sprintf("%s: %d tools, %d flagged", s.pkg, len(list.Tools), n))
	}
	t.Logf("live listings:\n  %s\n%d servers, %d tools, %d flagged at warning level (%.1f%%)", strings.Join(report, "\n  "), servers, tools, flagged, 100*float64(flagged)/float64(max(tools, 1)))
	if servers < 10 {
		t.Errorf("listings collected from %d servers, want at least 10", servers)
	}
	if float64(flagged) > 0.01*float64(tools) {
		t.Errorf("%d of %d live tools flagged at warning level, want at most 1%%", flagged, tools)
	}
}

func toBytes(rs []json.RawMessage) [][]byte {
	out := make([][]byte, len(rs))
	for i, r := range rs {
		out[i] = r
	}
	return out
}

func toolName(raw json.RawMessage) string {
	var t struct {
		Name string `json:"name"`
	}
	json.Unmarshal(raw, &t)
	return t.Name
}
