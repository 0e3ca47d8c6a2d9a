package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/portcullis-mcp/portcullis/internal/gateway"
	"github.com/portcullis-mcp/portcullis/internal/gateway/gatewaytest"
	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/identity"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"

	_ "github.com/portcullis-mcp/portcullis/internal/guards/limits"
)

const waitLong = 5 * time.Second

// fakeClient is a gateway.Client that records what the session sends its client.
type fakeClient struct {
	mu      sync.Mutex
	got     []*jsonrpc.Message
	changed chan struct{}
	// answer answers requests; nil refuses them.
	answer func(ctx context.Context, m *jsonrpc.Message) (*jsonrpc.Message, error)
}

func (c *fakeClient) record(m *jsonrpc.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cp := *m
	c.got = append(c.got, &cp)
	if c.changed != nil {
		close(c.changed)
	}
	c.changed = make(chan struct{})
}

func (c *fakeClient) Notify(ctx context.Context, m *jsonrpc.Message) error {
	c.record(m)
	return nil
}

func (c *fakeClient) Request(ctx context.Context, m *jsonrpc.Message) (*jsonrpc.Message, error) {
	c.record(m)
	if c.answer == nil {
		return nil, errors.New("this client takes no requests")
	}
	return c.answer(ctx, m)
}

// messages returns what the client got for method ("" for all).
func (c *fakeClient) messages(method string) []*jsonrpc.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*jsonrpc.Message
	for _, m := range c.got {
		if method == "" || m.Method == method {
			out = append(out, m)
		}
	}
	return out
}

func (c *fakeClient) waitFor(method string, n int) []*jsonrpc.Message {
	deadline := time.After(waitLong)
	for {
		c.mu.Lock()
		if c.changed == nil {
			c.changed = make(chan struct{})
		}
		ch := c.changed
		c.mu.Unlock()
		if got := c.messages(method); len(got) >= n {
			return got
		}
		select {
		case <-ch:
		case <-deadline:
			return c.messages(method)
		}
	}
}

// logBuf collects the gateway's log.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newGateway builds a gateway over fake servers (named as their serverInfo) and shuts it
// down at the end of the test.
func newGateway(t testing.TB, opts gateway.Options, servers ...*gatewaytest.Server) (*gateway.Gateway, *logBuf) {
	t.Helper()
	for _, s := range servers {
		opts.Servers = append(opts.Servers, gateway.Server{Name: s.Name, Dial: s.Dial})
	}
	logs := &logBuf{}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = waitLong
	}
	g, err := gateway.New(opts)
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		g.Shutdown(ctx)
	})
	return g, logs
}

var idSeq atomic.Int64

func request(method, params string) *jsonrpc.Message {
	m := &jsonrpc.Message{ID: jsonrpc.IntID(idSeq.Add(1)), Method: method}
	if params != "" {
		m.Params = json.RawMessage(params)
	}
	return m
}

func notification(method, params string) *jsonrpc.Message {
	m := &jsonrpc.Message{Method: method}
	if params != "" {
		m.Params = json.RawMessage(params)
	}
	return m
}

const initParams = `{"protocolVersion":"2025-11-25","capabilities":{"sampling":{},"roots":{"listChanged":true}},"clientInfo":{"name":"test-client","version":"0.1"}}`

// openSession starts a legacy session and initializes it.
func openSession(t testing.TB, g *gateway.Gateway, c gateway.Client) (*gateway.Session, *jsonrpc.Message) {
	t.Helper()
	s, err := g.NewSession(identity.Anonymous, c)
	if err != nil {
		t.Fatalf("NewSession: %v", err)
	}
	t.Cleanup(s.Close)
	resp := s.Handle(context.Background(), request("initialize", initParams))
	if resp == nil || resp.Error != nil {
		t.Fatalf("initialize: %s", resp.Marshal())
	}
	s.Handle(context.Background(), notification("notifications/initialized", ""))
	return s, resp
}

// decode unmarshals the result of resp, failing the test on an error response.
func decode(t testing.TB, resp *jsonrpc.Message) map[string]any {
	t.Helper()
	if resp == nil {
		t.Fatal("no response")
	}
	if resp.Error != nil {
		t.Fatalf("unexpected error response: %s", resp.Marshal())
	}
	var v map[string]any
	if err := json.Unmarshal(resp.Result, &v); err != nil {
		t.Fatalf("result %s: %v", resp.Result, err)
	}
	return v
}

// names returns field key of each element of list field of resp's result.
func names(t testing.TB, resp *jsonrpc.Message, field, key string) []string {
	t.Helper()
	res := decode(t, resp)
	var out []string
	items, _ := res[field].([]any)
	for _, it := range items {
		m, _ := it.(map[string]any)
		s, _ := m[key].(string)
		out = append(out, s)
	}
	return out
}

// errorCode returns the error code of resp, 0 for a result.
func errorCode(resp *jsonrpc.Message) int {
	if resp == nil || resp.Error == nil {
		return 0
	}
	return resp.Error.Code
}

func lookupString(t testing.TB, raw []byte, path ...string) string {
	t.Helper()
	v, ok := jsonrpc.LookupPath(raw, path...)
	if !ok {
		t.Fatalf("%s: no %v", raw, path)
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		t.Fatalf("%s: %v is %s, not a string", raw, path, v)
	}
	return s
}

func methods(ms []*jsonrpc.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Method)
	}
	return out
}

// yamlSection is a guard's configuration section, as YAML.
type yamlSection string

func (y yamlSection) Decode(v any) error {
	dec := yaml.NewDecoder(strings.NewReader(string(y)))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// The probe guard is registered under the first name of guard.Order no guard of this test
// binary took; it is off unless configured. It records what it sees and refuses what its
// configuration says.
var probeGuard string

type probeConfig struct {
	Probe   string   `yaml:"probe"`   // key in probes
	Methods []string `yaml:"methods"` // refuse these methods (both directions)
	Names   []string `yaml:"names"`   // refuse calls with these (routed, unprefixed) names
	Panic   bool     `yaml:"panic"`   // panic instead of refusing
	Plain   bool     `yaml:"plain"`   // refuse with a plain error instead of a refusal
	Hold    bool     `yaml:"hold"`    // put a hold on the call (for an approval) instead of refusing
}

type probe struct {
	mu    sync.Mutex
	calls []guard.Call
}

func (p *probe) seen() []guard.Call {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]guard.Call(nil), p.calls...)
}

var probes sync.Map // string -> *probe

func newProbe(t testing.TB) (string, *probe) {
	key := t.Name()
	p := &probe{}
	probes.Store(key, p)
	t.Cleanup(func() { probes.Delete(key) })
	return key, p
}

func init() {
	for _, n := range guard.Order {
		if !guard.Known(n) {
			probeGuard = n
			break
		}
	}
	if probeGuard == "" {
		panic("every guard name is taken; the probe guard cannot be registered")
	}
	guard.Register(probeGuard, false, func(cfg guard.Config, env guard.Env) (guard.Middleware, error) {
		var c probeConfig
		if cfg != nil {
			if err := cfg.Decode(&c); err != nil {
				return nil, err
			}
		}
		return func(next guard.Handler) guard.Handler {
			return guard.HandlerFunc(func(ctx context.Context, call *guard.Call) (*jsonrpc.Message, error) {
				if v, ok := probes.Load(c.Probe); ok {
					p := v.(*probe)
					p.mu.Lock()
					p.calls = append(p.calls, *call)
					p.mu.Unlock()
				}
				refuse := false
				for _, m := range c.Methods {
					refuse = refuse || m == call.Msg.Method
				}
				for _, n := range c.Names {
					refuse = refuse || n == call.Name
				}
				if refuse && c.Hold {
					call.Holds = append(call.Holds, guard.Hold{Guard: probeGuard, Reason: "the probe holds it"})
					return next.Handle(ctx, call)
				}
				if refuse {
					switch {
					case c.Panic:
						panic("probe guard panics")
					case c.Plain:
						return nil, fmt.Errorf("probe guard failed on %s", call.Msg.Method)
					}
					return nil, guard.Deny(probeGuard, jsonrpc.CodeDenied, "probe refuses %s", call.Msg.Method)
				}
				return next.Handle(ctx, call)
			})
		}, nil
	})
}

// eventually waits for cond.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Errorf("timed out waiting: %s", what)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
