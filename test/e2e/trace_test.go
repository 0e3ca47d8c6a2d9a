package e2e

// OpenTelemetry through `portcullis serve`: a call carrying W3C trace context in
// params._meta yields a span in the client's trace, exported over OTLP/HTTP (protobuf) to
// a collector endpoint, named as the MCP semantic conventions name it.

import (
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	collpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

func TestTraceExport(t *testing.T) {
	requireE2E(t)
	upstream := startEverythingHTTP(t)
	var mu sync.Mutex
	var spans []*tracepb.Span
	var bad []string
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req collpb.ExportTraceServiceRequest
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			bad = append(bad, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
		} else if err := proto.Unmarshal(body, &req); err != nil {
			bad = append(bad, err.Error())
		}
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				spans = append(spans, ss.Spans...)
			}
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		b, _ := proto.Marshal(&collpb.ExportTraceServiceResponse{})
		w.Write(b)
	}))
	defer collector.Close()
	g := startServe(t, GatewayConfig{Servers: []ServerConfig{{Name: "everything", URL: upstream}},
		Guards: "  trace:\n    endpoint: " + q(collector.URL) + "\n    service_name: gw-under-test\n"})
	c := mustInit(t, g.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	m, err := c.Request(ctx, "tools/call", map[string]any{"name": "test_simple_text", "arguments": map[string]any{},
		"_meta": map[string]any{"traceparent": "00-" + traceID + "-" + parentID + "-01"}})
	if err != nil || m.Error != nil {
		t.Fatalf("tools/call: %v %v", m, err)
	}
	g.Stop() // SIGTERM: serve flushes the spans still queued
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Fatalf("the collector got bad exports: %v", bad)
	}
	var found *tracepb.Span
	for _, s := range spans {
		if s.Name == "tools/call test_simple_text" {
			found = s
		}
	}
	if found == nil {
		var names []string
		for _, s := range spans {
			names = append(names, s.Name)
		}
		t.Fatalf("no span for the call among %d exported: %v", len(spans), names)
	}
	if hex.EncodeToString(found.TraceId) != traceID || hex.EncodeToString(found.ParentSpanId) != parentID {
		t.Errorf("span in trace %x under %x, want the client's %s/%s", found.TraceId, found.ParentSpanId, traceID, parentID)
	}
	if found.Kind != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("span kind %v", found.Kind)
	}
	attrs := map[string]string{}
	for _, kv := range found.Attributes {
		attrs[kv.Key] = kv.Value.GetStringValue()
	}
	if attrs["mcp.method.name"] != "tools/call" || attrs["gen_ai.tool.name"] != "test_simple_text" || attrs["portcullis.server"] != "everything" {
		t.Errorf("span attributes %v", attrs)
	}
}
