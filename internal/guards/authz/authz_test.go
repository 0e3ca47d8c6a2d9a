package authz_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/portcullis-mcp/portcullis/internal/config"
	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/guards/authz"
	"github.com/portcullis-mcp/portcullis/internal/identity"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

const gatewayConfig = `
auth: none
servers:
  - {name: filesystem, command: fs-server}
  - {name: github, command: gh-server}
guards:
  authz:
    default: deny
    rules:
      - name: admins
        effect: allow
        when: '"admin" in principal.groups'
      - name: fs-read
        effect: allow
        servers: [filesystem]
        tools: ["read_*"]
        when: '"dev" in principal.groups && args.path.startsWith("/workspace/")'
      - name: fs-no-env
        effect: deny
        servers: [filesystem]
        when: 'has(args.path) && args.path.endsWith(".env")'
        message: .env files hold secrets
      - name: github-read-only
        effect: allow
        servers: [github]
        methods: [tools/call]
        when: '"dev" in principal.groups && annotations.readOnlyHint == true'
      - name: github-destructive
        effect: approve
        servers: [github]
        methods: [tools/call]
        when: '"dev" in principal.groups && annotations.destructiveHint == true'
      - name: prompts-for-devs
        effect: allow
        methods: [prompts/get]
        when: '"dev" in principal.groups'
      - name: docs-resources
        effect: allow
        methods: [resources/read]
        tools: ["file:///docs/*"]
`

var (
	alice = identity.Principal{ID: "alice", Groups: []string{"dev"}, Method: "apikey"}
	bob   = identity.Principal{ID: "bob", Groups: []string{"sales"}, Method: "apikey"}
	root  = identity.Principal{ID: "root", Groups: []string{"admin"}, Method: "apikey"}
)

// upstream is a fake next handler: it answers listings from fixed replies and records the
// calls that reach it.
type upstream struct {
	lists   map[string]string // method -> result JSON
	reached atomic.Int32
	last    atomic.Pointer[guard.Call]
}

func (u *upstream) Handle(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
	u.reached.Add(1)
	u.last.Store(c)
	if res, ok := u.lists[c.Msg.Method]; ok {
		return jsonrpc.NewResult(c.Msg.ID, json.RawMessage(res)), nil
	}
	if c.Msg.IsNotification() {
		return nil, nil
	}
	return jsonrpc.NewResult(c.Msg.ID, map[string]any{"ok": true}), nil
}

func newGuard(t testing.TB, up guard.Handler) guard.Handler {
	t.Helper()
	cfg, err := config.Parse("gateway.yaml", []byte(gatewayConfig))
	if err != nil {
		t.Fatal(err)
	}
	p, err := authz.Load(cfg.GuardSections()["authz"])
	if err != nil {
		t.Fatal(err)
	}
	return authz.New(p, authz.Options{})(up)
}

func toolCall(p identity.Principal, server, tool string, args any) *guard.Call {
	params := map[string]any{"name": tool}
	if args != nil {
		params["arguments"] = args
	}
	return &guard.Call{Msg: jsonrpc.NewRequest(jsonrpc.IntID(7), "tools/call", params), Direction: guard.Inbound,
		Principal: p, Server: server, Name: tool}
}

func refusal(t *testing.T, err error, code int, rule string) *guard.Refusal {
	t.Helper()
	var r *guard.Refusal
	if !errors.As(err, &r) {
		t.Fatalf("error %v is not a refusal", err)
	}
	if r.Guard != "authz" || r.Code != code || r.Data["rule"] != rule {
		t.Fatalf("refusal %+v: want guard authz, code %d, rule %q", r, code, rule)
	}
	return r
}

// held checks that the last call passed on carries one hold by authz whose reason
// contains reason (the approval guard, next in the chain, settles it).
func held(t *testing.T, up *upstream, reason string) {
	t.Helper()
	c := up.last.Load()
	if c == nil || len(c.Holds) != 1 || c.Holds[0].Guard != "authz" || !strings.Contains(c.Holds[0].Reason, reason) {
		t.Fatalf("want the call passed on with a hold by authz (%q); got %+v", reason, c)
	}
	up.last.Store(nil)
}

func TestCalls(t *testing.T) {
	tests := []struct {
		name string
		call *guard.Call
		code int    // 0: allowed
		rule string // the deciding rule in the refusal
		msg  string // in the refusal message
	}{
		{"dev reads workspace", toolCall(alice, "filesystem", "read_file", map[string]any{"path": "/workspace/a"}), 0, "", ""},
		{"dev reads outside", toolCall(alice, "filesystem", "read_file", map[string]any{"path": "/etc/passwd"}), jsonrpc.CodeDenied, "default",
			`tools/call of "read_file" on server "filesystem" is not allowed for "alice": no rule allows it (default deny)`},
		{"deny wins over admin", toolCall(root, "filesystem", "read_file", map[string]any{"path": "/workspace/.env"}), jsonrpc.CodeDenied, "fs-no-env",
			`denied for "root" by rule "fs-no-env": .env files hold secrets`},
		{"admin", toolCall(root, "filesystem", "delete_file", map[string]any{"path": "/workspace/a"}), 0, "", ""},
		{"no arguments", toolCall(alice, "filesystem", "read_file", nil), jsonrpc.CodeDenied, "default", "default deny"},
		{"sales", toolCall(bob, "filesystem", "read_file", map[string]any{"path": "/workspace/a"}), jsonrpc.CodeDenied, "default", ""},
		{"unlisted github tool counts as destructive", toolCall(alice, "github", "merge_pr", map[string]any{}), jsonrpc.CodeApprovalRequired, "github-destructive",
			`rule "github-destructive"`},
		{"arguments not an object", toolCall(alice, "filesystem", "read_file", []string{"/workspace/a"}), jsonrpc.CodeInvalidParams, "", "arguments must be an object"},
		{"prompt for dev", &guard.Call{Msg: jsonrpc.NewRequest(jsonrpc.IntID(1), "prompts/get", map[string]any{"name": "review"}), Principal: alice, Server: "github", Name: "review"}, 0, "", ""},
		{"prompt for sales", &guard.Call{Msg: jsonrpc.NewRequest(jsonrpc.IntID(1), "prompts/get", map[string]any{"name": "review"}), Principal: bob, Server: "github", Name: "review"}, jsonrpc.CodeDenied, "default", `prompts/get of "review"`},
		{"doc resource", &guard.Call{Msg: jsonrpc.NewRequest(jsonrpc.IntID(1), "resources/read", map[string]any{"uri": "file:///docs/a/b.md"}), Principal: bob, Server: "filesystem", Name: "file:///docs/a/b.md"}, 0, "", ""},
		{"other resource", &guard.Call{Msg: jsonrpc.NewRequest(jsonrpc.IntID(1), "resources/read", map[string]any{"uri": "file:///etc/hosts"}), Principal: bob, Server: "filesystem", Name: "file:///etc/hosts"}, jsonrpc.CodeDenied, "default", ""},
		{"other methods are decided", &guard.Call{Msg: jsonrpc.NewRequest(jsonrpc.IntID(1), "logging/setLevel", map[string]any{"level": "debug"}), Principal: bob, Server: "filesystem"}, jsonrpc.CodeDenied, "default", ""},
		{"ping passes", &guard.Call{Msg: jsonrpc.NewRequest(jsonrpc.IntID(1), "ping", nil), Principal: bob}, 0, "", ""},
		{"notifications pass", &guard.Call{Msg: jsonrpc.NewNotification("notifications/roots/list_changed", nil), Principal: bob}, 0, "", ""},
		{"outbound passes", &guard.Call{Msg: jsonrpc.NewRequest(jsonrpc.IntID(1), "sampling/createMessage", map[string]any{}), Direction: guard.Outbound, Principal: bob, Server: "github"}, 0, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := &upstream{}
			h := newGuard(t, up)
			resp, err := h.Handle(context.Background(), tt.call)
			if tt.code == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if up.reached.Load() != 1 {
					t.Fatalf("the call reached the server %d times, want once", up.reached.Load())
				}
				if tt.call.Msg.IsRequest() && resp == nil {
					t.Fatal("no response")
				}
				return
			}
			if tt.code == jsonrpc.CodeApprovalRequired {
				if err != nil {
					t.Fatalf("a call to approve was refused by authz: %v", err)
				}
				held(t, up, tt.msg)
				return
			}
			if up.reached.Load() != 0 {
				t.Fatalf("a refused call reached the server")
			}
			if tt.code == jsonrpc.CodeInvalidParams {
				var r *guard.Refusal
				if !errors.As(err, &r) || r.Code != tt.code || !strings.Contains(r.Message, tt.msg) {
					t.Fatalf("got %v", err)
				}
				return
			}
			r := refusal(t, err, tt.code, tt.rule)
			if !strings.Contains(r.Message, tt.msg) {
				t.Errorf("message %q does not contain %q", r.Message, tt.msg)
			}
			je, _ := guard.ErrorFor(err)
			var data map[string]any
			json.Unmarshal(je.Data, &data)
			if data["rule"] != tt.rule || data["guard"] != "authz" || data["incident"] == "" {
				t.Errorf("error data %s", je.Data)
			}
		})
	}
}

const githubTools = `{"tools":[
  {"name":"get_issue","description":"read an issue","annotations":{"readOnlyHint":true,"destructiveHint":false}},
  {"name":"create_issue","annotations":{"readOnlyHint":false,"destructiveHint":false}},
  {"name":"delete_repo","annotations":{"destructiveHint":true}},
  {"name":"merge_pr"}
],"nextCursor":"page2"}`

func listCall(p identity.Principal, server, method string) *guard.Call {
	return &guard.Call{Msg: jsonrpc.NewRequest(jsonrpc.IntID(3), method, map[string]any{}), Direction: guard.Inbound, Principal: p, Server: server}
}

func names(t *testing.T, resp *jsonrpc.Message, field, key string) []string {
	t.Helper()
	var res map[string]json.RawMessage
	if err := json.Unmarshal(resp.Result, &res); err != nil {
		t.Fatal(err)
	}
	var items []map[string]any
	if err := json.Unmarshal(res[field], &items); err != nil {
		t.Fatalf("%s: %v", resp.Result, err)
	}
	var out []string
	for _, it := range items {
		out = append(out, it[key].(string))
	}
	return out
}

func TestToolsListFilteredPerPrincipal(t *testing.T) {
	up := &upstream{lists: map[string]string{"tools/list": githubTools}}
	h := newGuard(t, up)
	for _, tt := range []struct {
		p    identity.Principal
		want []string
	}{
		// alice (dev): read-only tools allowed, destructive ones approvable; create_issue is
		// neither.
		{alice, []string{"get_issue", "delete_repo", "merge_pr"}},
		{bob, nil},
		{root, []string{"get_issue", "create_issue", "delete_repo", "merge_pr"}},
	} {
		resp, err := h.Handle(context.Background(), listCall(tt.p, "github", "tools/list"))
		if err != nil {
			t.Fatal(err)
		}
		if got := names(t, resp, "tools", "name"); !slices.Equal(got, tt.want) {
			t.Errorf("%s sees %v, want %v", tt.p.ID, got, tt.want)
		}
		if c, _ := jsonrpc.LookupString(resp.Result, "nextCursor"); c != "page2" {
			t.Errorf("%s: nextCursor lost: %s", tt.p.ID, resp.Result)
		}
	}
	// Unfiltered replies are passed byte for byte.
	resp, _ := h.Handle(context.Background(), listCall(root, "github", "tools/list"))
	if string(resp.Result) != githubTools {
		t.Errorf("admin's listing was rewritten: %s", resp.Result)
	}
}

func TestAnnotationsRecordedAndUsed(t *testing.T) {
	up := &upstream{lists: map[string]string{"tools/list": githubTools}}
	h := newGuard(t, up)
	// Before any listing, get_issue counts as destructive: approval.
	if _, err := h.Handle(context.Background(), toolCall(alice, "github", "get_issue", map[string]any{"n": 1})); err != nil {
		t.Fatal(err)
	}
	held(t, up, `rule "github-destructive"`)
	if _, err := h.Handle(context.Background(), listCall(bob, "github", "tools/list")); err != nil {
		t.Fatal(err)
	}
	// The listing (even one bob saw nothing of) taught the guard get_issue is read-only.
	if _, err := h.Handle(context.Background(), toolCall(alice, "github", "get_issue", map[string]any{"n": 1})); err != nil {
		t.Fatalf("read-only tool refused after listing: %v", err)
	}
	if c := up.last.Load(); c == nil || len(c.Holds) != 0 {
		t.Fatalf("read-only tool after listing: %+v, want passed without a hold", c)
	}
	if _, err := h.Handle(context.Background(), toolCall(alice, "github", "delete_repo", map[string]any{})); err != nil {
		t.Fatal(err)
	}
	held(t, up, `rule "github-destructive"`)
	// create_issue is neither read-only nor destructive: no rule allows it.
	_, err := h.Handle(context.Background(), toolCall(alice, "github", "create_issue", map[string]any{}))
	refusal(t, err, jsonrpc.CodeDenied, "default")
}

func TestMultiServerListing(t *testing.T) {
	// With several servers, names are prefixed and the call has no server.
	up := &upstream{lists: map[string]string{
		"tools/list": `{"tools":[{"name":"filesystem__read_file"},{"name":"filesystem__write_file"},
			{"name":"github__get_issue","annotations":{"readOnlyHint":true}},{"name":"github__delete_repo"},{"name":"noprefix"}]}`,
		"resources/list":           `{"resources":[{"uri":"file:///docs/a.md","name":"a"},{"uri":"file:///etc/hosts","name":"h"},{"name":"no uri"}]}`,
		"resources/templates/list": `{"resourceTemplates":[{"uriTemplate":"file:///docs/{name}"},{"uriTemplate":"file:///{path}"}]}`,
		"prompts/list":             `{"prompts":[{"name":"github__review"},{"name":"filesystem__summarize"}]}`,
	}}
	h := newGuard(t, up)
	ctx := context.Background()
	resp, err := h.Handle(ctx, listCall(alice, "", "tools/list"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(t, resp, "tools", "name"), []string{"filesystem__read_file", "github__get_issue", "github__delete_repo"}; !slices.Equal(got, want) {
		t.Errorf("tools: %v, want %v", got, want)
	}
	if _, err := h.Handle(ctx, toolCall(alice, "github", "get_issue", map[string]any{})); err != nil {
		t.Errorf("annotations of a prefixed listing were not recorded: %v", err)
	}
	resp, _ = h.Handle(ctx, listCall(bob, "", "resources/list"))
	if got, want := names(t, resp, "resources", "uri"), []string{"file:///docs/a.md"}; !slices.Equal(got, want) {
		t.Errorf("resources: %v, want %v", got, want)
	}
	resp, _ = h.Handle(ctx, listCall(bob, "", "resources/templates/list"))
	if got, want := names(t, resp, "resourceTemplates", "uriTemplate"), []string{"file:///docs/{name}"}; !slices.Equal(got, want) {
		t.Errorf("templates: %v, want %v", got, want)
	}
	resp, _ = h.Handle(ctx, listCall(bob, "", "prompts/list"))
	if got := names(t, resp, "prompts", "name"); len(got) != 0 {
		t.Errorf("bob sees prompts %v", got)
	}
	resp, _ = h.Handle(ctx, listCall(alice, "", "prompts/list"))
	if got := names(t, resp, "prompts", "name"); len(got) != 2 {
		t.Errorf("alice sees prompts %v", got)
	}
}

func TestListingErrorsPass(t *testing.T) {
	h := newGuard(t, guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
		return jsonrpc.NewError(c.Msg.ID, jsonrpc.Errorf(jsonrpc.CodeMethodNotFound, "no tools")), nil
	}))
	resp, err := h.Handle(context.Background(), listCall(bob, "github", "tools/list"))
	if err != nil || resp.Error == nil || resp.Error.Code != jsonrpc.CodeMethodNotFound {
		t.Errorf("got %v, %v", resp, err)
	}
	h = newGuard(t, &upstream{lists: map[string]string{"tools/list": `{"tools":"oops"}`}})
	resp, err = h.Handle(context.Background(), listCall(root, "github", "tools/list"))
	if err != nil || string(resp.Result) != `{"tools":[]}` {
		t.Errorf("a malformed listing: got %s, %v", resp.Result, err)
	}
}

func TestSetupLocatesErrors(t *testing.T) {
	src := strings.Replace(gatewayConfig, `when: '"dev" in principal.groups && annotations.readOnlyHint == true'`,
		`when: '"dev" in principal.grups'`, 1)
	cfg, err := config.Parse("gateway.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]guard.Config{}
	for n, s := range cfg.GuardSections() {
		sections[n] = s
	}
	_, _, err = guard.Build(guard.HandlerFunc(func(context.Context, *guard.Call) (*jsonrpc.Message, error) { return nil, nil }), sections, guard.Env{})
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not located", err)
	}
	if ce.File != "gateway.yaml" || ce.Line != 27 || ce.Field != "guards.authz.rules[3].when" || !strings.Contains(ce.Msg, `principal has no field "grups"`) {
		t.Errorf("got %v (%+v)", ce, ce)
	}

	src = strings.Replace(gatewayConfig, "effect: approve", "effect: approve\n        efect: deny", 1)
	cfg, err = config.Parse("gateway.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	_, err = authz.Load(cfg.GuardSections()["authz"])
	if err == nil || !strings.Contains(err.Error(), `gateway.yaml:30`) || !strings.Contains(err.Error(), `unknown field "efect" in rule`) {
		t.Errorf("unknown field: got %v", err)
	}

	cfg, err = config.Parse("gateway.yaml", []byte("auth: none\nservers: [{name: a, command: x}]\nguards:\n  authz:\n    rules: []\n    defualt: allow\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = authz.Load(cfg.GuardSections()["authz"])
	if err == nil || !strings.Contains(err.Error(), "gateway.yaml:6:5: guards.authz.defualt: unknown field") {
		t.Errorf("unknown section field: got %v", err)
	}
}

func TestRegistered(t *testing.T) {
	if !guard.Known("authz") {
		t.Fatal("authz is not registered")
	}
	// Without a section, the guard is off: a policy is never implied.
	h, names, err := guard.Build(guard.HandlerFunc(func(context.Context, *guard.Call) (*jsonrpc.Message, error) { return nil, nil }), nil, guard.Env{})
	if err != nil || h == nil || slices.Contains(names, "authz") {
		t.Errorf("got %v, %v", names, err)
	}
}

func TestAnnotationsStore(t *testing.T) {
	a := authz.NewAnnotations()
	if ann, known := a.Get("s", "t"); known || ann["destructiveHint"] != true || ann["openWorldHint"] != true {
		t.Errorf("unknown tool: %v, %v", ann, known)
	}
	a.Record("s", "t", []byte(`{"readOnlyHint":true,"title":"T"}`))
	ann, known := a.Get("s", "t")
	if !known || ann["readOnlyHint"] != true || ann["destructiveHint"] != false || ann["openWorldHint"] != true || ann["title"] != "T" {
		t.Errorf("recorded: %v, %v", ann, known)
	}
	a.Record("s", "t", nil)
	if ann, _ := a.Get("s", "t"); ann["readOnlyHint"] != false {
		t.Errorf("a tool that lost its annotations keeps them: %v", ann)
	}
	if ann, _ := a.Get("s2", "t"); ann["readOnlyHint"] != false {
		t.Errorf("annotations leak across servers: %v", ann)
	}
}

func BenchmarkToolsCall(b *testing.B) {
	h := newGuard(b, &upstream{})
	c := toolCall(alice, "filesystem", "read_file", map[string]any{"path": "/workspace/src/main.go"})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Handle(context.Background(), c); err != nil {
			b.Fatal(err)
		}
	}
}
