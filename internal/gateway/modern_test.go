package gateway_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-mcp/portcullis/internal/gateway"
	gt "github.com/portcullis-mcp/portcullis/internal/gateway/gatewaytest"
	"github.com/portcullis-mcp/portcullis/internal/identity"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

const modernMeta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"modern","version":"1"}}`

// modernParams returns params with the modern _meta added to the members in fields.
func modernParams(fields string) string {
	if fields == "" {
		return "{" + modernMeta + "}"
	}
	return "{" + fields + "," + modernMeta + "}"
}

func TestCheckModern(t *testing.T) {
	tests := []struct {
		name, method, params string
		want                 int
	}{
		{"valid", "tools/list", modernParams(""), 0},
		{"valid call", "tools/call", modernParams(`"name":"x"`), 0},
		{"no params", "tools/list", ``, jsonrpc.CodeInvalidParams},
		{"no _meta", "tools/list", `{"cursor":"1"}`, jsonrpc.CodeInvalidParams},
		{"_meta not an object", "tools/list", `{"_meta":[]}`, jsonrpc.CodeInvalidParams},
		{"no version", "tools/list", `{"_meta":{"io.modelcontextprotocol/clientCapabilities":{}}}`, jsonrpc.CodeInvalidParams},
		{"version not a string", "tools/list", `{"_meta":{"io.modelcontextprotocol/protocolVersion":20260728,"io.modelcontextprotocol/clientCapabilities":{}}}`, jsonrpc.CodeInvalidParams},
		{"no capabilities", "tools/list", `{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}`, jsonrpc.CodeInvalidParams},
		{"capabilities not an object", "tools/list", `{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":true}}`, jsonrpc.CodeInvalidParams},
		{"unknown version", "tools/list", `{"_meta":{"io.modelcontextprotocol/protocolVersion":"2099-01-01","io.modelcontextprotocol/clientCapabilities":{}}}`, jsonrpc.CodeUnsupportedProtocolVersion},
		{"legacy version in _meta", "tools/list", `{"_meta":{"io.modelcontextprotocol/protocolVersion":"2025-11-25","io.modelcontextprotocol/clientCapabilities":{}}}`, jsonrpc.CodeUnsupportedProtocolVersion},
		{"initialize removed", "initialize", modernParams(`"protocolVersion":"2026-07-28","capabilities":{},"clientInfo":{"name":"c","version":"1"}`), jsonrpc.CodeMethodNotFound},
		{"ping removed", "ping", modernParams(""), jsonrpc.CodeMethodNotFound},
		{"setLevel removed", "logging/setLevel", modernParams(`"level":"info"`), jsonrpc.CodeMethodNotFound},
		{"subscribe removed", "resources/subscribe", modernParams(`"uri":"file:///x"`), jsonrpc.CodeMethodNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			je := gateway.CheckModern(request(tt.method, tt.params))
			got := 0
			if je != nil {
				got = je.Code
			}
			if got != tt.want {
				t.Fatalf("code %d, want %d (%v)", got, tt.want, je)
			}
			if tt.want == jsonrpc.CodeUnsupportedProtocolVersion {
				var data struct {
					Supported []string `json:"supported"`
					Requested string   `json:"requested"`
				}
				if err := json.Unmarshal(je.Data, &data); err != nil {
					t.Fatalf("data %s: %v", je.Data, err)
				}
				if !slices.Contains(data.Supported, "2026-07-28") || data.Requested == "" {
					t.Errorf("data %s: want the supported versions and the requested one", je.Data)
				}
			}
		})
	}
}

func TestModernVersion(t *testing.T) {
	if v, ok := gateway.ModernVersion(request("tools/list", modernParams(""))); !ok || v != "2026-07-28" {
		t.Errorf("ModernVersion = %q, %v", v, ok)
	}
	if _, ok := gateway.ModernVersion(request("initialize", initParams)); ok {
		t.Error("a legacy initialize reads as modern")
	}
}

func TestHandleModern(t *testing.T) {
	alice := identity.Principal{ID: "alice", Method: "apikey"}
	bob := identity.Principal{ID: "bob", Method: "apikey"}
	a, b := serverA(), serverB()
	a.Capabilities = json.RawMessage(`{"tools":{"listChanged":true},"prompts":{},"resources":{},"completions":{}}`)
	g, _ := newGateway(t, gateway.Options{Version: "1.2.3"}, a, b)
	c := &fakeClient{}
	handle := func(p identity.Principal, method, fields string) *jsonrpc.Message {
		t.Helper()
		m := request(method, modernParams(fields))
		if je := gateway.CheckModern(m); je != nil {
			t.Fatalf("CheckModern: %v", je)
		}
		resp := g.HandleModern(context.Background(), p, c, m)
		if string(resp.ID) != string(m.ID) {
			t.Errorf("response id %s, want %s", resp.ID, m.ID)
		}
		return resp
	}

	tests := []struct {
		method, fields string
		cacheable      bool
		check          func(t *testing.T, res json.RawMessage)
	}{
		{method: "tools/list", cacheable: true, check: func(t *testing.T, res json.RawMessage) {
			var v struct{ Tools []struct{ Name string } }
			json.Unmarshal(res, &v)
			if len(v.Tools) != 2 || v.Tools[0].Name != "a__x" {
				t.Errorf("tools %s", res)
			}
		}},
		{method: "tools/call", fields: `"name":"b__y"`, check: func(t *testing.T, res json.RawMessage) {
			if !strings.Contains(string(res), `"text":"b:y"`) {
				t.Errorf("result %s", res)
			}
		}},
		{method: "resources/list", cacheable: true},
		{method: "resources/templates/list", cacheable: true},
		{method: "resources/read", fields: `"uri":"file:///a/1"`, cacheable: true},
		{method: "prompts/get", fields: `"name":"a__p"`},
		{method: "completion/complete", fields: `"ref":{"type":"ref/prompt","name":"a__p"},"argument":{"name":"n","value":"v"}`},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			resp := handle(alice, tt.method, tt.fields)
			res := decodeRaw(t, resp)
			if got := lookupString(t, res, "resultType"); got != "complete" {
				t.Errorf("resultType %q", got)
			}
			ttl, hasTTL := jsonrpc.Lookup(res, "ttlMs")
			scope, _ := jsonrpc.LookupString(res, "cacheScope")
			if tt.cacheable {
				if string(ttl) != "0" || scope != "private" {
					t.Errorf("ttlMs %s, cacheScope %q; want 0 and private: %s", ttl, scope, res)
				}
			} else if hasTTL {
				t.Errorf("%s is not cacheable but has ttlMs: %s", tt.method, res)
			}
			if got := lookupString(t, res, "_meta", gateway.MetaServerInfo, "name"); got != "portcullis" {
				t.Errorf("_meta serverInfo name %q", got)
			}
			if got := lookupString(t, res, "_meta", gateway.MetaServerInfo, "version"); got != "1.2.3" {
				t.Errorf("_meta serverInfo version %q", got)
			}
			if tt.check != nil {
				tt.check(t, res)
			}
		})
	}

	t.Run("errors are not decorated", func(t *testing.T) {
		resp := handle(alice, "tools/call", `"name":"a__nope"`)
		if resp.Error == nil || resp.Error.Code != jsonrpc.CodeInvalidParams {
			t.Fatalf("want the server's error: %s", resp.Marshal())
		}
		resp = handle(alice, "tools/call", `"name":"nope"`)
		if resp.Error == nil || resp.Error.Code != jsonrpc.CodeInvalidParams {
			t.Fatalf("want the gateway's routing error: %s", resp.Marshal())
		}
	})

	t.Run("server/discover", func(t *testing.T) {
		res := decodeRaw(t, handle(alice, "server/discover", ""))
		var v struct {
			SupportedVersions []string                   `json:"supportedVersions"`
			Capabilities      map[string]json.RawMessage `json:"capabilities"`
			ResultType        string                     `json:"resultType"`
		}
		if err := json.Unmarshal(res, &v); err != nil {
			t.Fatal(err)
		}
		if len(v.SupportedVersions) == 0 || v.SupportedVersions[0] != "2026-07-28" || !slices.Contains(v.SupportedVersions, "2025-11-25") {
			t.Errorf("supportedVersions %v", v.SupportedVersions)
		}
		for _, c := range []string{"tools", "prompts", "resources", "completions"} {
			if _, ok := v.Capabilities[c]; !ok {
				t.Errorf("capability %s missing: %s", c, res)
			}
		}
		if lc, _ := jsonrpc.Lookup(v.Capabilities["tools"], "listChanged"); string(lc) != "true" {
			t.Errorf("tools.listChanged %s", lc)
		}
		if v.ResultType != "complete" {
			t.Errorf("resultType %q", v.ResultType)
		}
		if ttl, _ := jsonrpc.Lookup(res, "ttlMs"); string(ttl) != "0" {
			t.Errorf("server/discover is cacheable: %s", res)
		}
	})

	t.Run("one pool per principal", func(t *testing.T) {
		before := a.Dials()
		handle(alice, "tools/list", "")
		if a.Dials() != before {
			t.Errorf("alice's second request dialled again")
		}
		handle(bob, "tools/list", "")
		if a.Dials() != before+1 {
			t.Errorf("bob shares alice's server session (dials %d -> %d)", before, a.Dials())
		}
		// The pool's server session was opened with a legacy version: the server is legacy.
		if got := lookupString(t, a.Requests("initialize")[0].Params, "protocolVersion"); got != gateway.LegacyVersions[0] {
			t.Errorf("server opened with %q", got)
		}
	})
}

// A single server's own 2026-07-28 fields pass through; the gateway adds only what is missing.
func TestHandleModernKeepsServerFields(t *testing.T) {
	a := serverA()
	a.Handle("tools/list", func(ctx context.Context, r *gt.Request) (any, error) {
		return json.RawMessage(`{"tools":[],"ttlMs":5000,"cacheScope":"public","resultType":"complete","_meta":{"io.modelcontextprotocol/serverInfo":{"name":"a"},"x":1}}`), nil
	})
	g, _ := newGateway(t, gateway.Options{}, a)
	resp := g.HandleModern(context.Background(), identity.Anonymous, &fakeClient{}, request("tools/list", modernParams("")))
	want := `{"tools":[],"ttlMs":5000,"cacheScope":"public","resultType":"complete","_meta":{"io.modelcontextprotocol/serverInfo":{"name":"a"},"x":1}}`
	if got := string(decodeRaw(t, resp)); got != want {
		t.Errorf("result\n%s\nwant it unchanged\n%s", got, want)
	}
}
