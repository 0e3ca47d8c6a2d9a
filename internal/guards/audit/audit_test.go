package audit_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	trail "github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/audit/audittest"
	"github.com/portcullis-mcp/portcullis/internal/config"
	"github.com/portcullis-mcp/portcullis/internal/gateway"
	"github.com/portcullis-mcp/portcullis/internal/gateway/gatewaytest"
	"github.com/portcullis-mcp/portcullis/internal/guard"
	auditguard "github.com/portcullis-mcp/portcullis/internal/guards/audit"
	_ "github.com/portcullis-mcp/portcullis/internal/guards/limits"
	"github.com/portcullis-mcp/portcullis/internal/identity"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

type fixture struct {
	sink    *audittest.Sink
	broker  *trail.Broker
	reached int
	// inner is what the guards after audit (and the server) do.
	inner func(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error)
	h     guard.Handler
}

func newFixture(t *testing.T, o auditguard.Options) *fixture {
	t.Helper()
	f := &fixture{sink: audittest.New("mem")}
	b, err := trail.NewBroker([]trail.Sink{f.sink}, trail.Options{Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	f.broker = b
	f.sink.Reset()
	f.inner = func(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
		return jsonrpc.NewResult(c.Msg.ID, json.RawMessage(`{"content":[{"type":"text","text":"hi"}]}`)), nil
	}
	terminal := guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
		f.reached++
		// The request is recorded before anything after the audit guard runs.
		if ev := f.sink.Events(); c.Msg.IsRequest() && (len(ev) == 0 || ev[len(ev)-1].Kind != trail.KindRequest) {
			t.Errorf("the call went on before its request was recorded")
		}
		return f.inner(ctx, c)
	})
	f.h = auditguard.New(b, o)(terminal)
	return f
}

func call(args string) *guard.Call {
	return &guard.Call{Msg: jsonrpc.NewRequest(jsonrpc.ID(`"r-1"`), "tools/call", json.RawMessage(`{"name":"echo","arguments":`+args+`}`)),
		Direction: guard.Inbound, Session: "s1", Principal: identity.Principal{ID: "alice", Method: "apikey"}, Server: "srv", Name: "echo", Era: "legacy"}
}

func TestAllowed(t *testing.T) {
	f := newFixture(t, auditguard.Options{})
	resp, err := f.h.Handle(context.Background(), call(`{"secret":"x"}`))
	if err != nil || resp == nil {
		t.Fatalf("Handle = %v, %v", resp, err)
	}
	ev := f.sink.Events()
	if len(ev) != 2 {
		t.Fatalf("%d events, want 2", len(ev))
	}
	req, out := ev[0], ev[1]
	if req.Code != trail.CodeRequest || req.Principal != "alice" || req.Server != "srv" || req.Tool != "echo" || req.RequestID != "r-1" || req.Session != "s1" {
		t.Errorf("request event %+v", req)
	}
	if out.Code != trail.CodeAllowed || out.Decision != trail.Allowed || out.Call != req.ID || out.Prev != req.Hash {
		t.Errorf("response event %+v", out)
	}
	if !strings.HasPrefix(req.ArgumentsHMAC, "hmac-sha256:") || !strings.HasPrefix(out.ResultHMAC, "hmac-sha256:") || out.Arguments != nil || out.Result != nil {
		t.Errorf("default policy is hashed: %+v", out)
	}
}

func TestDenied(t *testing.T) {
	f := newFixture(t, auditguard.Options{})
	refusal := guard.Deny("limits", jsonrpc.CodeLimitExceeded, "too big")
	f.inner = func(context.Context, *guard.Call) (*jsonrpc.Message, error) { return nil, refusal }
	_, err := f.h.Handle(context.Background(), call(`{}`))
	je, incident := guard.ErrorFor(err)
	if je.Code != jsonrpc.CodeLimitExceeded || incident != refusal.Incident {
		t.Errorf("client gets %v %s", je, incident)
	}
	out := f.sink.Events()[1]
	if out.Decision != trail.Denied || out.Guard != "limits" || out.Code != trail.CodeDeniedLimits || out.Incident != refusal.Incident || out.ErrorCode != jsonrpc.CodeLimitExceeded {
		t.Errorf("response event %+v", out)
	}
}

func TestInternalErrorIncident(t *testing.T) {
	f := newFixture(t, auditguard.Options{})
	f.inner = func(context.Context, *guard.Call) (*jsonrpc.Message, error) {
		return nil, errors.New("db password wrong")
	}
	_, err := f.h.Handle(context.Background(), call(`{}`))
	je, incident := guard.ErrorFor(err)
	out := f.sink.Events()[1]
	if incident == "" || out.Incident != incident || out.Decision != trail.Failed || je.Code != jsonrpc.CodeGatewayError {
		t.Errorf("client %v %q, event %+v", je, incident, out)
	}
	if !strings.Contains(err.Error(), "db password wrong") || strings.Contains(string(jsonrpc.NewError(nil, je).Marshal()), "password") {
		t.Errorf("the log or the client is wrong: %v / %s", err, jsonrpc.NewError(nil, je).Marshal())
	}
}

func TestFailClosed(t *testing.T) {
	tests := []struct {
		name        string
		failAt      int // fail from the n-th write on (1: the request)
		wantReached int
	}{
		{"request not recorded", 1, 0},
		{"response not recorded", 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, auditguard.Options{})
			if tt.failAt == 1 {
				f.sink.Fail(true)
			} else {
				inner := f.inner
				f.inner = func(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
					f.sink.Fail(true)
					return inner(ctx, c)
				}
			}
			resp, err := f.h.Handle(context.Background(), call(`{}`))
			if resp != nil {
				t.Errorf("a response was released: %s", resp.Marshal())
			}
			je, incident := guard.ErrorFor(err)
			if je.Code != jsonrpc.CodeAuditUnavailable || incident == "" || !errors.Is(err, trail.ErrAuditUnavailable) {
				t.Errorf("err = %v (client %v)", err, je)
			}
			if f.reached != tt.wantReached {
				t.Errorf("the server was reached %d times, want %d", f.reached, tt.wantReached)
			}
		})
	}
}

func TestPolicies(t *testing.T) {
	f := newFixture(t, auditguard.Options{Arguments: auditguard.Full, Results: auditguard.Full})
	f.inner = func(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
		trail.Report(ctx, trail.Finding{Detector: "secrets", Severity: "high", Pointer: "/token", In: "arguments"},
			trail.Finding{Detector: "secrets", Severity: "high", Pointer: "/content/0/text", In: "result"})
		return jsonrpc.NewResult(c.Msg.ID, json.RawMessage(`{"content":[{"type":"text","text":"AKIA..."}]}`)), nil
	}
	f.h.Handle(context.Background(), call(`{"token":"ghp_secret","path":"/tmp"}`))
	ev := f.sink.Events()
	if ev[0].ArgumentsHMAC == "" || ev[0].Arguments != nil {
		t.Errorf("the request event holds arguments in clear: %+v", ev[0])
	}
	out := ev[1]
	if string(out.Arguments) != `{"path":"/tmp","token":"[redacted]"}` || string(out.Result) != `{"content":[{"text":"[redacted]","type":"text"}]}` {
		t.Errorf("full with findings: %s / %s", out.Arguments, out.Result)
	}
	if len(out.Findings) != 2 {
		t.Errorf("findings %v", out.Findings)
	}
	f2 := newFixture(t, auditguard.Options{Arguments: auditguard.Omit, Results: auditguard.Omit})
	f2.h.Handle(context.Background(), call(`{"a":1}`))
	for _, e := range f2.sink.Events() {
		if e.ArgumentsHMAC != "" || e.Arguments != nil || e.Result != nil || e.ResultHMAC != "" {
			t.Errorf("omit: %+v", e)
		}
	}
}

func TestOutboundAndNotifications(t *testing.T) {
	f := newFixture(t, auditguard.Options{})
	c := &guard.Call{Msg: jsonrpc.NewRequest(jsonrpc.IntID(7), "sampling/createMessage", map[string]any{"messages": []any{}}), Direction: guard.Outbound, Server: "srv"}
	f.h.Handle(context.Background(), c)
	f.h.Handle(context.Background(), &guard.Call{Msg: jsonrpc.NewNotification("notifications/progress", map[string]any{}), Direction: guard.Outbound})
	ev := f.sink.Events()
	if len(ev) != 2 || ev[0].Code != trail.CodeServerRequest || ev[1].Code != trail.CodeServerAllowed || ev[0].Direction != "outbound" {
		t.Errorf("events %+v", ev)
	}
}

// Through a real gateway, configured from YAML.

type nopClient struct{}

func (nopClient) Notify(context.Context, *jsonrpc.Message) error { return nil }
func (nopClient) Request(context.Context, *jsonrpc.Message) (*jsonrpc.Message, error) {
	return nil, errors.New("no requests")
}

func sections(t *testing.T, src string) map[string]guard.Config {
	cfg, err := config.Parse("gateway.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]guard.Config{}
	for n, s := range cfg.GuardSections() {
		out[n] = s
	}
	return out
}

func TestThroughGateway(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	src := "auth: none\nservers:\n  - {name: fs, command: x}\nguards:\n  audit:\n    file: " + path + "\n  limits:\n    max_params_bytes: 60\n"
	srv := &gatewaytest.Server{Name: "fs", Tools: []gatewaytest.Tool{{Name: "read_file"}}}
	g, err := gateway.New(gateway.Options{Servers: []gateway.Server{{Name: "fs", Dial: srv.Dial}}, Guards: sections(t, src), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Shutdown(context.Background()); auditguard.Close() })
	if got := g.Guards(); len(got) < 2 || got[0] != "audit" {
		t.Fatalf("guards %v", got)
	}
	s, err := g.NewSession(identity.Principal{ID: "alice", Method: "apikey"}, nopClient{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s.Handle(ctx, jsonrpc.NewRequest(jsonrpc.IntID(1), "initialize", map[string]any{
		"protocolVersion": "2025-06-18", "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "t", "version": "1"}}))
	if resp := s.Handle(ctx, jsonrpc.NewRequest(jsonrpc.IntID(2), "tools/call", map[string]any{"name": "read_file", "arguments": map[string]any{}})); resp.Error != nil {
		t.Fatalf("call: %s", resp.Marshal())
	}
	resp := s.Handle(ctx, jsonrpc.NewRequest(jsonrpc.IntID(3), "tools/call", map[string]any{"name": "read_file", "arguments": map[string]any{"path": strings.Repeat("x", 100)}}))
	if resp.Error == nil || resp.Error.Code != jsonrpc.CodeLimitExceeded {
		t.Fatalf("big call: %s", resp.Marshal())
	}
	// A reload with the same file continues the same trail.
	if err := g.SetGuards(sections(t, src)); err != nil {
		t.Fatal(err)
	}
	s.Handle(ctx, jsonrpc.NewRequest(jsonrpc.IntID(4), "tools/call", map[string]any{"name": "read_file", "arguments": map[string]any{}}))
	files, _ := trail.Files(path)
	v, p, err := trail.VerifyFiles(files)
	if err != nil || p != nil {
		t.Fatalf("verify: %v %v", err, p)
	}
	data, _ := os.ReadFile(path)
	var denied, allowed int
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		e, _ := trail.ParseLine([]byte(line))
		if e.Method == "tools/call" && e.Kind == trail.KindResponse {
			switch e.Decision {
			case trail.Denied:
				denied++
				if e.Guard != "limits" || e.Code != trail.CodeDeniedLimits {
					t.Errorf("denied event %+v", e)
				}
			case trail.Allowed:
				allowed++
			}
		}
	}
	if denied != 1 || allowed != 2 {
		t.Errorf("%d denied and %d allowed tools/call events, want 1 and 2 (%d events)\n%s", denied, allowed, v.Count(), data)
	}
	if n := len(srv.Requests("tools/call")); n != 2 {
		t.Errorf("the server got %d calls, want 2", n)
	}
}

func TestSetupErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, yaml, want string
	}{
		{"no sink", "arguments: full", "no sink"},
		{"bad policy", "file: " + dir + "/a.jsonl\narguments: some", "arguments"},
		{"unknown nested", "file: " + dir + "/a.jsonl\nsyslog: {address: 'h:1', colour: red}", "colour"},
		{"webhook without secret", "file: " + dir + "/a.jsonl\nwebhook: {url: 'http://127.0.0.1:1/x'}", "secret"},
		{"no sink works", "file: /dev/full", "no sink works"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "auth: none\nservers:\n  - {name: fs, command: x}\nguards:\n  audit:\n" + indent(tt.yaml)
			_, _, err := guard.Build(guard.HandlerFunc(func(context.Context, *guard.Call) (*jsonrpc.Message, error) { return nil, nil }), sections(t, src), guard.Env{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Build = %v, want an error about %q", err, tt.want)
			}
		})
	}
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		b.WriteString("    " + l + "\n")
	}
	return b.String()
}

// Decisions guards report (an approval: who approved, how) are recorded between the
// request and the response, tied to the request, in the hash chain.
func TestDecisionEvents(t *testing.T) {
	f := newFixture(t, auditguard.Options{})
	f.inner = func(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
		trail.Decide(ctx, trail.Event{Code: trail.CodeApproved, Guard: "approval", Decision: "approved", Approval: "ap_1", Approver: "bob via cli", Message: "approved (scope once)"})
		return jsonrpc.NewResult(c.Msg.ID, json.RawMessage(`{}`)), nil
	}
	if _, err := f.h.Handle(context.Background(), call(`{}`)); err != nil {
		t.Fatal(err)
	}
	ev := f.sink.Events()
	if len(ev) != 3 {
		t.Fatalf("%d events, want 3", len(ev))
	}
	d := ev[1]
	if d.Kind != trail.KindDecision || d.Code != trail.CodeApproved || d.Approval != "ap_1" || d.Approver != "bob via cli" || d.Call != ev[0].ID ||
		d.Principal != "alice" || d.Tool != "echo" || d.Prev != ev[0].Hash || ev[2].Prev != d.Hash {
		t.Errorf("decision event %+v", d)
	}
	if line := string(d.AppendCanonical(nil)); !strings.Contains(line, `"approval":"ap_1","approver":"bob via cli"`) {
		t.Errorf("canonical form %s", line)
	}
}
