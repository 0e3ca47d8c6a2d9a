package e2e

// Real MCP clients against real reference servers, through the gateway: the official
// TypeScript SDK (test/e2e/clients/sdk-client.mjs) and the MCP Inspector CLI, each over the
// Streamable HTTP front (`portcullis serve`) and the stdio front (`portcullis run`).

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// sdkResult is what sdk-client.mjs prints.
type sdkResult struct {
	ServerInfo json.RawMessage `json:"serverInfo"`
	Tools      []string        `json:"tools"`
	Calls      []struct {
		Name   string          `json:"name"`
		Result json.RawMessage `json:"result"`
		Error  *RPCError       `json:"error"`
	} `json:"calls"`
}

type toolCall struct {
	name string
	args any
}

// runSDKClient runs the SDK client script against target (its --url or -- COMMAND part)
// with the given calls.
func runSDKClient(t *testing.T, target []string, calls ...toolCall) *sdkResult {
	t.Helper()
	args := []string{filepath.Join(repoRoot, "test", "e2e", "clients", "sdk-client.mjs")}
	for _, c := range calls {
		b, err := json.Marshal(c.args)
		if err != nil {
			t.Fatal(err)
		}
		args = append(args, "--call", c.name, string(b))
	}
	args = append(args, target...)
	out, err := runNode(t, 2*time.Minute, nil, args...)
	if err != nil {
		t.Fatalf("sdk-client: %v", err)
	}
	var res sdkResult
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &res); err != nil {
		t.Fatalf("sdk-client output is not JSON: %v\n%s", err, out)
	}
	if len(res.Calls) != len(calls) {
		t.Fatalf("sdk-client made %d calls, want %d: %s", len(res.Calls), len(calls), out)
	}
	for i, c := range res.Calls {
		if c.Error != nil {
			t.Fatalf("sdk-client: call %d (%s): JSON-RPC error %s", i, c.Name, c.Error)
		}
		if text, isErr := toolText(c.Result); isErr {
			t.Fatalf("sdk-client: call %d (%s): tool error: %s", i, c.Name, text)
		}
	}
	return &res
}

// frontTarget puts server behind the front named front ("http": a `portcullis serve`;
// "stdio": `portcullis run` started by the client) and returns how to reach it: the URL,
// or the command line.
func frontTarget(t *testing.T, front string, server ServerConfig) (url string, command []string) {
	t.Helper()
	cfg := GatewayConfig{Servers: []ServerConfig{server}}
	switch front {
	case "http":
		return startServe(t, cfg).URL, nil
	case "stdio":
		return "", []string{portcullisBin, "run", "--config", writeConfig(t, cfg), server.Name}
	}
	t.Fatalf("unknown front %q", front)
	return "", nil
}

func sdkTarget(url string, command []string) []string {
	if url != "" {
		return []string{"--url", url}
	}
	return append([]string{"--"}, command...)
}

func filesystemServer(t *testing.T) (ServerConfig, string) {
	t.Helper()
	root, err := filepath.EvalSymlinks(t.TempDir()) // the server compares real paths
	if err != nil {
		t.Fatal(err)
	}
	return ServerConfig{Name: "fs", Command: nodeBin, Args: []string{filesystemServerJS(), root},
		Sandbox: "{read_write: [" + q(root) + "]}"}, root
}

func memoryServer(t *testing.T) ServerConfig {
	t.Helper()
	dir := t.TempDir()
	return ServerConfig{Name: "memory", Command: nodeBin, Args: []string{memoryServerJS()},
		Env:     map[string]string{"MEMORY_FILE_PATH": filepath.Join(dir, "memory.jsonl")},
		Sandbox: "{read_write: [" + q(dir) + "]}"}
}

func TestSDKClient(t *testing.T) {
	requireE2E(t)
	requireFile(t, nodeModule("@modelcontextprotocol", "sdk", "package.json"))
	requireFile(t, filesystemServerJS())
	requireFile(t, memoryServerJS())
	for _, front := range []string{"http", "stdio"} {
		t.Run(front+"/filesystem", func(t *testing.T) {
			srv, root := filesystemServer(t)
			content := fmt.Sprintf("hello from the portcullis e2e tests (%s front)\nsecond line\n", front)
			file := filepath.Join(root, "hello.txt")
			if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			url, command := frontTarget(t, front, srv)
			res := runSDKClient(t, sdkTarget(url, command), toolCall{"read_text_file", map[string]any{"path": file}})
			t.Logf("server %s, %d tools: %v", res.ServerInfo, len(res.Tools), res.Tools)
			for _, want := range []string{"read_text_file", "list_directory", "write_file"} {
				if !slices.Contains(res.Tools, want) {
					t.Errorf("tools/list lacks %q: %v", want, res.Tools)
				}
			}
			if got, _ := toolText(res.Calls[0].Result); got != content {
				t.Errorf("read_text_file returned %q, want %q", got, content)
			}
		})
		t.Run(front+"/memory", func(t *testing.T) {
			url, command := frontTarget(t, front, memoryServer(t))
			entity := "portcullis-e2e-" + front
			res := runSDKClient(t, sdkTarget(url, command),
				toolCall{"create_entities", map[string]any{"entities": []any{map[string]any{
					"name": entity, "entityType": "test", "observations": []string{"seen through the " + front + " front"}}}}},
				toolCall{"read_graph", map[string]any{}})
			for _, want := range []string{"create_entities", "read_graph", "search_nodes"} {
				if !slices.Contains(res.Tools, want) {
					t.Errorf("tools/list lacks %q: %v", want, res.Tools)
				}
			}
			var graph struct {
				StructuredContent struct {
					Entities []struct {
						Name         string   `json:"name"`
						Observations []string `json:"observations"`
					} `json:"entities"`
				} `json:"structuredContent"`
			}
			json.Unmarshal(res.Calls[1].Result, &graph)
			text, _ := toolText(res.Calls[1].Result)
			found := false
			for _, e := range graph.StructuredContent.Entities {
				found = found || e.Name == entity
			}
			if !found && !strings.Contains(text, entity) {
				t.Errorf("read_graph does not show entity %q: %s", entity, res.Calls[1].Result)
			}
		})
	}
}

// runInspector runs the Inspector CLI (`mcp-inspector --cli`) with opts, then target.
func runInspector(t *testing.T, home string, target []string, opts ...string) string {
	t.Helper()
	args := append([]string{inspectorJS(), "--cli"}, opts...)
	args = append(args, target...)
	env := []string{"HOME=" + home, "MCP_CATALOG_PATH=" + filepath.Join(home, "catalog.json")}
	out, err := runNode(t, 2*time.Minute, env, args...)
	if err != nil {
		t.Fatalf("inspector %s: %v", strings.Join(opts, " "), err)
	}
	return out
}

// firstJSON decodes the first JSON value of out into v.
func firstJSON(t *testing.T, out string, v any) {
	t.Helper()
	i := strings.IndexAny(out, "{[")
	if i < 0 {
		t.Fatalf("no JSON in output:\n%s", out)
	}
	if err := json.NewDecoder(strings.NewReader(out[i:])).Decode(v); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
}

func TestInspectorCLI(t *testing.T) {
	requireE2E(t)
	requireFile(t, inspectorJS())
	requireFile(t, memoryServerJS())
	for _, front := range []string{"http", "stdio"} {
		t.Run(front, func(t *testing.T) {
			url, command := frontTarget(t, front, memoryServer(t))
			var target []string
			if url != "" {
				target = []string{"--transport", "http", url}
			} else {
				target = append([]string{"--transport", "stdio", "--"}, command...)
			}
			home := t.TempDir()

			var list struct {
				Tools []struct {
					Name string `json:"name"`
				} `json:"tools"`
			}
			firstJSON(t, runInspector(t, home, target, "--method", "tools/list"), &list)
			var names []string
			for _, tool := range list.Tools {
				names = append(names, tool.Name)
			}
			for _, want := range []string{"create_entities", "read_graph", "search_nodes"} {
				if !slices.Contains(names, want) {
					t.Errorf("tools/list lacks %q: %v", want, names)
				}
			}

			entity := "inspector-" + front
			observation := "created by the inspector CLI through portcullis " + front
			entities, _ := json.Marshal([]any{map[string]any{"name": entity, "entityType": "test", "observations": []string{observation}}})
			var created struct {
				Content []struct {
					Text string `json:"text"`
				} `json:"content"`
				IsError bool `json:"isError"`
			}
			out := runInspector(t, home, target, "--method", "tools/call", "--tool-name", "create_entities", "--tool-arg", "entities="+string(entities))
			firstJSON(t, out, &created)
			if created.IsError || len(created.Content) == 0 || !strings.Contains(created.Content[0].Text, entity) {
				t.Errorf("create_entities: unexpected result:\n%s", out)
			}

			// A second client run (a new MCP session; for stdio a new gateway and server)
			// finds the entity in the server's file.
			out = runInspector(t, home, target, "--method", "tools/call", "--tool-name", "search_nodes", "--tool-arg", "query="+entity)
			var found json.RawMessage
			firstJSON(t, out, &found)
			if text, isErr := toolText(found); isErr || !strings.Contains(text, observation) {
				t.Errorf("search_nodes %q: want the observation %q, got:\n%s", entity, observation, out)
			}
		})
	}
}
