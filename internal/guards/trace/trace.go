// Package trace is the guard that records an OpenTelemetry span for every call through
// the gateway and exports it over OTLP/HTTP. The span continues the client's trace when
// the request carries W3C trace context in params._meta (traceparent, tracestate: the
// MCP convention since 2026-07-28), and the gateway passes its own span's context on to
// the server in the same place, so one trace shows client, gateway and server.
//
// It comes right after audit (it never refuses): its span covers every decision.
package trace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	oteltrace "go.opentelemetry.io/otel/trace"

	trail "github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

// Name is the guard's name in configuration.
const Name = "trace"

// Config is guards.trace.
type Config struct {
	// Endpoint is the OTLP/HTTP collector's base URL (http://host:4318); spans go to
	// <endpoint>/v1/traces.
	Endpoint string `yaml:"endpoint"`
	// Headers are sent with every export (for example an API key: use ${ENV}).
	Headers map[string]string `yaml:"headers"`
	// ServiceName is the service.name resource attribute (default portcullis).
	ServiceName string `yaml:"service_name"`
	// SampleRatio is the share of traces started here that are recorded (default 1);
	// a client's sampling decision in traceparent is followed.
	SampleRatio *float64 `yaml:"sample_ratio"`
	// Propagate passes the gateway's trace context on to the server in params._meta
	// (default true). Off, the server sees the client's bytes unchanged.
	Propagate *bool `yaml:"propagate"`
}

// Validate checks the section without I/O.
func (c *Config) Validate() error {
	var errs []error
	u, err := url.Parse(c.Endpoint)
	switch {
	case c.Endpoint == "":
		errs = append(errs, errors.New("endpoint is required (the OTLP/HTTP collector, e.g. http://127.0.0.1:4318)"))
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		errs = append(errs, fmt.Errorf("endpoint %q: want an http:// or https:// URL", c.Endpoint))
	}
	if r := c.SampleRatio; r != nil && (*r < 0 || *r > 1) {
		errs = append(errs, errors.New("sample_ratio must be between 0 and 1"))
	}
	return errors.Join(errs...)
}

func init() {
	guard.Register(Name, false, func(cfg guard.Config, env guard.Env) (guard.Middleware, error) {
		var c Config
		if cfg != nil {
			if err := cfg.Decode(&c); err != nil {
				return nil, err
			}
		}
		if err := c.Validate(); err != nil {
			return nil, err
		}
		tp, err := provider(c)
		if err != nil {
			return nil, err
		}
		return New(tp.Tracer("github.com/portcullis-mcp/portcullis"), c.Propagate == nil || *c.Propagate), nil
	})
}

// providers are shared by every chain of the process (reloads included), one per
// distinct configuration, so that a reload neither loses queued spans nor leaks exporters.
var providers struct {
	mu sync.Mutex
	m  map[string]*sdktrace.TracerProvider
}

func provider(c Config) (*sdktrace.TracerProvider, error) {
	key, _ := json.Marshal(c)
	providers.mu.Lock()
	defer providers.mu.Unlock()
	if tp, ok := providers.m[string(key)]; ok {
		return tp, nil
	}
	u, _ := url.Parse(c.Endpoint)
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(u.JoinPath("v1", "traces").String()),
		otlptracehttp.WithTimeout(10 * time.Second)}
	if len(c.Headers) > 0 {
		opts = append(opts, otlptracehttp.WithHeaders(c.Headers))
	}
	exp, err := otlptracehttp.New(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("endpoint: %w", err)
	}
	name := c.ServiceName
	if name == "" {
		name = "portcullis"
	}
	ratio := 1.0
	if c.SampleRatio != nil {
		ratio = *c.SampleRatio
	}
	res := resource.NewSchemaless(attribute.String("service.name", name))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))))
	if providers.m == nil {
		providers.m = map[string]*sdktrace.TracerProvider{}
	}
	providers.m[string(key)] = tp
	return tp, nil
}

// Flush exports the spans still queued (serve calls it on shutdown).
func Flush(ctx context.Context) {
	providers.mu.Lock()
	defer providers.mu.Unlock()
	for _, tp := range providers.m {
		tp.ForceFlush(ctx)
	}
}

// New returns the guard recording spans with tracer; propagate passes the span's context
// on to the server.
func New(tracer oteltrace.Tracer, propagate bool) guard.Middleware {
	return func(next guard.Handler) guard.Handler {
		return &tracing{next: next, tracer: tracer, propagate: propagate}
	}
}

type tracing struct {
	next      guard.Handler
	tracer    oteltrace.Tracer
	propagate bool
}

var w3c = propagation.TraceContext{}

// metaCarrier reads and collects trace context in a request's params._meta.
type metaCarrier map[string]string

func (m metaCarrier) Get(k string) string { return m[k] }
func (m metaCarrier) Set(k, v string)     { m[k] = v }
func (m metaCarrier) Keys() []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func (t *tracing) Handle(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
	m := c.Msg
	if !m.IsRequest() {
		return t.next.Handle(ctx, c)
	}
	in := metaCarrier{}
	if meta, ok := jsonrpc.Lookup(m.Params, "_meta"); ok {
		for _, k := range []string{"traceparent", "tracestate"} {
			if v, ok := jsonrpc.LookupString(meta, k); ok {
				in[k] = v
			}
		}
	}
	if len(in) > 0 {
		ctx = w3c.Extract(ctx, in)
	}
	kind := oteltrace.SpanKindServer
	if c.Direction == guard.Outbound {
		kind = oteltrace.SpanKindClient // a server's request to the client
	}
	attrs := []attribute.KeyValue{
		attribute.String("mcp.method.name", m.Method),
		attribute.String("jsonrpc.request.id", string(m.ID)),
	}
	if c.Session != "" {
		attrs = append(attrs, attribute.String("mcp.session.id", c.Session))
	}
	if c.Server != "" {
		attrs = append(attrs, attribute.String("portcullis.server", c.Server))
	}
	name := m.Method
	if c.Name != "" {
		name += " " + c.Name
		switch m.Method {
		case "tools/call":
			attrs = append(attrs, attribute.String("gen_ai.tool.name", c.Name), attribute.String("gen_ai.operation.name", "execute_tool"))
		case "prompts/get":
			attrs = append(attrs, attribute.String("gen_ai.prompt.name", c.Name))
		case "resources/read", "resources/subscribe", "resources/unsubscribe":
			attrs = append(attrs, attribute.String("mcp.resource.uri", c.Name))
		}
	}
	ctx, span := t.tracer.Start(ctx, name, oteltrace.WithSpanKind(kind), oteltrace.WithAttributes(attrs...))
	defer span.End()
	if sc := span.SpanContext(); sc.IsValid() {
		trail.ReportSpan(ctx, sc.TraceID().String(), sc.SpanID().String())
	}
	if t.propagate && span.SpanContext().IsValid() && len(m.Params) > 0 && m.Params[0] == '{' {
		out := metaCarrier{}
		w3c.Inject(ctx, out)
		params := m.Params
		var err error
		for _, k := range []string{"traceparent", "tracestate"} {
			if v, ok := out[k]; ok {
				if params, err = jsonrpc.SetMeta(params, k, jsonrpc.Quote(v)); err != nil {
					break
				}
			}
		}
		if err == nil {
			mm := *m
			mm.Params = params
			cc := *c
			cc.Msg = &mm
			c = &cc
		}
	}
	resp, err := t.next.Handle(ctx, c)
	switch {
	case err != nil:
		var je *jsonrpc.Error
		var rf *guard.Refusal
		switch {
		case errors.As(err, &rf):
			span.SetAttributes(attribute.String("error.type", strconv.Itoa(rf.Code)), attribute.String("portcullis.guard", rf.Guard))
		case errors.As(err, &je):
			span.SetAttributes(attribute.String("error.type", strconv.Itoa(je.Code)))
		default:
			span.SetAttributes(attribute.String("error.type", "gateway_error"))
		}
		span.SetStatus(codes.Error, err.Error())
	case resp != nil && resp.Error != nil:
		span.SetAttributes(attribute.String("error.type", strconv.Itoa(resp.Error.Code)))
		span.SetStatus(codes.Error, resp.Error.Message)
	case resp != nil && m.Method == "tools/call":
		if isErr, ok := jsonrpc.Lookup(resp.Result, "isError"); ok && string(isErr) == "true" {
			span.SetAttributes(attribute.String("error.type", "tool_error"))
			span.SetStatus(codes.Error, "the tool reported an error")
		}
	}
	return resp, err
}
