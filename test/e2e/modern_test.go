package e2e

// Sessionless 2026-07-28 clients: no initialize, the version and capabilities in each
// request's _meta, mirrored in MCP-Protocol-Version, Mcp-Method and Mcp-Name headers. The
// gateway serves them from a shared legacy session with each server, whatever the server's
// transport.

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"
)

const modernVersion = "2026-07-28"

// modernRequest sends one sessionless 2026-07-28 request.
func modernRequest(ctx context.Context, url string, id int, method string, params map[string]any) (*HTTPResponse, error) {
	if params == nil {
		params = map[string]any{}
	}
	params["_meta"] = map[string]any{
		"io.modelcontextprotocol/protocolVersion":    modernVersion,
		"io.modelcontextprotocol/clientCapabilities": map[string]any{},
		"io.modelcontextprotocol/clientInfo":         map[string]any{"name": "portcullis-e2e", "version": "1.0.0"},
	}
	body, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params})
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set("MCP-Protocol-Version", modernVersion)
	h.Set("Mcp-Method", method)
	if name, ok := params["name"].(string); ok {
		h.Set("Mcp-Name", name)
	}
	return newHTTPClient(url).PostWith(ctx, body, h)
}

func TestModernClient(t *testing.T) {
	requireE2E(t)
	upstream := startEverythingHTTP(t)
	want := mustToolText(t, mustInit(t, upstream), "test_simple_text", nil)
	for _, tc := range []struct {
		name   string
		server ServerConfig
	}{
		{"stdio-upstream", ServerConfig{Name: "everything", Command: everythingBin}},
		{"http-upstream", ServerConfig{Name: "everything", URL: upstream}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := startServe(t, GatewayConfig{Servers: []ServerConfig{tc.server}})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			resp, err := modernRequest(ctx, g.URL, 1, "tools/list", nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Msg == nil || resp.Msg.Error != nil {
				t.Fatalf("2026-07-28 tools/list: HTTP %d: %s %.300s", resp.Status, resp.Msg.errorOrNil(), resp.Body)
			}
			var list struct {
				Tools []struct {
					Name string `json:"name"`
				} `json:"tools"`
				ResultType string `json:"resultType"`
			}
			json.Unmarshal(resp.Msg.Result, &list)
			var names []string
			for _, tool := range list.Tools {
				names = append(names, tool.Name)
			}
			if !slices.Contains(names, "test_simple_text") {
				t.Errorf("2026-07-28 tools/list lacks test_simple_text: %v", names)
			}
			resp, err = modernRequest(ctx, g.URL, 2, "tools/call", map[string]any{"name": "test_simple_text", "arguments": map[string]any{}})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Msg == nil || resp.Msg.Error != nil {
				t.Fatalf("2026-07-28 tools/call: HTTP %d: %s %.300s", resp.Status, resp.Msg.errorOrNil(), resp.Body)
			}
			if got, _ := toolText(resp.Msg.Result); got != want {
				t.Errorf("2026-07-28 tools/call test_simple_text = %q, want %q", got, want)
			}
		})
	}
}
