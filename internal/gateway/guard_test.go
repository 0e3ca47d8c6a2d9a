package gateway_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-mcp/portcullis/internal/gateway"
	gt "github.com/portcullis-mcp/portcullis/internal/gateway/gatewaytest"
	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/identity"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

// What a guard refuses never reaches a server: routing happens before the chain, the chain
// before the terminal that talks to servers.
func TestGuardRefusalsNeverReachServers(t *testing.T) {
	big := `{"name":"a__x","arguments":{"text":"` + strings.Repeat("A", 200) + `"}}`
	tests := []struct {
		name      string
		guards    func(probeKey string) map[string]guard.Config
		method    string
		params    string
		wantCode  int
		wantGuard string
		passes    bool
	}{
		{name: "limits: params too big", method: "tools/call", params: big,
			guards: func(string) map[string]guard.Config {
				return map[string]guard.Config{"limits": yamlSection("max_params_bytes: 64")}
			},
			wantCode: jsonrpc.CodeLimitExceeded, wantGuard: "limits"},
		{name: "limits: small params pass", method: "tools/call", params: `{"name":"a__x"}`, passes: true,
			guards: func(string) map[string]guard.Config {
				return map[string]guard.Config{"limits": yamlSection("max_params_bytes: 64")}
			}},
		{name: "probe refuses by unprefixed name", method: "tools/call", params: `{"name":"a__x"}`,
			guards: func(k string) map[string]guard.Config {
				return map[string]guard.Config{probeGuard: yamlSection("probe: " + k + "\nnames: [x]")}
			},
			wantCode: jsonrpc.CodeDenied, wantGuard: probeGuard},
		{name: "probe refuses a fan-out list", method: "tools/list", params: `{}`,
			guards: func(k string) map[string]guard.Config {
				return map[string]guard.Config{probeGuard: yamlSection("probe: " + k + "\nmethods: [tools/list]")}
			},
			wantCode: jsonrpc.CodeDenied, wantGuard: probeGuard},
		{name: "probe panics: fail closed", method: "tools/call", params: `{"name":"b__y"}`,
			guards: func(k string) map[string]guard.Config {
				return map[string]guard.Config{probeGuard: yamlSection("probe: " + k + "\nnames: [y]\npanic: true")}
			},
			wantCode: jsonrpc.CodeGatewayError, wantGuard: probeGuard},
		{name: "probe fails with a plain error", method: "prompts/get", params: `{"name":"a__p"}`,
			guards: func(k string) map[string]guard.Config {
				return map[string]guard.Config{probeGuard: yamlSection("probe: " + k + "\nnames: [p]\nplain: true")}
			},
			wantCode: jsonrpc.CodeGatewayError},
		{name: "a held call with no approval guard is refused", method: "tools/call", params: `{"name":"a__x"}`,
			guards: func(k string) map[string]guard.Config {
				return map[string]guard.Config{probeGuard: yamlSection("probe: " + k + "\nnames: [x]\nhold: true")}
			},
			wantCode: jsonrpc.CodeApprovalRequired, wantGuard: "approval"},
		{name: "probe and limits: limits refuses first", method: "tools/call", params: big,
			guards: func(k string) map[string]guard.Config {
				return map[string]guard.Config{"limits": yamlSection("max_params_bytes: 64"), probeGuard: yamlSection("probe: " + k)}
			},
			wantCode: jsonrpc.CodeLimitExceeded, wantGuard: "limits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, _ := newProbe(t)
			a, b := serverA(), serverB()
			g, _ := newGateway(t, gateway.Options{Guards: tt.guards(key)}, a, b)
			s, _ := openSession(t, g, &fakeClient{})
			a.ClearReceived()
			b.ClearReceived()
			resp := s.Handle(context.Background(), request(tt.method, tt.params))
			if tt.passes {
				decode(t, resp)
				return
			}
			if got := errorCode(resp); got != tt.wantCode {
				t.Fatalf("code %d, want %d: %s", got, tt.wantCode, resp.Marshal())
			}
			var data map[string]any
			json.Unmarshal(resp.Error.Data, &data)
			if data["incident"] == nil || data["incident"] == "" {
				t.Errorf("refusal without an incident id: %s", resp.Marshal())
			}
			if tt.wantGuard != "" && data["guard"] != tt.wantGuard {
				t.Errorf("refused by %v, want %s", data["guard"], tt.wantGuard)
			}
			if tt.wantCode == jsonrpc.CodeGatewayError && strings.Contains(string(resp.Marshal()), "probe guard failed") {
				t.Errorf("internal error details leaked to the client: %s", resp.Marshal())
			}
			if ta, tb := a.Traffic(), b.Traffic(); len(ta)+len(tb) != 0 {
				t.Errorf("refused call reached the servers: a %v, b %v", methods(ta), methods(tb))
			}
		})
	}
}

// Guards see the routed call: the server and the unprefixed name, in the message too.
func TestGuardsSeeRoutedCalls(t *testing.T) {
	key, p := newProbe(t)
	a, b := serverA(), serverB()
	g, _ := newGateway(t, gateway.Options{Guards: map[string]guard.Config{probeGuard: yamlSection("probe: " + key)}}, a, b)
	if got, want := g.Guards(), []string{"limits", probeGuard}; !sameSet(got, want) || !inOrder(got) {
		t.Errorf("Guards() = %v, want %v in guard.Order", got, want)
	}
	s, _ := openSession(t, g, &fakeClient{})
	decode(t, s.Handle(context.Background(), request("tools/call", `{"name":"b__y"}`)))
	decode(t, s.Handle(context.Background(), request("tools/list", `{}`)))
	var calls []guard.Call
	for _, c := range p.seen() {
		if c.Msg.Method == "tools/call" || c.Msg.Method == "tools/list" {
			calls = append(calls, c)
		}
	}
	if len(calls) != 2 {
		t.Fatalf("probe saw %d calls", len(calls))
	}
	c := calls[0]
	if c.Server != "b" || c.Name != "y" || c.Direction != guard.Inbound || c.Era != "legacy" || c.Session != s.ID() {
		t.Errorf("guard saw server %q name %q direction %v era %q session %q", c.Server, c.Name, c.Direction, c.Era, c.Session)
	}
	if got, _ := jsonrpc.LookupString(c.Msg.Params, "name"); got != "y" {
		t.Errorf("guard saw the message with name %q, want the rewritten y", got)
	}
	if calls[1].Server != "" {
		t.Errorf("a fan-out list is routed to %q, want \"\"", calls[1].Server)
	}
}

// The outbound chain guards server-to-client messages: a refused sampling request never
// reaches the client, and the server gets the refusal.
func TestOutboundRefusal(t *testing.T) {
	key, p := newProbe(t)
	a := serverA()
	var answer *jsonrpc.Message
	a.Handle("tools/call", func(ctx context.Context, r *gt.Request) (any, error) {
		resp, err := r.T.SendRequest(ctx, "sampling/createMessage", map[string]any{"messages": []any{}, "maxTokens": 1})
		if err != nil {
			return nil, err
		}
		answer = resp
		r.T.SendNotification(ctx, "notifications/message", map[string]any{"level": "info", "data": "x"})
		return map[string]any{}, nil
	})
	c := &fakeClient{answer: func(ctx context.Context, m *jsonrpc.Message) (*jsonrpc.Message, error) {
		return jsonrpc.NewResult(m.ID, json.RawMessage(`{}`)), nil
	}}
	g, _ := newGateway(t, gateway.Options{Guards: map[string]guard.Config{
		probeGuard: yamlSection("probe: " + key + "\nmethods: [sampling/createMessage, notifications/message]")}}, a)
	s, _ := openSession(t, g, c)
	decode(t, s.Handle(context.Background(), request("tools/call", `{"name":"x"}`)))
	if answer == nil || answer.Error == nil || answer.Error.Code != jsonrpc.CodeDenied {
		t.Errorf("server got %v, want the refusal", answer)
	}
	if got := c.messages(""); len(got) != 0 {
		t.Errorf("refused messages reached the client: %v", methods(got))
	}
	var out []guard.Call
	for _, c := range p.seen() {
		if c.Direction == guard.Outbound {
			out = append(out, c)
		}
	}
	if len(out) != 2 || out[0].Server != "a" {
		t.Errorf("outbound calls seen: %d (server %q)", len(out), func() string {
			if len(out) > 0 {
				return out[0].Server
			}
			return ""
		}())
	}
}

func TestSetGuards(t *testing.T) {
	a := serverA()
	g, _ := newGateway(t, gateway.Options{}, a)
	s, _ := openSession(t, g, &fakeClient{})
	if err := g.SetGuards(map[string]guard.Config{"no-such-guard": yamlSection("")}); err == nil {
		t.Error("an unknown guard was accepted")
	}
	if err := g.SetGuards(map[string]guard.Config{"limits": yamlSection("max_params_bytes: -1")}); err == nil {
		t.Error("an invalid limits section was accepted")
	}
	// The old chain stays after a failed swap.
	decode(t, s.Handle(context.Background(), request("tools/call", `{"name":"x","arguments":{"a":"bcdefghijklmnop"}}`)))
	// A swap applies to sessions already open.
	if err := g.SetGuards(map[string]guard.Config{"limits": yamlSection("max_params_bytes: 10")}); err != nil {
		t.Fatal(err)
	}
	a.ClearReceived()
	if got := errorCode(s.Handle(context.Background(), request("tools/call", `{"name":"x","arguments":{"a":"bcdefghijklmnop"}}`))); got != jsonrpc.CodeLimitExceeded {
		t.Errorf("after the swap: code %d", got)
	}
	if len(a.Traffic()) != 0 {
		t.Errorf("server saw %v", methods(a.Traffic()))
	}
	if _, err := gateway.New(gateway.Options{Guards: map[string]guard.Config{"limits": yamlSection("unknown_field: 1")}}); err == nil {
		t.Error("New accepted an unknown field in a guard section")
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func inOrder(names []string) bool {
	last := -1
	for _, n := range names {
		i := slices.Index(guard.Order, n)
		if i <= last {
			return false
		}
		last = i
	}
	return true
}

// BenchmarkProxyCall measures one tools/call through a session with one in-memory server and
// the default chain (limits on).
func BenchmarkProxyCall(b *testing.B) {
	srv := &gt.Server{Name: "bench", Tools: []gt.Tool{{Name: "echo"}}, Inline: true, NoRecord: true}
	srv.Handle("tools/call", func(ctx context.Context, r *gt.Request) (any, error) {
		return json.RawMessage(`{"content":[{"type":"text","text":"ok"}]}`), nil
	})
	g, _ := newGateway(b, gateway.Options{}, srv)
	if got := g.Guards(); !slices.Contains(got, "limits") {
		b.Fatalf("default chain %v has no limits", got)
	}
	s, _ := openSession(b, g, &fakeClient{})
	m := request("tools/call", `{"name":"echo","arguments":{"text":"hello"}}`)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp := s.Handle(ctx, m)
		if resp.Error != nil {
			b.Fatal(resp.Error)
		}
	}
}

// Guards decide with the principal as the request's credentials say now: a session keeps
// its owner, but groups that changed since the session opened are the ones that count,
// and a request carrying another principal never borrows the session.
func TestGuardsSeeTheRequestsPrincipal(t *testing.T) {
	key, p := newProbe(t)
	a, b := serverA(), serverB()
	g, _ := newGateway(t, gateway.Options{Guards: map[string]guard.Config{probeGuard: yamlSection("probe: " + key)}}, a, b)
	s, _ := openSession(t, g, &fakeClient{}) // opened by identity.Anonymous
	now := identity.Principal{ID: identity.Anonymous.ID, Method: identity.Anonymous.Method, Groups: []string{"ops"}}
	decode(t, s.Handle(identity.With(context.Background(), now), request("tools/call", `{"name":"b__y"}`)))
	other := identity.Principal{ID: "mallory", Method: "apikey", Groups: []string{"admin"}}
	decode(t, s.Handle(identity.With(context.Background(), other), request("tools/call", `{"name":"b__y"}`)))
	var seen []identity.Principal
	for _, c := range p.seen() {
		if c.Msg.Method == "tools/call" {
			seen = append(seen, c.Principal)
		}
	}
	if len(seen) != 2 {
		t.Fatalf("probe saw %d calls", len(seen))
	}
	if len(seen[0].Groups) != 1 || seen[0].Groups[0] != "ops" {
		t.Errorf("first call: guard saw %+v, want the request's groups [ops]", seen[0])
	}
	if seen[1].ID != identity.Anonymous.ID || len(seen[1].Groups) != 0 {
		t.Errorf("second call: guard saw %+v, want the session's owner, not mallory", seen[1])
	}
}
