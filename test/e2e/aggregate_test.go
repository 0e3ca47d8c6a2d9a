package e2e

// Several servers behind one gateway: the Go SDK's everything-server over Streamable HTTP
// and the reference memory server over stdio. Names are prefixed <server>__<name>, calls are
// routed by prefix, and an unknown prefix is a JSON-RPC error.
//
// (The Go everything-server has no "echo" tool; its "test_simple_text" plays that part.)

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestAggregate(t *testing.T) {
	requireE2E(t)
	requireFile(t, memoryServerJS())
	upstream := startEverythingHTTP(t)
	g := startServe(t, GatewayConfig{Servers: []ServerConfig{
		{Name: "everything", URL: upstream},
		memoryServer(t),
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	c := newHTTPClient(g.URL)
	init, err := c.Initialize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ir struct {
		Capabilities map[string]json.RawMessage `json:"capabilities"`
		ServerInfo   struct {
			Name string `json:"name"`
		} `json:"serverInfo"`
	}
	json.Unmarshal(init.Result, &ir)
	if ir.ServerInfo.Name != "portcullis" {
		t.Errorf("with several servers, serverInfo.name = %q, want portcullis", ir.ServerInfo.Name)
	}
	for _, capability := range []string{"tools", "prompts", "resources"} {
		if _, ok := ir.Capabilities[capability]; !ok {
			t.Errorf("merged capabilities lack %q: %s", capability, init.Result)
		}
	}

	names, err := c.ToolNames(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d tools: %v", len(names), names)
	for _, want := range []string{"everything__test_simple_text", "everything__test_error_handling",
		"memory__create_entities", "memory__read_graph", "memory__search_nodes"} {
		if !slices.Contains(names, want) {
			t.Errorf("tools/list lacks %q", want)
		}
	}
	for _, n := range names {
		if !strings.HasPrefix(n, "everything__") && !strings.HasPrefix(n, "memory__") {
			t.Errorf("tool %q has no server prefix", n)
		}
	}

	// Prompts come only from everything, prefixed.
	pm, err := c.Request(ctx, "prompts/list", map[string]any{})
	if err != nil || pm.Error != nil {
		t.Fatalf("prompts/list: %v %s", err, pm.errorOrNil())
	}
	var prompts struct {
		Prompts []struct {
			Name string `json:"name"`
		} `json:"prompts"`
	}
	json.Unmarshal(pm.Result, &prompts)
	if len(prompts.Prompts) == 0 {
		t.Errorf("prompts/list is empty: %s", pm.Result)
	}
	for _, p := range prompts.Prompts {
		if !strings.HasPrefix(p.Name, "everything__") {
			t.Errorf("prompt %q is not prefixed everything__", p.Name)
		}
	}

	// A call reaches everything and returns what everything returns when called directly.
	direct := mustInit(t, upstream)
	want := mustToolText(t, direct, "test_simple_text", nil)
	if got := mustToolText(t, c, "everything__test_simple_text", nil); got != want || got == "" {
		t.Errorf("everything__test_simple_text = %q, want %q (as returned directly)", got, want)
	}

	// memory: create, then read back.
	mustToolText(t, c, "memory__create_entities", map[string]any{"entities": []any{map[string]any{
		"name": "aggregate-e2e", "entityType": "test", "observations": []string{"routed by prefix"}}}})
	if graph := mustToolText(t, c, "memory__read_graph", nil); !strings.Contains(graph, "aggregate-e2e") {
		t.Errorf("memory__read_graph does not show the entity: %s", graph)
	}

	// Names that route nowhere are JSON-RPC errors that say why.
	for _, tc := range []struct{ name, mention string }{
		{"nosuch__test_simple_text", "nosuch"},
		{"test_simple_text", "prefix"},
		{"__read_graph", "prefix"},
	} {
		m, err := c.CallTool(ctx, tc.name, nil)
		if err != nil {
			t.Errorf("tools/call %s: %v", tc.name, err)
			continue
		}
		if m.Error == nil {
			t.Errorf("tools/call %s: want a JSON-RPC error, got result %s", tc.name, m.Result)
			continue
		}
		t.Logf("tools/call %s: %s", tc.name, m.Error)
		if !strings.Contains(m.Error.Message, tc.mention) {
			t.Errorf("tools/call %s: error %q does not mention %q", tc.name, m.Error.Message, tc.mention)
		}
	}

	// A known server but an unknown tool: the server's own answer (an error either way).
	m, err := c.CallTool(ctx, "everything__no_such_tool", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, isErr := toolText(m.Result); m.Error == nil && !isErr {
		t.Errorf("everything__no_such_tool: want an error, got %s", m.Result)
	}

	// The session still works after the errors.
	if got := mustToolText(t, c, "everything__test_simple_text", nil); got != want {
		t.Errorf("after the errors, everything__test_simple_text = %q", got)
	}
}
