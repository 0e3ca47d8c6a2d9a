package gateway_test

import (
	"context"
	"slices"
	"testing"

	"github.com/portcullis-mcp/portcullis/internal/gateway"
	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/identity"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

// A view's sessions reach its server alone, under the server's own names, through the
// gateway's guard chain; the gateway's own sessions still see every server, prefixed.
func TestViewServesOneServer(t *testing.T) {
	key, p := newProbe(t)
	a, b := serverA(), serverB()
	g, _ := newGateway(t, gateway.Options{Guards: map[string]guard.Config{probeGuard: yamlSection("probe: " + key + "\nnames: [y]")}}, a, b)
	if _, err := g.Only("c"); err == nil {
		t.Fatal("Only of an unknown server succeeded")
	}
	vb, err := g.Only("b")
	if err != nil {
		t.Fatal(err)
	}
	s, err := vb.NewSession(identity.Anonymous, &fakeClient{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	init := decode(t, s.Handle(context.Background(), request("initialize", initParams)))
	if info, _ := init["serverInfo"].(map[string]any); info["name"] != "b" {
		t.Errorf("the view's serverInfo is %v, want server b's own", init["serverInfo"])
	}
	if a.Dials() != 0 {
		t.Errorf("a session of the view of b started server a (%d dials)", a.Dials())
	}
	for _, tt := range []struct {
		method, field, key string
		want               []string
	}{
		{"tools/list", "tools", "name", []string{"y"}}, {"prompts/list", "prompts", "name", []string{"q"}},
		{"resources/list", "resources", "uri", []string{"file:///b/1"}},
	} {
		got := names(t, s.Handle(context.Background(), request(tt.method, `{}`)), tt.field, tt.key)
		if want := tt.want; !slices.Equal(got, want) {
			t.Errorf("%s through the view = %v, want server b's unprefixed %v", tt.method, got, want)
		}
	}
	// Names are unprefixed; a name of another server is not reachable.
	b.ClearReceived()
	resp := s.Handle(context.Background(), request("prompts/get", `{"name":"q"}`))
	decode(t, resp)
	if got := b.Requests("prompts/get"); len(got) != 1 || lookupString(t, got[0].Params, "name") != "q" {
		t.Errorf("server b saw %v", got)
	}
	resp = s.Handle(context.Background(), request("tools/call", `{"name":"a__x"}`))
	if resp.Error == nil {
		t.Errorf("the view of b called a's tool: %s", resp.Marshal())
	}
	if len(a.Requests("tools/call")) != 0 {
		t.Error("a tool call through the view of b reached server a")
	}
	// The same guard chain: the probe refuses y by its local name, with server b.
	b.ClearReceived()
	resp = s.Handle(context.Background(), request("tools/call", `{"name":"y"}`))
	if resp.Error == nil || resp.Error.Code != jsonrpc.CodeDenied {
		t.Fatalf("the guard did not refuse y through the view: %s", resp.Marshal())
	}
	calls := p.seen()
	if len(calls) == 0 || calls[len(calls)-1].Server != "b" || calls[len(calls)-1].Name != "y" {
		t.Errorf("the guard saw %+v, want server b, name y", calls)
	}
	if len(b.Requests("tools/call")) != 0 {
		t.Error("a refused call reached server b")
	}
	// The whole gateway is unchanged: both servers, prefixed.
	all, _ := openSession(t, g, &fakeClient{})
	if got := names(t, all.Handle(context.Background(), request("tools/list", `{}`)), "tools", "name"); !slices.Equal(got, []string{"a__x", "b__y"}) {
		t.Errorf("the gateway's own session lists %v", got)
	}
}

// Sessionless (2026-07-28) requests through a view are pooled apart from the gateway's.
func TestViewModern(t *testing.T) {
	a, b := serverA(), serverB()
	g, _ := newGateway(t, gateway.Options{}, a, b)
	vb, _ := g.Only("b")
	meta := `"_meta":{"io.modelcontextprotocol/protocolVersion":"` + gateway.ModernVersions[0] + `","io.modelcontextprotocol/clientCapabilities":{}}`
	resp := vb.HandleModern(context.Background(), identity.Anonymous, &fakeClient{}, request("tools/list", `{`+meta+`}`))
	if got := names(t, resp, "tools", "name"); !slices.Equal(got, []string{"y"}) {
		t.Errorf("modern tools/list through the view of b = %v", got)
	}
	resp = g.HandleModern(context.Background(), identity.Anonymous, &fakeClient{}, request("tools/list", `{`+meta+`}`))
	if got := names(t, resp, "tools", "name"); !slices.Equal(got, []string{"a__x", "b__y"}) {
		t.Errorf("modern tools/list through the gateway = %v", got)
	}
}
