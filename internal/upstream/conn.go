package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
	"github.com/portcullis-mcp/portcullis/internal/mcp"
)

// Dial opens a new transport to a server.
type Dial func(ctx context.Context, in Incoming) (Transport, error)

// Hello is what the gateway says of itself when it opens an MCP session with a server: the
// client's capabilities and identity (for a legacy client, the ones it sent in initialize).
type Hello struct {
	ProtocolVersion string
	Capabilities    json.RawMessage
	ClientInfo      json.RawMessage
}

// InitResult is the server's answer to initialize.
type InitResult struct {
	ProtocolVersion string          `json:"protocolVersion"`
	Capabilities    json.RawMessage `json:"capabilities"`
	ServerInfo      json.RawMessage `json:"serverInfo"`
	Instructions    string          `json:"instructions,omitempty"`
}

// Has reports whether the server declared capability name (tools, prompts, resources, ...).
func (r *InitResult) Has(name string) bool {
	if r == nil {
		return false
	}
	_, ok := jsonrpc.Lookup(r.Capabilities, name)
	return ok
}

// Conn is one MCP session with one server: it performs the initialize handshake, restarts a
// server that died with exponential backoff (performing the handshake again), and reports
// which client request a server message belongs to.
type Conn struct {
	Name   string
	dial   Dial
	in     Incoming
	hello  Hello
	logger *slog.Logger

	mu       sync.Mutex
	t        Transport
	init     *InitResult
	ready    chan struct{} // closed when t is usable or the conn is closed
	readyErr error
	closed   bool
	modern   bool
	failures int
	inflight map[uint64]context.Context
	seq      uint64

	// MinBackoff and MaxBackoff bound the delay between restarts.
	MinBackoff, MaxBackoff time.Duration
}

type callKey struct{}

// NewConn returns a connection that is not started yet.
func NewConn(name string, dial Dial, hello Hello, in Incoming, logger *slog.Logger) *Conn {
	if logger == nil {
		logger = slog.Default()
	}
	c := &Conn{Name: name, dial: dial, hello: hello, in: in, logger: logger,
		inflight: map[uint64]context.Context{}, MinBackoff: 200 * time.Millisecond, MaxBackoff: 30 * time.Second}
	c.ready = make(chan struct{})
	return c
}

// Start connects and performs the handshake. On failure the error is returned, calls fail
// fast with it, and the connection is retried in the background with backoff.
func (c *Conn) Start(ctx context.Context) error {
	err := c.connect(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	close(c.ready)
	if err != nil {
		c.readyErr = err
		c.failures++
		go c.restart()
	}
	return err
}

func (c *Conn) incoming(ctx context.Context, m *jsonrpc.Message) *jsonrpc.Message {
	if ctx.Value(callKey{}) == nil {
		// The transport could not tell which request this belongs to: take the newest
		// request in flight, if any (a stdio server asks for sampling while it runs a call).
		c.mu.Lock()
		var newest uint64
		var nctx context.Context
		for k, v := range c.inflight {
			if k >= newest {
				newest, nctx = k, v
			}
		}
		c.mu.Unlock()
		if nctx != nil {
			ctx = nctx
		}
	}
	return c.in(ctx, m)
}

func (c *Conn) connect(ctx context.Context) error {
	t, err := c.dial(ctx, c.incoming)
	if err != nil {
		return err
	}
	hctx, cancel := context.WithTimeout(ctx, 120*time.Second) // ctx usually has a shorter deadline
	defer cancel()
	params := map[string]any{
		"protocolVersion": c.hello.ProtocolVersion,
		"capabilities":    rawOr(c.hello.Capabilities, "{}"),
		"clientInfo":      rawOr(c.hello.ClientInfo, `{"name":"portcullis","version":"dev"}`),
	}
	resp, err := t.Call(hctx, jsonrpc.NewRequest(jsonrpc.IntID(0), "initialize", params))
	if err == nil && resp.Error != nil {
		// A server that only speaks 2026-07-28 refuses initialize: ask it server/discover.
		if ir, derr := c.discover(hctx, t); derr == nil {
			c.mu.Lock()
			if c.closed {
				c.mu.Unlock()
				t.Close()
				return fmt.Errorf("%w: server %q: connection closed", ErrUnavailable, c.Name)
			}
			c.t, c.init, c.modern = t, ir, true
			c.readyErr = nil
			c.mu.Unlock()
			go c.watch(t, time.Now())
			return nil
		}
	}
	if err != nil {
		t.Close()
		return fmt.Errorf("%w: server %q: initialize: %v", ErrUnavailable, c.Name, err)
	}
	if resp.Error != nil {
		t.Close()
		return fmt.Errorf("%w: server %q refused initialize: %s (code %d)", ErrUnavailable, c.Name, resp.Error.Message, resp.Error.Code)
	}
	var ir InitResult
	if err := json.Unmarshal(resp.Result, &ir); err != nil {
		t.Close()
		return fmt.Errorf("%w: server %q: bad initialize result: %v", ErrUnavailable, c.Name, err)
	}
	t.SetSession("", ir.ProtocolVersion)
	if err := t.Notify(hctx, jsonrpc.NewNotification("notifications/initialized", nil)); err != nil {
		t.Close()
		return fmt.Errorf("%w: server %q: initialized: %v", ErrUnavailable, c.Name, err)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		t.Close()
		return fmt.Errorf("%w: server %q: connection closed", ErrUnavailable, c.Name)
	}
	c.t, c.init = t, &ir
	c.readyErr = nil
	c.mu.Unlock()
	go c.watch(t, time.Now())
	return nil
}

// discover asks a server for its versions and capabilities the 2026-07-28 way.
func (c *Conn) discover(ctx context.Context, t Transport) (*InitResult, error) {
	params, _ := jsonrpc.Set([]byte(`{}`), "_meta", c.modernMeta())
	resp, err := t.Call(ctx, &jsonrpc.Message{ID: jsonrpc.IntID(0), Method: "server/discover", Params: params})
	if err != nil {
		return nil, err
	}
	if resp.Error != nil {
		return nil, resp.Error
	}
	var dr struct {
		SupportedVersions []string                   `json:"supportedVersions"`
		Capabilities      json.RawMessage            `json:"capabilities"`
		Instructions      string                     `json:"instructions"`
		Meta              map[string]json.RawMessage `json:"_meta"`
	}
	if err := json.Unmarshal(resp.Result, &dr); err != nil {
		return nil, err
	}
	if !slices.Contains(dr.SupportedVersions, mcp.Modern) {
		return nil, fmt.Errorf("server %q supports none of our versions: %v", c.Name, dr.SupportedVersions)
	}
	t.SetSession("", mcp.Modern)
	return &InitResult{ProtocolVersion: mcp.Modern, Capabilities: rawOr(dr.Capabilities, "{}"),
		ServerInfo: dr.Meta[mcp.MetaServerInfo], Instructions: dr.Instructions}, nil
}

// modernMeta is the per-request metadata the gateway sends a 2026-07-28 server on behalf of
// a client that did not send its own (a legacy client). It declares no client capabilities:
// the gateway does not turn input_required results into legacy server-to-client requests.
func (c *Conn) modernMeta() json.RawMessage {
	meta, _ := json.Marshal(map[string]json.RawMessage{
		mcp.MetaProtocolVersion:    json.RawMessage(`"` + mcp.Modern + `"`),
		mcp.MetaClientCapabilities: json.RawMessage(`{}`),
		mcp.MetaClientInfo:         rawOr(c.hello.ClientInfo, `{"name":"portcullis","version":"dev"}`),
	})
	return meta
}

// Modern reports whether the server speaks 2026-07-28 (no handshake, per-request _meta).
func (c *Conn) Modern() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.modern
}

// withMeta adds the per-request metadata a modern server needs when the request lacks it.
func (c *Conn) withMeta(req *jsonrpc.Message) *jsonrpc.Message {
	params := req.Params
	if len(params) == 0 {
		params = []byte(`{}`)
	}
	if _, ok := jsonrpc.LookupPath(params, "_meta", mcp.MetaProtocolVersion); ok {
		return req
	}
	meta, ok := jsonrpc.Lookup(params, "_meta")
	if !ok || len(meta) == 0 || meta[0] != '{' {
		meta = c.modernMeta()
	} else {
		var extra map[string]json.RawMessage
		json.Unmarshal(c.modernMeta(), &extra)
		for k, v := range extra {
			if _, has := jsonrpc.Lookup(meta, k); !has {
				meta, _ = jsonrpc.Set(meta, k, v)
			}
		}
	}
	np, err := jsonrpc.Set(params, "_meta", meta)
	if err != nil {
		return req
	}
	out := *req
	out.Params = np
	return &out
}

// withoutModernMeta removes the per-request protocol metadata of a 2026-07-28 client from a
// request forwarded into a session negotiated with initialize: the session already says
// which version and capabilities apply, and servers that know both eras read those keys as
// a version claim that contradicts the session.
func withoutModernMeta(req *jsonrpc.Message) *jsonrpc.Message {
	meta, ok := jsonrpc.Lookup(req.Params, "_meta")
	if !ok || len(meta) == 0 || meta[0] != '{' {
		return req
	}
	if _, ok := jsonrpc.Lookup(meta, mcp.MetaProtocolVersion); !ok {
		return req
	}
	for _, k := range []string{mcp.MetaProtocolVersion, mcp.MetaClientCapabilities, mcp.MetaClientInfo, mcp.MetaLogLevel} {
		meta, _ = jsonrpc.Delete(meta, k)
	}
	var params []byte
	var err error
	if string(meta) == "{}" {
		params, err = jsonrpc.Delete(req.Params, "_meta")
	} else {
		params, err = jsonrpc.Set(req.Params, "_meta", meta)
	}
	if err != nil {
		return req
	}
	out := *req
	out.Params = params
	return &out
}

// watch restarts the server when its transport dies.
func (c *Conn) watch(t Transport, started time.Time) {
	<-t.Done()
	c.mu.Lock()
	if c.closed || c.t != t {
		c.mu.Unlock()
		return
	}
	if time.Since(started) > 30*time.Second {
		c.failures = 0
	}
	c.logger.Warn("server connection lost; restarting", "upstream", c.Name, "err", t.Err())
	c.t = nil
	c.readyErr = t.Err()
	c.mu.Unlock()
	go c.restart()
}

// restart reconnects with exponential backoff. While it waits, calls fail fast with the
// last error; while it connects, they wait for the outcome.
func (c *Conn) restart() {
	for {
		c.mu.Lock()
		delay := c.MinBackoff << min(c.failures, 16)
		if delay > c.MaxBackoff || delay <= 0 {
			delay = c.MaxBackoff
		}
		c.mu.Unlock()
		time.Sleep(delay)
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return
		}
		ready := make(chan struct{})
		c.ready = ready
		c.mu.Unlock()
		err := c.connect(context.Background())
		c.mu.Lock()
		close(ready)
		if err == nil {
			c.mu.Unlock()
			c.logger.Info("server restarted", "upstream", c.Name)
			return
		}
		c.failures++
		c.readyErr = err
		closed := c.closed
		c.mu.Unlock()
		if closed {
			return
		}
		c.logger.Warn("server restart failed", "upstream", c.Name, "err", err)
	}
}

// transport waits until the connection is usable or ctx ends.
func (c *Conn) transport(ctx context.Context) (Transport, error) {
	c.mu.Lock()
	ready := c.ready
	c.mu.Unlock()
	select {
	case <-ready:
	case <-ctx.Done():
		c.mu.Lock()
		err := c.readyErr
		c.mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("%w: server %q is restarting after: %v", ErrUnavailable, c.Name, err)
		}
		return nil, context.Cause(ctx)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("%w: server %q: connection closed", ErrUnavailable, c.Name)
	}
	if c.t == nil {
		if c.readyErr != nil {
			return nil, c.readyErr
		}
		return nil, fmt.Errorf("%w: server %q is not connected", ErrUnavailable, c.Name)
	}
	return c.t, nil
}

// Call sends req to the server and returns its response.
func (c *Conn) Call(ctx context.Context, req *jsonrpc.Message) (*jsonrpc.Message, error) {
	t, err := c.transport(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.seq++
	key := c.seq
	cctx := context.WithValue(ctx, callKey{}, key)
	c.inflight[key] = cctx
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.inflight, key)
		c.mu.Unlock()
	}()
	if c.Modern() {
		req = c.withMeta(req)
	} else {
		req = withoutModernMeta(req)
	}
	resp, err := t.Call(cctx, req)
	if err != nil {
		if errors.Is(err, ErrUnavailable) {
			select {
			case <-t.Done():
				return nil, fmt.Errorf("%w: server %q failed during the call: %v", ErrUnavailable, c.Name, t.Err())
			default:
			}
		}
		return nil, err
	}
	return resp, nil
}

// Notify sends a notification to the server if it is connected.
func (c *Conn) Notify(ctx context.Context, n *jsonrpc.Message) error {
	t, err := c.transport(ctx)
	if err != nil {
		return err
	}
	return t.Notify(ctx, n)
}

// Info returns the server's initialize result, nil before the first handshake.
func (c *Conn) Info() *InitResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.init
}

// Close ends the session and stops restarts.
func (c *Conn) Close() error {
	c.mu.Lock()
	c.closed = true
	t := c.t
	c.t = nil
	c.mu.Unlock()
	if t != nil {
		return t.Close()
	}
	return nil
}

func rawOr(r json.RawMessage, def string) json.RawMessage {
	if len(r) == 0 {
		return json.RawMessage(def)
	}
	return r
}
