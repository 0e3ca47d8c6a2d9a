package stdio_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/gateway"
	gt "github.com/portcullis-mcp/portcullis/internal/gateway/gatewaytest"
	"github.com/portcullis-mcp/portcullis/internal/identity"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
	"github.com/portcullis-mcp/portcullis/internal/transport/stdio"

	_ "github.com/portcullis-mcp/portcullis/internal/guards/limits"
)

const waitLong = 5 * time.Second

// client is the other end of a Serve: it writes lines to Serve's reader and reads Serve's
// writer.
type client struct {
	t     *testing.T
	w     *io.PipeWriter
	in    chan *jsonrpc.Message
	raw   chan string
	done  chan error
	other []*jsonrpc.Message // messages received while waiting for a response
}

func newGateway(t *testing.T, servers ...*gt.Server) *gateway.Gateway {
	t.Helper()
	var opts gateway.Options
	for _, s := range servers {
		opts.Servers = append(opts.Servers, gateway.Server{Name: s.Name, Dial: s.Dial})
	}
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	g, err := gateway.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		g.Shutdown(ctx)
	})
	return g
}

func serve(t *testing.T, ctx context.Context, g *gateway.Gateway) *client {
	t.Helper()
	inR, inW := io.Pipe()   // client -> Serve
	outR, outW := io.Pipe() // Serve -> client
	c := &client{t: t, w: inW, in: make(chan *jsonrpc.Message, 64), raw: make(chan string, 64), done: make(chan error, 1)}
	go func() {
		err := stdio.Serve(ctx, g, inR, outW, identity.Principal{ID: "os-user", Method: "os"})
		outW.Close()
		c.done <- err
	}()
	go func() {
		defer close(c.in)
		br := bufio.NewReader(outR)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if !strings.HasSuffix(line, "\n") || strings.Count(line, "\n") != 1 {
				t.Errorf("output is not one message a line: %q", line)
			}
			c.raw <- line
			m, derr := jsonrpc.Decode([]byte(strings.TrimSpace(line)), jsonrpc.Limits{})
			if derr != nil {
				t.Errorf("Serve wrote an invalid message %q: %v", line, derr)
				continue
			}
			c.in <- m
		}
	}()
	t.Cleanup(func() {
		inW.Close()
		outR.Close()
	})
	return c
}

func (c *client) send(line string) {
	c.t.Helper()
	if _, err := io.WriteString(c.w, line+"\n"); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) recv() *jsonrpc.Message {
	c.t.Helper()
	select {
	case m, ok := <-c.in:
		if !ok {
			c.t.Fatal("Serve's output ended")
		}
		return m
	case <-time.After(waitLong):
		c.t.Fatal("timed out waiting for a message")
	}
	return nil
}

// response reads until the response with id, keeping other messages in c.other.
func (c *client) response(id string) *jsonrpc.Message {
	c.t.Helper()
	for {
		m := c.recv()
		if m.IsResponse() && string(m.ID) == id {
			return m
		}
		c.other = append(c.other, m)
	}
}

func (c *client) call(id, method, params string) *jsonrpc.Message {
	c.t.Helper()
	c.send(`{"jsonrpc":"2.0","id":` + id + `,"method":"` + method + `","params":` + params + `}`)
	return c.response(id)
}

func (c *client) initialize() *jsonrpc.Message {
	c.t.Helper()
	resp := c.call("0", "initialize", `{"protocolVersion":"2025-11-25","capabilities":{"sampling":{}},"clientInfo":{"name":"stdio-test","version":"1"}}`)
	if resp.Error != nil {
		c.t.Fatalf("initialize: %s", resp.Marshal())
	}
	c.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	return resp
}

func (c *client) wait() error {
	c.t.Helper()
	select {
	case err := <-c.done:
		return err
	case <-time.After(waitLong):
		c.t.Fatal("Serve did not return")
	}
	return nil
}

func lookupString(t *testing.T, raw []byte, path ...string) string {
	t.Helper()
	v, ok := jsonrpc.LookupPath(raw, path...)
	if !ok {
		t.Fatalf("%s: no %v", raw, path)
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		t.Fatalf("%s: %v is %s", raw, path, v)
	}
	return s
}

func TestSession(t *testing.T) {
	a := &gt.Server{Name: "a", Tools: []gt.Tool{{Name: "x"}, {Name: "z"}}}
	b := &gt.Server{Name: "b", Tools: []gt.Tool{{Name: "y"}}}
	g := newGateway(t, a, b)
	c := serve(t, context.Background(), g)

	init := c.initialize()
	if got := lookupString(t, init.Result, "serverInfo", "name"); got != "portcullis" {
		t.Errorf("serverInfo.name %q", got)
	}
	list := c.call("1", "tools/list", `{}`)
	var res struct{ Tools []struct{ Name string } }
	json.Unmarshal(list.Result, &res)
	var names []string
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
	}
	if strings.Join(names, ",") != "a__x,a__z,b__y" {
		t.Errorf("tools %v", names)
	}
	resp := c.call(`"s-2"`, "tools/call", `{"name":"b__y","arguments":{"k":1}}`)
	if resp.Error != nil || !strings.Contains(string(resp.Result), `"b:y"`) {
		t.Errorf("tools/call: %s", resp.Marshal())
	}
	if calls := b.Requests("tools/call"); len(calls) != 1 || lookupString(t, calls[0].Params, "name") != "y" {
		t.Errorf("b saw %d calls", len(calls))
	}
	if len(c.other) != 0 {
		t.Errorf("unexpected messages: %d", len(c.other))
	}
	if resp := c.call("3", "ping", `{}`); resp.Error != nil {
		t.Errorf("ping: %s", resp.Marshal())
	}

	// The client ends its stdin: Serve returns and the servers are closed.
	c.w.Close()
	if err := c.wait(); err != nil {
		t.Errorf("Serve returned %v, want nil at the end of input", err)
	}
	for _, srv := range []*gt.Server{a, b} {
		tr := srv.Transports()
		if len(tr) != 1 || !tr[0].Closed() {
			t.Errorf("%s: transport not closed when the client went away", srv.Name)
		}
	}
}

func TestInvalidLines(t *testing.T) {
	a := &gt.Server{Name: "a", Tools: []gt.Tool{{Name: "x"}}}
	g := newGateway(t, a)
	c := serve(t, context.Background(), g)
	c.initialize()
	tests := []struct {
		line string
		code int
		id   string // the id the error must carry
	}{
		{`this is not json`, jsonrpc.CodeParseError, "null"},
		{`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"x","name":"y"}}`, jsonrpc.CodeParseError, "5"},
		{`[{"jsonrpc":"2.0","id":6,"method":"tools/list"}]`, jsonrpc.CodeInvalidRequest, "null"},
		{`{"jsonrpc":"1.0","id":7,"method":"tools/list"}`, jsonrpc.CodeInvalidRequest, "7"},
		{`{"jsonrpc":"2.0","id":8,"method":"tools/list"`, jsonrpc.CodeParseError, "8"},
	}
	for _, tt := range tests {
		c.send(tt.line)
		m := c.recv()
		if m.Error == nil || m.Error.Code != tt.code || string(m.ID) != tt.id {
			t.Errorf("%s: got %s, want error %d with id %s", tt.line, m.Marshal(), tt.code, tt.id)
		}
	}
	if len(a.Traffic()) != 0 {
		t.Errorf("invalid lines reached the server")
	}
	// Blank lines are ignored, and the session goes on.
	c.send("")
	if resp := c.call("9", "tools/call", `{"name":"x"}`); resp.Error != nil {
		t.Errorf("after invalid lines: %s", resp.Marshal())
	}
}

func TestServerToClient(t *testing.T) {
	for _, mode := range []string{"call ctx", "background ctx"} {
		t.Run(mode, func(t *testing.T) {
			a := &gt.Server{Name: "a", Tools: []gt.Tool{{Name: "x"}}}
			a.Handle("tools/call", func(ctx context.Context, r *gt.Request) (any, error) {
				sctx := ctx
				if mode == "background ctx" {
					sctx = context.Background()
				}
				r.T.SendNotification(sctx, "notifications/progress", map[string]any{"progressToken": "p", "progress": 1})
				resp, err := r.T.SendRequest(sctx, "sampling/createMessage", map[string]any{"messages": []any{}, "maxTokens": 3})
				if err != nil {
					return nil, err
				}
				if resp.Error != nil {
					return nil, resp.Error
				}
				text, _ := jsonrpc.LookupPath(resp.Result, "content", "text")
				return map[string]any{"content": []any{map[string]any{"type": "text", "text": "model: " + string(text)}}}, nil
			})
			g := newGateway(t, a)
			c := serve(t, context.Background(), g)
			c.initialize()
			c.send(`{"jsonrpc":"2.0","id":"call-1","method":"tools/call","params":{"name":"x","_meta":{"progressToken":"p"}}}`)
			progress := c.recv()
			if progress.Method != "notifications/progress" {
				t.Fatalf("first message %s, want progress", progress.Marshal())
			}
			ask := c.recv()
			if ask.Method != "sampling/createMessage" || !ask.IsRequest() {
				t.Fatalf("second message %s, want the sampling request", ask.Marshal())
			}
			c.send(string(jsonrpc.NewResult(ask.ID, json.RawMessage(`{"role":"assistant","content":{"type":"text","text":"hi"},"model":"m"}`)).Marshal()))
			resp := c.response(`"call-1"`)
			if resp.Error != nil || !strings.Contains(string(resp.Result), `model: \"hi\"`) {
				t.Errorf("tool result %s does not carry the client's answer", resp.Marshal())
			}
		})
	}
}

func TestCancel(t *testing.T) {
	a := &gt.Server{Name: "a", Tools: []gt.Tool{{Name: "x"}}}
	started := make(chan struct{})
	cancelled := make(chan struct{})
	a.Handle("tools/call", func(ctx context.Context, r *gt.Request) (any, error) {
		close(started)
		select {
		case <-ctx.Done():
			close(cancelled)
		case <-time.After(waitLong):
		}
		return nil, ctx.Err()
	})
	g := newGateway(t, a)
	c := serve(t, context.Background(), g)
	c.initialize()
	c.send(`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"x"}}`)
	<-started
	c.send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":4,"reason":"changed my mind"}}`)
	select {
	case <-cancelled:
	case <-time.After(waitLong):
		t.Fatal("the server's call was not cancelled")
	}
	if resp := c.call("5", "ping", `{}`); resp.Error != nil {
		t.Errorf("after the cancellation: %s", resp.Marshal())
	}
}

func TestContextEndsServe(t *testing.T) {
	a := &gt.Server{Name: "a", Tools: []gt.Tool{{Name: "x"}}}
	g := newGateway(t, a)
	ctx, cancel := context.WithCancel(context.Background())
	c := serve(t, ctx, g)
	c.initialize()
	cancel()
	if err := c.wait(); err != nil {
		t.Errorf("Serve returned %v after its ctx was cancelled", err)
	}
	if tr := a.Transports(); len(tr) != 1 || !tr[0].Closed() {
		t.Errorf("transport not closed")
	}
}

func TestModern(t *testing.T) {
	a := &gt.Server{Name: "a", Tools: []gt.Tool{{Name: "x"}}}
	g := newGateway(t, a)
	c := serve(t, context.Background(), g)
	const meta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}`
	resp := c.call("1", "tools/call", `{"name":"x",`+meta+`}`)
	if resp.Error != nil || lookupString(t, resp.Result, "resultType") != "complete" {
		t.Errorf("modern tools/call: %s", resp.Marshal())
	}
	resp = c.call("2", "server/discover", `{`+meta+`}`)
	if v, _ := jsonrpc.Lookup(resp.Result, "supportedVersions"); !strings.Contains(string(v), "2026-07-28") {
		t.Errorf("server/discover: %s", resp.Marshal())
	}
	for _, tt := range []struct {
		method, params string
		code           int
	}{
		{"tools/list", `{}`, jsonrpc.CodeInvalidParams},
		{"ping", `{` + meta + `}`, jsonrpc.CodeMethodNotFound},
		{"initialize", `{"protocolVersion":"2026-07-28","capabilities":{},"clientInfo":{"name":"c","version":"1"},` + meta + `}`, jsonrpc.CodeMethodNotFound},
		{"tools/list", `{"_meta":{"io.modelcontextprotocol/protocolVersion":"2099-01-01","io.modelcontextprotocol/clientCapabilities":{}}}`, jsonrpc.CodeUnsupportedProtocolVersion},
	} {
		resp := c.call("3", tt.method, tt.params)
		if resp.Error == nil || resp.Error.Code != tt.code {
			t.Errorf("%s %s: %s, want code %d", tt.method, tt.params, resp.Marshal(), tt.code)
		}
	}
}
