package trace

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

const clientParent = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"

func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if kv.Key == attribute.Key(key) {
			return kv.Value.Emit()
		}
	}
	return ""
}

func TestSpans(t *testing.T) {
	for _, tc := range []struct {
		name      string
		params    string
		propagate bool
		upstream  func(*guard.Call) (*jsonrpc.Message, error)
		wantName  string
		wantTrace string // the client's trace id, or "" for a new trace
		wantErr   string // error.type
		wantMeta  bool   // the server sees the gateway's traceparent
	}{
		{name: "continues the client's trace and passes its own on",
			params:    `{"name":"echo","arguments":{"x":1},"_meta":{"traceparent":"` + clientParent + `","progressToken":7}}`,
			propagate: true, wantName: "tools/call echo", wantTrace: "0af7651916cd43dd8448eb211c80319c", wantMeta: true},
		{name: "starts a trace when the client has none",
			params: `{"name":"echo","arguments":{}}`, propagate: true, wantName: "tools/call echo", wantMeta: true},
		{name: "propagation off leaves the bytes alone",
			params:    `{"name":"echo","_meta":{"traceparent":"` + clientParent + `"}}`,
			propagate: false, wantName: "tools/call echo", wantTrace: "0af7651916cd43dd8448eb211c80319c"},
		{name: "a refusal is an error span naming the guard",
			params: `{"name":"echo"}`, propagate: true, wantName: "tools/call echo", wantErr: "-32010", wantMeta: true,
			upstream: func(c *guard.Call) (*jsonrpc.Message, error) {
				return nil, &guard.Refusal{Guard: "authz", Code: jsonrpc.CodeDenied, Message: "no"}
			}},
		{name: "a tool error is an error span",
			params: `{"name":"echo"}`, propagate: true, wantName: "tools/call echo", wantErr: "tool_error", wantMeta: true,
			upstream: func(c *guard.Call) (*jsonrpc.Message, error) {
				return &jsonrpc.Message{ID: c.Msg.ID, Result: []byte(`{"content":[],"isError":true}`)}, nil
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			var seen *guard.Call
			up := guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
				seen = c
				if tc.upstream != nil {
					return tc.upstream(c)
				}
				return &jsonrpc.Message{ID: c.Msg.ID, Result: []byte(`{"content":[]}`)}, nil
			})
			h := New(tp.Tracer("test"), tc.propagate)(up)
			call := &guard.Call{Msg: &jsonrpc.Message{ID: jsonrpc.IntID(3), Method: "tools/call", Params: []byte(tc.params)},
				Session: "s1", Server: "srv", Name: "echo"}
			h.Handle(context.Background(), call)
			spans := rec.Ended()
			if len(spans) != 1 {
				t.Fatalf("%d spans, want 1", len(spans))
			}
			s := spans[0]
			if s.Name() != tc.wantName || attr(s, "gen_ai.tool.name") != "echo" || attr(s, "mcp.session.id") != "s1" ||
				attr(s, "mcp.method.name") != "tools/call" || attr(s, "jsonrpc.request.id") != "3" {
				t.Errorf("span %q with %v", s.Name(), s.Attributes())
			}
			if tc.wantTrace != "" {
				if s.SpanContext().TraceID().String() != tc.wantTrace || s.Parent().SpanID().String() != "00f067aa0ba902b7" || !s.Parent().IsRemote() {
					t.Errorf("span in trace %s under %s, want the client's", s.SpanContext().TraceID(), s.Parent().SpanID())
				}
			} else if s.Parent().IsValid() {
				t.Errorf("span has a parent %v, want a new trace", s.Parent())
			}
			if got := attr(s, "error.type"); got != tc.wantErr {
				t.Errorf("error.type = %q, want %q", got, tc.wantErr)
			}
			if (tc.wantErr != "") != (s.Status().Code == codes.Error) {
				t.Errorf("status %v", s.Status())
			}
			meta, _ := jsonrpc.Lookup(seen.Msg.Params, "_meta")
			tp2, _ := jsonrpc.LookupString(meta, "traceparent")
			if tc.wantMeta {
				want := "00-" + s.SpanContext().TraceID().String() + "-" + s.SpanContext().SpanID().String() + "-01"
				if tp2 != want {
					t.Errorf("the server sees traceparent %q, want the gateway's span %q", tp2, want)
				}
				if strings.Contains(tc.params, "progressToken") {
					if v, _ := jsonrpc.Lookup(meta, "progressToken"); string(v) != "7" {
						t.Errorf("other _meta members lost: %s", meta)
					}
				}
				if args, _ := jsonrpc.Lookup(seen.Msg.Params, "arguments"); strings.Contains(tc.params, `"x":1`) && string(args) != `{"x":1}` {
					t.Errorf("arguments changed: %s", args)
				}
				if call.Msg.Params == nil || string(call.Msg.Params) != tc.params {
					t.Errorf("the caller's message was modified in place: %s", call.Msg.Params)
				}
			} else if string(seen.Msg.Params) != tc.params {
				t.Errorf("the server sees %s, want the client's bytes %s", seen.Msg.Params, tc.params)
			}
		})
	}
}

func TestNotificationsPassUntraced(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	called := false
	h := New(tp.Tracer("test"), true)(guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
		called = true
		return nil, nil
	}))
	h.Handle(context.Background(), &guard.Call{Msg: &jsonrpc.Message{Method: "notifications/initialized"}})
	if !called || len(rec.Ended()) != 0 {
		t.Fatalf("called %v, %d spans", called, len(rec.Ended()))
	}
}

func TestValidate(t *testing.T) {
	bad := 1.5
	for _, c := range []*Config{{}, {Endpoint: "localhost:4318"}, {Endpoint: "http://x:4318", SampleRatio: &bad}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v validated", c)
		}
	}
	if err := (&Config{Endpoint: "http://127.0.0.1:4318"}).Validate(); err != nil {
		t.Error(err)
	}
}
