package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/gateway"
	gt "github.com/portcullis-mcp/portcullis/internal/gateway/gatewaytest"
	"github.com/portcullis-mcp/portcullis/internal/identity"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

func serverA() *gt.Server {
	return &gt.Server{Name: "a",
		Tools:     []gt.Tool{{Name: "x", Description: "tool x of a"}},
		Prompts:   []gt.Prompt{{Name: "p", Description: "prompt p of a"}},
		Resources: []gt.Resource{{URI: "file:///a/1", Name: "a1"}},
		Templates: []gt.Template{{URITemplate: "file:///a/items/{id}", Name: "a items"}},
	}
}

func serverB() *gt.Server {
	return &gt.Server{Name: "b",
		Tools:     []gt.Tool{{Name: "y", Description: "tool y of b"}},
		Prompts:   []gt.Prompt{{Name: "q", Description: "prompt q of b"}},
		Resources: []gt.Resource{{URI: "file:///b/1", Name: "b1"}},
		Templates: []gt.Template{{URITemplate: "db://b/{table}", Name: "b tables"}},
	}
}

func TestSingleServerIsTransparent(t *testing.T) {
	a := &gt.Server{Name: "solo", Instructions: "use me", PageSize: 2,
		Tools: []gt.Tool{{Name: "t1"}, {Name: "t2"}, {Name: "t3"}, {Name: "t4"}, {Name: "t5"}}}
	g, _ := newGateway(t, gateway.Options{}, a)
	s, init := openSession(t, g, &fakeClient{})

	// initialize: the server's own identity and instructions.
	if got := lookupString(t, init.Result, "serverInfo", "name"); got != "solo" {
		t.Errorf("serverInfo.name = %q, want the server's own name", got)
	}
	if got := lookupString(t, init.Result, "instructions"); got != "use me" {
		t.Errorf("instructions = %q", got)
	}

	// tools/list: raw pages, cursors passed both ways.
	var all []string
	cursor := ""
	for page := 0; page < 5; page++ {
		params := `{}`
		if cursor != "" {
			params = `{"cursor":` + string(jsonrpc.Quote(cursor)) + `}`
		}
		resp := s.Handle(context.Background(), request("tools/list", params))
		all = append(all, names(t, resp, "tools", "name")...)
		next, ok := jsonrpc.LookupString(resp.Result, "nextCursor")
		if !ok {
			break
		}
		cursor = next
	}
	if want := []string{"t1", "t2", "t3", "t4", "t5"}; !slices.Equal(all, want) {
		t.Errorf("tools over pages = %v, want %v (unprefixed)", all, want)
	}
	lists := a.Requests("tools/list")
	if len(lists) != 3 {
		t.Fatalf("server saw %d tools/list, want 3 (one per page)", len(lists))
	}
	if c, _ := jsonrpc.LookupString(lists[1].Params, "cursor"); c != "2" {
		t.Errorf("second page asked with cursor %q, want the server's own \"2\"", c)
	}

	// tools/call: the name reaches the server as it is, even when it looks prefixed.
	for _, name := range []string{"t1", "solo__t1"} {
		a.ClearReceived()
		s.Handle(context.Background(), request("tools/call", `{"name":`+string(jsonrpc.Quote(name))+`,"arguments":{}}`))
		calls := a.Requests("tools/call")
		if len(calls) != 1 {
			t.Fatalf("%s: server saw %d calls", name, len(calls))
		}
		if got := lookupString(t, calls[0].Params, "name"); got != name {
			t.Errorf("server saw name %q, want %q unchanged", got, name)
		}
	}

	// Any other method goes through too.
	a.ClearReceived()
	resp := s.Handle(context.Background(), request("vendor/custom", `{}`))
	if errorCode(resp) != jsonrpc.CodeMethodNotFound || len(a.Requests("vendor/custom")) != 1 {
		t.Errorf("vendor/custom: %s, server saw %v", resp.Marshal(), methods(a.Traffic()))
	}
}

func TestMergedLists(t *testing.T) {
	a, b := serverA(), serverB()
	a.Tools = append(a.Tools, gt.Tool{Name: "z"}, gt.Tool{Name: "w"})
	a.PageSize = 1 // the gateway reads every page when it merges
	g, _ := newGateway(t, gateway.Options{}, a, b)
	s, _ := openSession(t, g, &fakeClient{})

	tests := []struct {
		method, field, key string
		want               []string
	}{
		{"tools/list", "tools", "name", []string{"a__x", "a__z", "a__w", "b__y"}},
		{"prompts/list", "prompts", "name", []string{"a__p", "b__q"}},
		{"resources/list", "resources", "uri", []string{"file:///a/1", "file:///b/1"}},
		{"resources/templates/list", "resourceTemplates", "uriTemplate", []string{"file:///a/items/{id}", "db://b/{table}"}},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			resp := s.Handle(context.Background(), request(tt.method, `{}`))
			got := names(t, resp, tt.field, tt.key)
			if !slices.Equal(got, tt.want) {
				t.Errorf("merged %s = %v, want %v", tt.method, got, tt.want)
			}
			if _, ok := jsonrpc.Lookup(resp.Result, "nextCursor"); ok {
				t.Errorf("merged list has a nextCursor: %s", resp.Result)
			}
		})
	}
	// Descriptions and other fields are kept.
	resp := s.Handle(context.Background(), request("tools/list", `{}`))
	if !strings.Contains(string(resp.Result), `"description":"tool y of b"`) {
		t.Errorf("tools/list lost fields: %s", resp.Result)
	}
}

func TestRouting(t *testing.T) {
	tests := []struct {
		name     string
		setup    []string // methods called first (listings that teach the gateway owners)
		method   string
		params   string
		server   string // which server must see it; "" for none
		wantCode int    // 0 for a result
		check    func(t *testing.T, seen *jsonrpc.Message, resp *jsonrpc.Message)
	}{
		{name: "tools/call a", method: "tools/call", params: `{"name":"a__x","arguments":{"q":1}}`, server: "a",
			check: func(t *testing.T, seen, resp *jsonrpc.Message) {
				if got := lookupString(t, seen.Params, "name"); got != "x" {
					t.Errorf("server saw name %q, want x", got)
				}
				if args, _ := jsonrpc.Lookup(seen.Params, "arguments"); string(args) != `{"q":1}` {
					t.Errorf("arguments = %s", args)
				}
				if !strings.Contains(string(resp.Result), `"text":"a:x"`) {
					t.Errorf("result %s", resp.Result)
				}
			}},
		{name: "tools/call b", method: "tools/call", params: `{"name":"b__y"}`, server: "b",
			check: func(t *testing.T, seen, _ *jsonrpc.Message) {
				if got := lookupString(t, seen.Params, "name"); got != "y" {
					t.Errorf("server saw name %q, want y", got)
				}
			}},
		{name: "no prefix", method: "tools/call", params: `{"name":"x"}`, wantCode: jsonrpc.CodeInvalidParams},
		{name: "unknown prefix", method: "tools/call", params: `{"name":"c__x"}`, wantCode: jsonrpc.CodeInvalidParams},
		{name: "empty prefix", method: "tools/call", params: `{"name":"__x"}`, wantCode: jsonrpc.CodeInvalidParams},
		{name: "no name", method: "tools/call", params: `{"arguments":{}}`, wantCode: jsonrpc.CodeInvalidParams},
		{name: "name not a string", method: "tools/call", params: `{"name":7}`, wantCode: jsonrpc.CodeInvalidParams},
		{name: "prompts/get", method: "prompts/get", params: `{"name":"a__p","arguments":{"k":"v"}}`, server: "a",
			check: func(t *testing.T, seen, _ *jsonrpc.Message) {
				if got := lookupString(t, seen.Params, "name"); got != "p" {
					t.Errorf("server saw name %q, want p", got)
				}
				if args, _ := jsonrpc.Lookup(seen.Params, "arguments"); string(args) != `{"k":"v"}` {
					t.Errorf("arguments = %s", args)
				}
			}},
		{name: "prompts/get unprefixed", method: "prompts/get", params: `{"name":"q"}`, wantCode: jsonrpc.CodeInvalidParams},
		{name: "completion ref/prompt", method: "completion/complete",
			params: `{"ref":{"type":"ref/prompt","name":"b__q"},"argument":{"name":"lang","value":"g"}}`, server: "b",
			check: func(t *testing.T, seen, resp *jsonrpc.Message) {
				ref, _ := jsonrpc.Lookup(seen.Params, "ref")
				if got := lookupString(t, ref, "name"); got != "q" {
					t.Errorf("server saw ref.name %q, want q", got)
				}
				if got := lookupString(t, ref, "type"); got != "ref/prompt" {
					t.Errorf("ref.type = %q", got)
				}
				if arg, _ := jsonrpc.Lookup(seen.Params, "argument"); string(arg) != `{"name":"lang","value":"g"}` {
					t.Errorf("argument = %s", arg)
				}
				if !strings.Contains(string(resp.Result), `"b:q"`) {
					t.Errorf("result %s", resp.Result)
				}
			}},
		{name: "completion ref/prompt unprefixed", method: "completion/complete",
			params: `{"ref":{"type":"ref/prompt","name":"q"},"argument":{"name":"lang","value":"g"}}`, wantCode: jsonrpc.CodeInvalidParams},
		{name: "completion ref/resource by template", setup: []string{"resources/templates/list"}, method: "completion/complete",
			params: `{"ref":{"type":"ref/resource","uri":"db://b/{table}"},"argument":{"name":"table","value":"us"}}`, server: "b",
			check: func(t *testing.T, seen, _ *jsonrpc.Message) {
				ref, _ := jsonrpc.Lookup(seen.Params, "ref")
				if got := lookupString(t, ref, "uri"); got != "db://b/{table}" {
					t.Errorf("server saw ref.uri %q", got)
				}
			}},
		{name: "completion ref/resource unknown", method: "completion/complete",
			params: `{"ref":{"type":"ref/resource","uri":"db://b/{table}"},"argument":{"name":"table","value":"us"}}`, wantCode: jsonrpc.CodeInvalidParams},
		{name: "resources/read after list", setup: []string{"resources/list"}, method: "resources/read", params: `{"uri":"file:///b/1"}`, server: "b",
			check: func(t *testing.T, seen, resp *jsonrpc.Message) {
				if got := lookupString(t, seen.Params, "uri"); got != "file:///b/1" {
					t.Errorf("server saw uri %q (URIs are never prefixed)", got)
				}
				if !strings.Contains(string(resp.Result), `"text":"b:file:///b/1"`) {
					t.Errorf("result %s", resp.Result)
				}
			}},
		{name: "resources/read by template", setup: []string{"resources/templates/list"}, method: "resources/read", params: `{"uri":"file:///a/items/42"}`, server: "a"},
		{name: "resources/read by template of b", setup: []string{"resources/templates/list"}, method: "resources/read", params: `{"uri":"db://b/users"}`, server: "b"},
		{name: "resources/read before any list", method: "resources/read", params: `{"uri":"file:///b/1"}`, wantCode: jsonrpc.CodeInvalidParams},
		{name: "resources/read unknown", setup: []string{"resources/list", "resources/templates/list"}, method: "resources/read", params: `{"uri":"file:///c/1"}`, wantCode: jsonrpc.CodeInvalidParams},
		{name: "resources/read without uri", method: "resources/read", params: `{}`, wantCode: jsonrpc.CodeInvalidParams},
		{name: "unroutable method", method: "vendor/custom", params: `{}`, wantCode: jsonrpc.CodeMethodNotFound},
		{name: "ping answered by the gateway", method: "ping", params: `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := serverA(), serverB()
			g, _ := newGateway(t, gateway.Options{}, a, b)
			s, _ := openSession(t, g, &fakeClient{})
			for _, m := range tt.setup {
				decode(t, s.Handle(context.Background(), request(m, `{}`)))
			}
			a.ClearReceived()
			b.ClearReceived()
			m := request(tt.method, tt.params)
			resp := s.Handle(context.Background(), m)
			if string(resp.ID) != string(m.ID) {
				t.Errorf("response id %s, want %s", resp.ID, m.ID)
			}
			if got := errorCode(resp); got != tt.wantCode {
				t.Fatalf("error code %d, want %d: %s", got, tt.wantCode, resp.Marshal())
			}
			servers := map[string]*gt.Server{"a": a, "b": b}
			for name, srv := range servers {
				traffic := srv.Traffic()
				switch {
				case name == tt.server && len(traffic) != 1:
					t.Fatalf("server %s saw %v, want one %s", name, methods(traffic), tt.method)
				case name != tt.server && len(traffic) != 0:
					t.Errorf("server %s saw %v, want nothing", name, methods(traffic))
				}
			}
			if tt.check != nil {
				tt.check(t, servers[tt.server].Traffic()[0], resp)
			}
		})
	}
}

// A name two servers both offer is listed once (the first server's), the collision is
// logged, and the gateway routes the listed name to the server it listed it for.
func TestNameCollision(t *testing.T) {
	a, b := serverA(), serverB()
	a.Resources = append(a.Resources, gt.Resource{URI: "file:///shared", Name: "shared", Text: "from a"})
	b.Resources = append(b.Resources, gt.Resource{URI: "file:///shared", Name: "shared", Text: "from b"})
	a.Tools = append(a.Tools, gt.Tool{Name: "x", Description: "x again"}) // a buggy server
	g, logs := newGateway(t, gateway.Options{}, a, b)
	s, _ := openSession(t, g, &fakeClient{})

	uris := names(t, s.Handle(context.Background(), request("resources/list", `{}`)), "resources", "uri")
	if want := []string{"file:///a/1", "file:///shared", "file:///b/1"}; !slices.Equal(uris, want) {
		t.Errorf("resources = %v, want %v (no duplicates)", uris, want)
	}
	tools := names(t, s.Handle(context.Background(), request("tools/list", `{}`)), "tools", "name")
	if want := []string{"a__x", "b__y"}; !slices.Equal(tools, want) {
		t.Errorf("tools = %v, want %v (no duplicates)", tools, want)
	}
	if n := strings.Count(logs.String(), "name collision"); n != 2 {
		t.Errorf("logged %d collisions, want 2:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "file:///shared") {
		t.Errorf("the collision log does not name the resource:\n%s", logs)
	}

	a.ClearReceived()
	b.ClearReceived()
	resp := s.Handle(context.Background(), request("resources/read", `{"uri":"file:///shared"}`))
	if !strings.Contains(string(resp.Result), "from a") {
		t.Errorf("read of the listed (a's) resource answered %s; a saw %v, b saw %v",
			resp.Marshal(), methods(a.Traffic()), methods(b.Traffic()))
	}
}

func TestInitialize(t *testing.T) {
	t.Run("merged", func(t *testing.T) {
		a, b := serverA(), serverB()
		a.Capabilities = json.RawMessage(`{"tools":{"listChanged":false},"logging":{},"resources":{"subscribe":true}}`)
		a.Instructions = "a says hi"
		b.Capabilities = json.RawMessage(`{"tools":{"listChanged":true},"prompts":{},"resources":{"listChanged":true,"subscribe":false}}`)
		b.Instructions = "b says hi"
		g, _ := newGateway(t, gateway.Options{Version: "9.9"}, a, b)
		_, resp := openSession(t, g, &fakeClient{})
		var res struct {
			ProtocolVersion string                                `json:"protocolVersion"`
			Capabilities    map[string]map[string]json.RawMessage `json:"capabilities"`
			ServerInfo      map[string]string                     `json:"serverInfo"`
			Instructions    string                                `json:"instructions"`
		}
		if err := json.Unmarshal(resp.Result, &res); err != nil {
			t.Fatal(err)
		}
		if res.ProtocolVersion != "2025-11-25" {
			t.Errorf("protocolVersion %q", res.ProtocolVersion)
		}
		caps := res.Capabilities
		for _, c := range []struct{ cap, flag, want string }{
			{"tools", "listChanged", "true"},
			{"resources", "listChanged", "true"},
			{"resources", "subscribe", "true"},
		} {
			if got := string(caps[c.cap][c.flag]); got != c.want {
				t.Errorf("capabilities.%s.%s = %s, want %s (true when any server has it)", c.cap, c.flag, got, c.want)
			}
		}
		for _, c := range []string{"logging", "prompts"} {
			if _, ok := caps[c]; !ok {
				t.Errorf("capability %s of one server is missing: %s", c, resp.Result)
			}
		}
		if res.ServerInfo["name"] != "portcullis" || res.ServerInfo["version"] != "9.9" {
			t.Errorf("serverInfo %v, want the gateway's", res.ServerInfo)
		}
		if !strings.Contains(res.Instructions, "a says hi") || !strings.Contains(res.Instructions, "b says hi") ||
			!strings.Contains(res.Instructions, `"a"`) {
			t.Errorf("instructions %q", res.Instructions)
		}
		// Each server was opened with the client's own version, capabilities and identity.
		for _, srv := range []*gt.Server{a, b} {
			inits := srv.Requests("initialize")
			if len(inits) != 1 {
				t.Fatalf("%s saw %d initialize", srv.Name, len(inits))
			}
			p := inits[0].Params
			if got := lookupString(t, p, "clientInfo", "name"); got != "test-client" {
				t.Errorf("%s: clientInfo.name %q", srv.Name, got)
			}
			if _, ok := jsonrpc.LookupPath(p, "capabilities", "sampling"); !ok {
				t.Errorf("%s: client capabilities not passed: %s", srv.Name, p)
			}
			if got := lookupString(t, p, "protocolVersion"); got != "2025-11-25" {
				t.Errorf("%s: protocolVersion %q", srv.Name, got)
			}
			if len(srv.Requests("notifications/initialized")) != 1 {
				t.Errorf("%s: no notifications/initialized", srv.Name)
			}
		}
	})
	t.Run("single", func(t *testing.T) {
		a := serverA()
		a.Version = "3.1"
		g, _ := newGateway(t, gateway.Options{Version: "9.9"}, a)
		_, resp := openSession(t, g, &fakeClient{})
		if got := lookupString(t, resp.Result, "serverInfo", "name"); got != "a" {
			t.Errorf("serverInfo.name %q, want the server's", got)
		}
		if got := lookupString(t, resp.Result, "serverInfo", "version"); got != "3.1" {
			t.Errorf("serverInfo.version %q, want the server's", got)
		}
	})
	t.Run("older version", func(t *testing.T) {
		a := serverA()
		g, _ := newGateway(t, gateway.Options{}, a)
		s, err := g.NewSession(identity.Anonymous, &fakeClient{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		resp := s.Handle(context.Background(), request("initialize", `{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"old","version":"1"}}`))
		if got := lookupString(t, resp.Result, "protocolVersion"); got != "2025-03-26" {
			t.Errorf("protocolVersion %q, want the client's", got)
		}
		if got := lookupString(t, a.Requests("initialize")[0].Params, "protocolVersion"); got != "2025-03-26" {
			t.Errorf("server opened with %q", got)
		}
	})
	t.Run("twice", func(t *testing.T) {
		g, _ := newGateway(t, gateway.Options{}, serverA())
		s, _ := openSession(t, g, &fakeClient{})
		if got := errorCode(s.Handle(context.Background(), request("initialize", initParams))); got != jsonrpc.CodeInvalidRequest {
			t.Errorf("second initialize: code %d", got)
		}
	})
	t.Run("bad params", func(t *testing.T) {
		g, _ := newGateway(t, gateway.Options{}, serverA())
		s, _ := g.NewSession(identity.Anonymous, &fakeClient{})
		defer s.Close()
		if got := errorCode(s.Handle(context.Background(), request("initialize", `{"capabilities":{}}`))); got != jsonrpc.CodeInvalidParams {
			t.Errorf("initialize without version: code %d", got)
		}
	})
	t.Run("server down", func(t *testing.T) {
		a, b := serverA(), serverB()
		b.DialError = func(int) error { return errors.New("no such binary") }
		g, _ := newGateway(t, gateway.Options{}, a, b)
		s, resp := openSession(t, g, &fakeClient{})
		if _, ok := jsonrpc.LookupPath(resp.Result, "capabilities", "tools"); !ok {
			t.Errorf("initialize without the live server's capabilities: %s", resp.Result)
		}
		tools := names(t, s.Handle(context.Background(), request("tools/list", `{}`)), "tools", "name")
		if !slices.Equal(tools, []string{"a__x"}) {
			t.Errorf("tools %v", tools)
		}
		r := s.Handle(context.Background(), request("tools/call", `{"name":"b__y"}`))
		if errorCode(r) != jsonrpc.CodeUpstreamUnavailable || !strings.Contains(r.Error.Message, `"b"`) {
			t.Errorf("call to the dead server: %s", r.Marshal())
		}
	})
}

func TestServerToClient(t *testing.T) {
	for _, mode := range []string{"call ctx", "background ctx"} {
		t.Run("sampling/"+mode, func(t *testing.T) {
			a, b := serverA(), serverB()
			a.Handle("tools/call", func(ctx context.Context, r *gt.Request) (any, error) {
				sctx := ctx
				if mode == "background ctx" {
					sctx = context.Background() // as a stdio server: the gateway finds the call
				}
				resp, err := r.T.SendRequest(sctx, "sampling/createMessage", map[string]any{
					"messages":  []any{map[string]any{"role": "user", "content": map[string]any{"type": "text", "text": "6*7?"}}},
					"maxTokens": 10,
				})
				if err != nil {
					return nil, err
				}
				if resp.Error != nil {
					return nil, resp.Error
				}
				text, _ := jsonrpc.LookupPath(resp.Result, "content", "text")
				return map[string]any{"content": []any{map[string]any{"type": "text", "text": "the model said " + string(text)}}}, nil
			})
			c := &fakeClient{answer: func(ctx context.Context, m *jsonrpc.Message) (*jsonrpc.Message, error) {
				return jsonrpc.NewResult(m.ID, json.RawMessage(`{"role":"assistant","content":{"type":"text","text":"42"},"model":"m"}`)), nil
			}}
			g, _ := newGateway(t, gateway.Options{}, a, b)
			s, _ := openSession(t, g, c)
			resp := s.Handle(context.Background(), request("tools/call", `{"name":"a__x"}`))
			if !strings.Contains(string(decodeRaw(t, resp)), `the model said \"42\"`) {
				t.Errorf("tool result %s does not carry the client's answer", resp.Result)
			}
			asked := c.messages("sampling/createMessage")
			if len(asked) != 1 {
				t.Fatalf("client got %v", methods(c.messages("")))
			}
			if mt, _ := jsonrpc.Lookup(asked[0].Params, "maxTokens"); string(mt) != "10" {
				t.Errorf("client got params %s", asked[0].Params)
			}
		})
	}
	t.Run("client refuses", func(t *testing.T) {
		a := serverA()
		var got *jsonrpc.Message
		a.Handle("tools/call", func(ctx context.Context, r *gt.Request) (any, error) {
			resp, err := r.T.SendRequest(ctx, "elicitation/create", map[string]any{"message": "name?"})
			if err != nil {
				return nil, err
			}
			got = resp
			return map[string]any{}, nil
		})
		g, _ := newGateway(t, gateway.Options{}, a)
		s, _ := openSession(t, g, &fakeClient{}) // answers no requests
		decode(t, s.Handle(context.Background(), request("tools/call", `{"name":"x"}`)))
		if got == nil || got.Error == nil {
			t.Fatalf("server got %v, want an error response", got)
		}
	})
	t.Run("progress", func(t *testing.T) {
		a, b := serverA(), serverB()
		a.Handle("tools/call", func(ctx context.Context, r *gt.Request) (any, error) {
			token, _ := jsonrpc.LookupPath(r.Msg.Params, "_meta", "progressToken")
			for i := 1; i <= 3; i++ {
				r.T.SendNotification(ctx, "notifications/progress", map[string]any{"progressToken": json.RawMessage(token), "progress": i, "total": 3})
			}
			r.T.SendNotification(ctx, "notifications/message", map[string]any{"level": "info", "data": "done"})
			return a.Default(ctx, r)
		})
		c := &fakeClient{}
		g, _ := newGateway(t, gateway.Options{}, a, b)
		s, _ := openSession(t, g, c)
		decode(t, s.Handle(context.Background(), request("tools/call", `{"name":"a__x","_meta":{"progressToken":"tok-1"}}`)))
		prog := c.messages("notifications/progress")
		if len(prog) != 3 {
			t.Fatalf("client got %v, want 3 progress notifications", methods(c.messages("")))
		}
		for i, p := range prog {
			if got := lookupString(t, p.Params, "progressToken"); got != "tok-1" {
				t.Errorf("progress token %q", got)
			}
			if n, _ := jsonrpc.Lookup(p.Params, "progress"); string(n) != fmt.Sprint(i+1) {
				t.Errorf("progress %d = %s", i, n)
			}
		}
		if len(c.messages("notifications/message")) != 1 {
			t.Errorf("log message did not reach the client")
		}
	})
	t.Run("outside a call", func(t *testing.T) {
		a, b := serverA(), serverB()
		c := &fakeClient{}
		g, _ := newGateway(t, gateway.Options{}, a, b)
		openSession(t, g, c)
		if n := b.SendNotification(context.Background(), "notifications/tools/list_changed", nil); n != 1 {
			t.Fatalf("b has %d live transports", n)
		}
		if got := c.waitFor("notifications/tools/list_changed", 1); len(got) != 1 {
			t.Errorf("client got %v", methods(c.messages("")))
		}
	})
	t.Run("ping from the server", func(t *testing.T) {
		a := serverA()
		c := &fakeClient{}
		g, _ := newGateway(t, gateway.Options{}, a)
		openSession(t, g, c)
		resp, err := a.Live()[0].SendRequest(context.Background(), "ping", nil)
		if err != nil || resp.Error != nil {
			t.Fatalf("ping: %v %v", resp, err)
		}
		if len(c.messages("")) != 0 {
			t.Errorf("the gateway passed the server's ping to the client: %v", methods(c.messages("")))
		}
	})
}

func decodeRaw(t testing.TB, resp *jsonrpc.Message) json.RawMessage {
	t.Helper()
	decode(t, resp)
	return resp.Result
}

func TestClientNotificationsFanOut(t *testing.T) {
	a, b := serverA(), serverB()
	g, _ := newGateway(t, gateway.Options{}, a, b)
	s, _ := openSession(t, g, &fakeClient{})
	if resp := s.Handle(context.Background(), notification("notifications/roots/list_changed", "")); resp != nil {
		t.Errorf("a notification got a response: %s", resp.Marshal())
	}
	for _, srv := range []*gt.Server{a, b} {
		if len(srv.Requests("notifications/roots/list_changed")) != 1 {
			t.Errorf("%s saw %v", srv.Name, methods(srv.Traffic()))
		}
	}
}

func TestLoggingSetLevel(t *testing.T) {
	a, b := serverA(), serverB()
	a.Capabilities = json.RawMessage(`{"tools":{},"logging":{}}`)
	g, _ := newGateway(t, gateway.Options{}, a, b)
	s, _ := openSession(t, g, &fakeClient{})
	decode(t, s.Handle(context.Background(), request("logging/setLevel", `{"level":"debug"}`)))
	if len(a.Requests("logging/setLevel")) != 1 || len(b.Requests("logging/setLevel")) != 0 {
		t.Errorf("setLevel reached a: %v, b: %v (only servers with logging)", methods(a.Traffic()), methods(b.Traffic()))
	}
}

func TestCancelled(t *testing.T) {
	a, b := serverA(), serverB()
	started := make(chan struct{})
	cause := make(chan error, 1)
	a.Handle("tools/call", func(ctx context.Context, r *gt.Request) (any, error) {
		close(started)
		select {
		case <-ctx.Done():
			cause <- ctx.Err()
			return nil, ctx.Err()
		case <-time.After(waitLong):
			cause <- nil
			return map[string]any{}, nil
		}
	})
	g, _ := newGateway(t, gateway.Options{}, a, b)
	s, _ := openSession(t, g, &fakeClient{})
	m := request("tools/call", `{"name":"a__x"}`)
	done := make(chan *jsonrpc.Message, 1)
	go func() { done <- s.Handle(context.Background(), m) }()
	<-started
	if resp := s.Handle(context.Background(), notification("notifications/cancelled", `{"requestId":`+string(m.ID)+`,"reason":"user"}`)); resp != nil {
		t.Errorf("notifications/cancelled got a response")
	}
	if err := <-cause; !errors.Is(err, context.Canceled) {
		t.Errorf("the server's call ctx ended with %v, want cancelled", err)
	}
	select {
	case resp := <-done:
		// MCP: a receiver of a cancellation does not answer the cancelled request.
		if resp != nil {
			t.Errorf("cancelled call answered %s", resp.Marshal())
		}
	case <-time.After(waitLong):
		t.Fatal("the cancelled call did not return")
	}
	// The client's notification itself is the gateway's business: it is not fanned out.
	if got := len(b.Requests("notifications/cancelled")); got != 0 {
		t.Errorf("b saw %d notifications/cancelled", got)
	}
	// The session goes on.
	decode(t, s.Handle(context.Background(), request("tools/call", `{"name":"b__y"}`)))
}

func TestCloseCancelsCalls(t *testing.T) {
	a := serverA()
	started := make(chan struct{})
	a.Handle("tools/call", func(ctx context.Context, r *gt.Request) (any, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	})
	g, _ := newGateway(t, gateway.Options{}, a)
	s, _ := openSession(t, g, &fakeClient{})
	done := make(chan *jsonrpc.Message, 1)
	go func() { done <- s.Handle(context.Background(), request("tools/call", `{"name":"x"}`)) }()
	<-started
	s.Close()
	select {
	case resp := <-done:
		if resp.Error == nil {
			t.Errorf("call on a closed session answered %s", resp.Marshal())
		}
	case <-time.After(waitLong):
		t.Fatal("Close did not end the call in flight")
	}
	select {
	case <-s.Done():
	default:
		t.Error("Done not closed")
	}
	if tr := a.Transports(); len(tr) != 1 || !tr[0].Closed() {
		t.Errorf("the server's transport was not closed")
	}
	if g.Session(s.ID()) != nil {
		t.Errorf("closed session still known")
	}
}

func TestUpstreamCrash(t *testing.T) {
	a, b := serverA(), serverB()
	a.Tools = append(a.Tools, gt.Tool{Name: "slow"})
	started := make(chan struct{}, 1)
	a.Handle("tools/call", func(ctx context.Context, r *gt.Request) (any, error) {
		if r.Name() == "slow" {
			started <- struct{}{}
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return a.Default(ctx, r)
	})
	g, _ := newGateway(t, gateway.Options{}, a, b)
	s, _ := openSession(t, g, &fakeClient{})

	done := make(chan *jsonrpc.Message, 1)
	go func() { done <- s.Handle(context.Background(), request("tools/call", `{"name":"a__slow"}`)) }()
	<-started
	a.Crash(errors.New("segmentation fault"))
	var resp *jsonrpc.Message
	select {
	case resp = <-done:
	case <-time.After(waitLong):
		t.Fatal("the call did not end when its server crashed")
	}
	if errorCode(resp) != jsonrpc.CodeUpstreamUnavailable {
		t.Fatalf("code %d, want %d: %s", errorCode(resp), jsonrpc.CodeUpstreamUnavailable, resp.Marshal())
	}
	if !strings.Contains(resp.Error.Message, `"a"`) || !strings.Contains(resp.Error.Message, "segmentation fault") {
		t.Errorf("error %q does not name the server and the cause", resp.Error.Message)
	}

	// The other server is not affected.
	decode(t, s.Handle(context.Background(), request("tools/call", `{"name":"b__y"}`)))

	// The connection restarts (after upstream.Conn's MinBackoff, 200ms; not configurable
	// through gateway.Options) with a new handshake; calls fail fast until then.
	deadline := time.Now().Add(waitLong)
	var failures int
	for {
		r := s.Handle(context.Background(), request("tools/call", `{"name":"a__x"}`))
		if r.Error == nil {
			break
		}
		failures++
		if r.Error.Code != jsonrpc.CodeUpstreamUnavailable {
			t.Errorf("while restarting: %s", r.Marshal())
		}
		if time.Now().After(deadline) {
			t.Fatalf("server a did not come back: %s", r.Marshal())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if a.Dials() != 2 || len(a.Requests("initialize")) != 2 {
		t.Errorf("dials %d, initialize %d, want 2 each", a.Dials(), len(a.Requests("initialize")))
	}
	if tr := a.Transports(); len(tr) == 2 && tr[1].ProtocolVersion() != "2025-11-25" {
		t.Errorf("restarted transport has version %q", tr[1].ProtocolVersion())
	}
	t.Logf("%d calls failed fast while the server restarted", failures)
}

func TestRestartBackoffOnFailedDial(t *testing.T) {
	a := serverA()
	a.DialError = func(n int) error {
		if n == 2 {
			return errors.New("still down")
		}
		return nil
	}
	g, _ := newGateway(t, gateway.Options{}, a)
	s, _ := openSession(t, g, &fakeClient{})
	a.Crash(errors.New("boom"))
	// dial 2 fails, dial 3 (after a longer backoff) succeeds.
	if !a.WaitDials(3, waitLong) {
		t.Fatalf("only %d dials", a.Dials())
	}
	deadline := time.Now().Add(waitLong)
	for {
		r := s.Handle(context.Background(), request("tools/call", `{"name":"x"}`))
		if r.Error == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery: %s", r.Marshal())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSessionLifecycle(t *testing.T) {
	t.Run("shutdown closes servers", func(t *testing.T) {
		a, b := serverA(), serverB()
		g, _ := newGateway(t, gateway.Options{}, a, b)
		openSession(t, g, &fakeClient{})
		openSession(t, g, &fakeClient{})
		if err := g.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		for _, srv := range []*gt.Server{a, b} {
			tr := srv.Transports()
			if len(tr) != 2 {
				t.Fatalf("%s dialled %d times, want once per session", srv.Name, len(tr))
			}
			for _, x := range tr {
				if !x.Closed() {
					t.Errorf("%s transport %d not closed at shutdown", srv.Name, x.N())
				}
			}
		}
		if _, err := g.NewSession(identity.Anonymous, &fakeClient{}); err == nil {
			t.Error("new session after shutdown")
		}
	})
	t.Run("idle sessions expire", func(t *testing.T) {
		a := serverA()
		g, _ := newGateway(t, gateway.Options{SessionIdleTimeout: 100 * time.Millisecond}, a)
		s, _ := openSession(t, g, &fakeClient{})
		pinned, _ := openSession(t, g, &fakeClient{})
		pinned.Pin()
		select {
		case <-s.Done():
		case <-time.After(waitLong):
			t.Fatal("idle session not closed")
		}
		// Done closes first; the rest of Close follows.
		eventually(t, "expired session's server transport closed", func() bool { return a.Transports()[0].Closed() })
		eventually(t, "expired session forgotten", func() bool { return g.Session(s.ID()) == nil })
		select {
		case <-pinned.Done():
			t.Error("pinned session expired")
		default:
		}
	})
	t.Run("max sessions", func(t *testing.T) {
		g, _ := newGateway(t, gateway.Options{MaxSessions: 1}, serverA())
		s, _ := openSession(t, g, &fakeClient{})
		if _, err := g.NewSession(identity.Anonymous, &fakeClient{}); err == nil {
			t.Error("second session accepted over MaxSessions 1")
		}
		s.Close()
		if _, err := g.NewSession(identity.Anonymous, &fakeClient{}); err != nil {
			t.Errorf("after close: %v", err)
		}
	})
	t.Run("sessions are separate", func(t *testing.T) {
		a := serverA()
		g, _ := newGateway(t, gateway.Options{}, a)
		c1, c2 := &fakeClient{}, &fakeClient{}
		s1, _ := openSession(t, g, c1)
		s2, _ := openSession(t, g, c2)
		if s1.ID() == s2.ID() || g.Session(s1.ID()) != s1 {
			t.Fatal("session ids")
		}
		tr := a.Transports()
		tr[1].SendNotification(context.Background(), "notifications/message", map[string]any{"level": "info", "data": "for 2"})
		if len(c2.waitFor("notifications/message", 1)) != 1 || len(c1.messages("")) != 0 {
			t.Errorf("server message of session 2 reached c1: %d, c2: %d", len(c1.messages("")), len(c2.messages("")))
		}
	})
}

func TestNewRejectsDuplicateServers(t *testing.T) {
	a := serverA()
	_, err := gateway.New(gateway.Options{Servers: []gateway.Server{{Name: "a", Dial: a.Dial}, {Name: "a", Dial: a.Dial}}})
	if err == nil {
		t.Fatal("duplicate server names accepted")
	}
}

// When a server says its resources changed, the gateway forgets which URIs it owned until
// the client lists them again, and passes the notification on.
func TestListChangedForgetsOwners(t *testing.T) {
	a, b := serverA(), serverB()
	c := &fakeClient{}
	g, _ := newGateway(t, gateway.Options{}, a, b)
	s, _ := openSession(t, g, c)
	decode(t, s.Handle(context.Background(), request("resources/list", `{}`)))
	decode(t, s.Handle(context.Background(), request("resources/read", `{"uri":"file:///b/1"}`)))
	b.SendNotification(context.Background(), "notifications/resources/list_changed", nil)
	if len(c.waitFor("notifications/resources/list_changed", 1)) != 1 {
		t.Fatal("list_changed did not reach the client")
	}
	if got := errorCode(s.Handle(context.Background(), request("resources/read", `{"uri":"file:///b/1"}`))); got != jsonrpc.CodeInvalidParams {
		t.Errorf("read after list_changed: code %d, want %d until listed again", got, jsonrpc.CodeInvalidParams)
	}
	// a's URIs are unaffected.
	decode(t, s.Handle(context.Background(), request("resources/read", `{"uri":"file:///a/1"}`)))
	decode(t, s.Handle(context.Background(), request("resources/list", `{}`)))
	decode(t, s.Handle(context.Background(), request("resources/read", `{"uri":"file:///b/1"}`)))
}
