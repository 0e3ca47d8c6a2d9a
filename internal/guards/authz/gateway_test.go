package authz_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"testing"

	"github.com/portcullis-mcp/portcullis/internal/config"
	"github.com/portcullis-mcp/portcullis/internal/gateway"
	"github.com/portcullis-mcp/portcullis/internal/gateway/gatewaytest"
	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/identity"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

// These tests run the guard inside a real gateway, in front of in-memory servers, to check
// what the guard assumes of the router: the server and unprefixed name of each call, and
// the prefixes of merged listings.

const e2eConfig = `
auth: none
servers:
  - {name: fs, command: x}
  - {name: gh, command: y}
guards:
  authz:
    rules:
      - name: devs-read
        effect: allow
        servers: [fs]
        tools: ["read_*"]
        when: '"dev" in principal.groups && args.path.startsWith("/workspace/")'
      - name: devs-read-only-gh
        effect: allow
        servers: [gh]
        methods: [tools/call]
        when: '"dev" in principal.groups && annotations.readOnlyHint == true'
      - name: no-env
        effect: deny
        when: 'has(args.path) && args.path.endsWith(".env")'
`

type nopClient struct{}

func (nopClient) Notify(context.Context, *jsonrpc.Message) error { return nil }
func (nopClient) Request(context.Context, *jsonrpc.Message) (*jsonrpc.Message, error) {
	return nil, errors.New("no requests")
}

func fakeServers() (fs, gh *gatewaytest.Server) {
	fs = &gatewaytest.Server{Name: "fs", Tools: []gatewaytest.Tool{{Name: "read_file"}, {Name: "write_file"}}}
	gh = &gatewaytest.Server{Name: "gh", Tools: []gatewaytest.Tool{{Name: "get_issue"}, {Name: "delete_repo"}}, Handlers: map[string]gatewaytest.Handler{
		"tools/list": func(ctx context.Context, r *gatewaytest.Request) (any, error) {
			return json.RawMessage(`{"tools":[{"name":"get_issue","inputSchema":{"type":"object"},"annotations":{"readOnlyHint":true}},
				{"name":"delete_repo","inputSchema":{"type":"object"},"annotations":{"destructiveHint":true}}]}`), nil
		},
	}}
	return fs, gh
}

func startGateway(t *testing.T, src string, servers ...*gatewaytest.Server) *gateway.Gateway {
	t.Helper()
	cfg, err := config.Parse("gateway.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]guard.Config{}
	for n, s := range cfg.GuardSections() {
		sections[n] = s
	}
	var gs []gateway.Server
	for _, s := range servers {
		gs = append(gs, gateway.Server{Name: s.Name, Dial: s.Dial})
	}
	g, err := gateway.New(gateway.Options{Servers: gs, Guards: sections, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Shutdown(context.Background()) })
	return g
}

func session(t *testing.T, g *gateway.Gateway, p identity.Principal) *gateway.Session {
	t.Helper()
	s, err := g.NewSession(p, nopClient{})
	if err != nil {
		t.Fatal(err)
	}
	resp := s.Handle(context.Background(), jsonrpc.NewRequest(jsonrpc.IntID(1), "initialize", map[string]any{
		"protocolVersion": "2025-06-18", "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "t", "version": "1"}}))
	if resp.Error != nil {
		t.Fatalf("initialize: %s", resp.Marshal())
	}
	return s
}

func listNames(t *testing.T, s *gateway.Session) []string {
	t.Helper()
	resp := s.Handle(context.Background(), jsonrpc.NewRequest(jsonrpc.IntID(2), "tools/list", map[string]any{}))
	if resp.Error != nil {
		t.Fatalf("tools/list: %s", resp.Marshal())
	}
	return names(t, resp, "tools", "name")
}

func callTool(s *gateway.Session, name string, args any) *jsonrpc.Message {
	return s.Handle(context.Background(), jsonrpc.NewRequest(jsonrpc.IntID(3), "tools/call", map[string]any{"name": name, "arguments": args}))
}

func TestThroughGatewaySeveralServers(t *testing.T) {
	fs, gh := fakeServers()
	g := startGateway(t, e2eConfig, fs, gh)
	alice := session(t, g, identity.Principal{ID: "alice", Groups: []string{"dev"}, Method: "apikey"})
	bob := session(t, g, identity.Principal{ID: "bob", Method: "apikey"})

	if got, want := listNames(t, alice), []string{"fs__read_file", "gh__get_issue"}; !slices.Equal(got, want) {
		t.Errorf("alice sees %v, want %v", got, want)
	}
	if got := listNames(t, bob); len(got) != 0 {
		t.Errorf("bob sees %v", got)
	}

	if resp := callTool(alice, "fs__read_file", map[string]any{"path": "/workspace/a"}); resp.Error != nil {
		t.Errorf("allowed call refused: %s", resp.Marshal())
	}
	if got := fs.Requests("tools/call"); len(got) != 1 {
		t.Fatalf("the server got %d calls, want 1", len(got))
	}
	for _, c := range []struct {
		who  *gateway.Session
		name string
		args any
		rule string
	}{
		{alice, "fs__read_file", map[string]any{"path": "/workspace/.env"}, "no-env"},
		{alice, "fs__write_file", map[string]any{"path": "/workspace/a"}, "default"},
		{bob, "fs__read_file", map[string]any{"path": "/workspace/a"}, "default"},
		{alice, "gh__delete_repo", map[string]any{}, "default"},
	} {
		resp := callTool(c.who, c.name, c.args)
		if resp.Error == nil || resp.Error.Code != jsonrpc.CodeDenied {
			t.Errorf("%s: got %s, want a refusal", c.name, resp.Marshal())
			continue
		}
		var data map[string]any
		json.Unmarshal(resp.Error.Data, &data)
		if data["rule"] != c.rule || data["guard"] != "authz" {
			t.Errorf("%s: error data %s, want rule %q", c.name, resp.Error.Data, c.rule)
		}
	}
	if n := len(fs.Requests("tools/call")) + len(gh.Requests("tools/call")); n != 1 {
		t.Errorf("refused calls reached the servers: %d calls in all", n)
	}
	// The listing taught the guard that get_issue is read-only.
	if resp := callTool(alice, "gh__get_issue", map[string]any{"n": 1}); resp.Error != nil {
		t.Errorf("read-only tool refused: %s", resp.Marshal())
	}
}

func TestThroughGatewayOneServer(t *testing.T) {
	fs, _ := fakeServers()
	g := startGateway(t, e2eConfig, fs)
	alice := session(t, g, identity.Principal{ID: "alice", Groups: []string{"dev"}, Method: "apikey"})
	if got, want := listNames(t, alice), []string{"read_file"}; !slices.Equal(got, want) {
		t.Errorf("alice sees %v, want %v", got, want)
	}
	if resp := callTool(alice, "read_file", map[string]any{"path": "/workspace/a"}); resp.Error != nil {
		t.Errorf("allowed call refused: %s", resp.Marshal())
	}
	if resp := callTool(alice, "write_file", map[string]any{"path": "/workspace/a"}); resp.Error == nil {
		t.Errorf("write_file was allowed")
	}
	if got := fs.Requests("tools/call"); len(got) != 1 {
		t.Errorf("the server got %d calls, want 1", len(got))
	}
}

func TestReloadKeepsOldPolicyOnError(t *testing.T) {
	fs, _ := fakeServers()
	g := startGateway(t, e2eConfig, fs)
	bad, err := config.Parse("gateway.yaml", []byte(e2eConfig+"      - {name: broken, effect: allow, when: 'args.'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]guard.Config{}
	for n, s := range bad.GuardSections() {
		sections[n] = s
	}
	if err := g.SetGuards(sections); err == nil {
		t.Fatal("a broken policy was loaded")
	}
	alice := session(t, g, identity.Principal{ID: "alice", Groups: []string{"dev"}, Method: "apikey"})
	if resp := callTool(alice, "write_file", map[string]any{"path": "/workspace/a"}); resp.Error == nil || resp.Error.Code != jsonrpc.CodeDenied {
		t.Errorf("after a failed reload, the old policy is gone: %s", resp.Marshal())
	}

	open, err := config.Parse("gateway.yaml", []byte(e2eConfig+"      - {name: writes-too, effect: allow, tools: [write_file]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	sections = map[string]guard.Config{}
	for n, s := range open.GuardSections() {
		sections[n] = s
	}
	if err := g.SetGuards(sections); err != nil {
		t.Fatal(err)
	}
	if resp := callTool(alice, "write_file", map[string]any{"path": "/workspace/a"}); resp.Error != nil {
		t.Errorf("after a reload, the new policy is not used: %s", resp.Marshal())
	}
}
