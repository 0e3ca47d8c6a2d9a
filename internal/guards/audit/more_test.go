package audit_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	trail "github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/gateway"
	"github.com/portcullis-mcp/portcullis/internal/gateway/gatewaytest"
	"github.com/portcullis-mcp/portcullis/internal/guard"
	auditguard "github.com/portcullis-mcp/portcullis/internal/guards/audit"
	"github.com/portcullis-mcp/portcullis/internal/identity"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

// trailOf reads the events of a JSONL trail.
func trailOf(t *testing.T, path string) []*trail.Event {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []*trail.Event
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if line == "" {
			continue
		}
		e, err := trail.ParseLine([]byte(line))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func startGateway(t *testing.T, src string, servers ...*gatewaytest.Server) (*gateway.Gateway, *gateway.Session) {
	t.Helper()
	var ss []gateway.Server
	for _, s := range servers {
		ss = append(ss, gateway.Server{Name: s.Name, Dial: s.Dial})
	}
	g, err := gateway.New(gateway.Options{Servers: ss, Guards: sections(t, src), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Shutdown(context.Background()); auditguard.Close() })
	s, err := g.NewSession(identity.Principal{ID: "alice", Method: "apikey"}, nopClient{})
	if err != nil {
		t.Fatal(err)
	}
	s.Handle(context.Background(), jsonrpc.NewRequest(jsonrpc.IntID(1), "initialize", map[string]any{
		"protocolVersion": "2025-06-18", "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "t", "version": "1"}}))
	return g, s
}

func tool(s *gateway.Session, id int64, name string) *jsonrpc.Message {
	return s.Handle(context.Background(), jsonrpc.NewRequest(jsonrpc.IntID(id), "tools/call", map[string]any{"name": name, "arguments": map[string]any{}}))
}

// A reload that fails at a later guard leaves the audit sinks as they were: the running
// chain keeps recording where it did, and the new file gets nothing.
func TestReloadFailureKeepsSinks(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl")
	srv := &gatewaytest.Server{Name: "fs", Tools: []gatewaytest.Tool{{Name: "read_file"}}}
	head := "auth: none\nservers:\n  - {name: fs, command: x}\nguards:\n  audit:\n    file: "
	g, s := startGateway(t, head+a+"\n", srv)
	if resp := tool(s, 2, "read_file"); resp.Error != nil {
		t.Fatalf("call: %s", resp.Marshal())
	}
	// limits refuses to set up (an unknown field): the reload fails after audit was set up.
	bad := head + b + "\n  limits:\n    no_such_limit: 1\n"
	if err := g.SetGuards(sections(t, bad)); err == nil {
		t.Fatal("a reload with a bad limits section succeeded")
	}
	tool(s, 3, "read_file")
	var calls int
	for _, e := range trailOf(t, a) {
		if e.Method == "tools/call" && e.Kind == trail.KindResponse {
			calls++
		}
	}
	if calls != 2 {
		t.Errorf("%s has %d calls after the failed reload, want 2 (the running sinks were switched)", a, calls)
	}
	if data, err := os.ReadFile(b); err == nil && strings.Contains(string(data), "tools/call") {
		t.Errorf("the failed reload's sink got calls:\n%s", data)
	}
	// A good reload switches; the chain continues across the two files.
	if err := g.SetGuards(sections(t, head+b+"\n")); err != nil {
		t.Fatal(err)
	}
	tool(s, 4, "read_file")
	var inB int
	for _, e := range trailOf(t, b) {
		if e.Method == "tools/call" && e.Kind == trail.KindResponse {
			inB++
		}
	}
	if inB != 1 {
		t.Errorf("%s has %d calls after the good reload, want 1", b, inB)
	}
}

// A call the router refuses (an unknown server prefix) is recorded with the incident the
// client got.
func TestRouterRefusalRecorded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	one := &gatewaytest.Server{Name: "one", Tools: []gatewaytest.Tool{{Name: "t"}}}
	two := &gatewaytest.Server{Name: "two", Tools: []gatewaytest.Tool{{Name: "t"}}}
	src := "auth: none\nservers:\n  - {name: one, command: x}\n  - {name: two, command: x}\nguards:\n  audit:\n    file: " + path + "\n"
	_, s := startGateway(t, src, one, two)
	resp := tool(s, 2, "three__t")
	if resp.Error == nil || resp.Error.Code != jsonrpc.CodeInvalidParams {
		t.Fatalf("unknown prefix: %s", resp.Marshal())
	}
	var data struct{ Incident, Guard string }
	json.Unmarshal(resp.Error.Data, &data)
	var found bool
	for _, e := range trailOf(t, path) {
		if e.Kind == trail.KindResponse && e.Method == "tools/call" {
			found = true
			if e.Code != trail.CodeUnroutable || e.Decision != trail.Denied || e.Guard != "router" || e.Incident == "" || e.Incident != data.Incident || e.Principal != "alice" {
				t.Errorf("event %+v, client data %+v", e, data)
			}
		}
	}
	if !found {
		t.Error("the refused call is not in the trail")
	}
	if n := len(one.Requests("tools/call")) + len(two.Requests("tools/call")); n != 0 {
		t.Errorf("servers got %d calls", n)
	}
}

// Findings of a call that is allowed are in its outcome event; alert rules count them.
func TestAlerts(t *testing.T) {
	rules := []auditguard.AlertRule{
		{Name: "any-critical", MinSeverity: "critical"},
		{Name: "secrets-burst", MinSeverity: "high", Detectors: []string{"secrets"}, Count: 3, Window: time.Minute, Per: "principal"},
	}
	alerts, err := auditguard.CompileAlerts(rules)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, auditguard.Options{Alerts: alerts})
	findings := []trail.Finding{{Detector: "secrets", Severity: "high", Pointer: "/token", In: "arguments"}}
	f.inner = func(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
		trail.Report(ctx, findings...)
		return jsonrpc.NewResult(c.Msg.ID, json.RawMessage(`{}`)), nil
	}
	alertsOf := func() (out []trail.Event) {
		for _, e := range f.sink.Events() {
			if e.Kind == trail.KindAlert {
				out = append(out, e)
			}
		}
		return out
	}
	f.h.Handle(context.Background(), call(`{"token":"x"}`))
	ev := f.sink.Events()
	if out := ev[len(ev)-1]; out.Decision != trail.Allowed || len(out.Findings) != 1 || out.Findings[0].Detector != "secrets" {
		t.Fatalf("the allowed call's outcome lacks its finding: %+v", out)
	}
	f.h.Handle(context.Background(), call(`{"token":"x"}`))
	if a := alertsOf(); len(a) != 0 {
		t.Fatalf("alert after 2 findings, want 3: %+v", a)
	}
	f.h.Handle(context.Background(), call(`{"token":"x"}`))
	a := alertsOf()
	if len(a) != 1 || a[0].Alert != "secrets-burst" || a[0].Code != trail.CodeAlert || a[0].Principal != "alice" || len(a[0].Findings) != 1 {
		t.Fatalf("alerts %+v", a)
	}
	ev = f.sink.Events()
	if resp := ev[len(ev)-2]; a[0].Call != resp.ID || resp.Kind != trail.KindResponse {
		t.Errorf("the alert does not name its call: %+v / %+v", a[0], resp)
	}
	// Cooldown: more findings within the window do not fire again.
	f.h.Handle(context.Background(), call(`{"token":"x"}`))
	if n := len(alertsOf()); n != 1 {
		t.Errorf("%d alerts within the cooldown, want 1", n)
	}
	// A critical finding fires the other rule at once.
	findings = []trail.Finding{{Detector: "cmdinj", Severity: "critical", Pointer: "/cmd", In: "arguments"}}
	f.h.Handle(context.Background(), call(`{"cmd":"x"}`))
	if a := alertsOf(); len(a) != 2 || a[1].Alert != "any-critical" {
		t.Errorf("alerts %+v", a)
	}
	if _, err := auditguard.CompileAlerts([]auditguard.AlertRule{{Name: "x", MinSeverity: "severe"}, {Name: "x", Per: "planet"}}); err == nil ||
		!strings.Contains(err.Error(), "severe") || !strings.Contains(err.Error(), "twice") || !strings.Contains(err.Error(), "planet") {
		t.Errorf("bad rules: %v", err)
	}
}

// The request event carries the client's trace context; the outcome the gateway's span.
func TestTraceContext(t *testing.T) {
	f := newFixture(t, auditguard.Options{})
	f.inner = func(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
		trail.ReportSpan(ctx, "0af7651916cd43dd8448eb211c80319c", "1111111111111111")
		return jsonrpc.NewResult(c.Msg.ID, json.RawMessage(`{}`)), nil
	}
	c := &guard.Call{Msg: jsonrpc.NewRequest(jsonrpc.IntID(1), "tools/call", json.RawMessage(
		`{"name":"echo","arguments":{},"_meta":{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}`)),
		Direction: guard.Inbound, Server: "srv", Name: "echo"}
	f.h.Handle(context.Background(), c)
	ev := f.sink.Events()
	if ev[0].TraceID != "0af7651916cd43dd8448eb211c80319c" || ev[0].SpanID != "b7ad6b7169203331" {
		t.Errorf("request event trace %q span %q", ev[0].TraceID, ev[0].SpanID)
	}
	if ev[1].TraceID != "0af7651916cd43dd8448eb211c80319c" || ev[1].SpanID != "1111111111111111" {
		t.Errorf("response event trace %q span %q", ev[1].TraceID, ev[1].SpanID)
	}
}
