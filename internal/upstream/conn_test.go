package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
	"github.com/portcullis-mcp/portcullis/internal/mcp"
)

// fakeTransport answers requests with a function and records what it saw.
type fakeTransport struct {
	mu     sync.Mutex
	seen   []*jsonrpc.Message
	answer func(m *jsonrpc.Message) *jsonrpc.Message
	done   chan struct{}
	err    error
	once   sync.Once
}

func newFake(answer func(m *jsonrpc.Message) *jsonrpc.Message) *fakeTransport {
	return &fakeTransport{answer: answer, done: make(chan struct{})}
}

func (f *fakeTransport) Call(ctx context.Context, req *jsonrpc.Message) (*jsonrpc.Message, error) {
	f.mu.Lock()
	f.seen = append(f.seen, req)
	f.mu.Unlock()
	select {
	case <-f.done:
		return nil, f.err
	default:
	}
	resp := f.answer(req)
	if resp == nil {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-f.done:
			return nil, f.err
		}
	}
	resp.ID = req.ID
	return resp, nil
}
func (f *fakeTransport) Notify(ctx context.Context, n *jsonrpc.Message) error {
	f.mu.Lock()
	f.seen = append(f.seen, n)
	f.mu.Unlock()
	return nil
}
func (f *fakeTransport) SetSession(string, string) {}
func (f *fakeTransport) Done() <-chan struct{}     { return f.done }
func (f *fakeTransport) Err() error                { <-f.done; return f.err }
func (f *fakeTransport) Close() error              { f.crash(errors.New("closed")); return nil }
func (f *fakeTransport) crash(err error) {
	f.once.Do(func() { f.err = err; close(f.done) })
}
func (f *fakeTransport) methods() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ms []string
	for _, m := range f.seen {
		ms = append(ms, m.Method)
	}
	return ms
}

func legacyServer(m *jsonrpc.Message) *jsonrpc.Message {
	switch m.Method {
	case "initialize":
		return jsonrpc.NewResult(nil, json.RawMessage(`{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"legacy","version":"1"}}`))
	case "tools/call":
		return jsonrpc.NewResult(nil, m.Params)
	case "hang":
		return nil
	}
	return jsonrpc.NewError(nil, jsonrpc.Errorf(jsonrpc.CodeMethodNotFound, "no"))
}

func modernServer(m *jsonrpc.Message) *jsonrpc.Message {
	switch m.Method {
	case "initialize":
		return jsonrpc.NewError(nil, jsonrpc.Errorf(jsonrpc.CodeMethodNotFound, "initialize was removed; supported: 2026-07-28"))
	case "server/discover":
		return jsonrpc.NewResult(nil, json.RawMessage(`{"resultType":"complete","supportedVersions":["2026-07-28"],"capabilities":{"tools":{}},"_meta":{"io.modelcontextprotocol/serverInfo":{"name":"modern","version":"2"}}}`))
	case "tools/call":
		if _, ok := jsonrpc.LookupPath(m.Params, "_meta", mcp.MetaProtocolVersion); !ok {
			return jsonrpc.NewError(nil, jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "missing _meta"))
		}
		return jsonrpc.NewResult(nil, m.Params)
	}
	return jsonrpc.NewError(nil, jsonrpc.Errorf(jsonrpc.CodeMethodNotFound, "no"))
}

func dialFake(fakes *[]*fakeTransport, answer func(*jsonrpc.Message) *jsonrpc.Message) Dial {
	var mu sync.Mutex
	return func(ctx context.Context, in Incoming) (Transport, error) {
		f := newFake(answer)
		mu.Lock()
		*fakes = append(*fakes, f)
		mu.Unlock()
		return f, nil
	}
}

func TestConnEras(t *testing.T) {
	tests := []struct {
		name       string
		server     func(*jsonrpc.Message) *jsonrpc.Message
		modern     bool
		wantMethod []string
	}{
		{"legacy handshake", legacyServer, false, []string{"initialize", "notifications/initialized", "tools/call"}},
		{"modern falls forward to server/discover", modernServer, true, []string{"initialize", "server/discover", "tools/call"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var fakes []*fakeTransport
			c := NewConn("s", dialFake(&fakes, tt.server), Hello{ProtocolVersion: "2025-11-25"}, nil, nil)
			if err := c.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.Modern() != tt.modern {
				t.Fatalf("Modern() = %v", c.Modern())
			}
			resp, err := c.Call(context.Background(), jsonrpc.NewRequest(jsonrpc.IntID(7), "tools/call", json.RawMessage(`{"name":"x"}`)))
			if err != nil || resp.Error != nil {
				t.Fatalf("call: %v %v", err, resp.Error)
			}
			if string(resp.ID) != "7" {
				t.Errorf("id = %s", resp.ID)
			}
			if got := strings.Join(fakes[0].methods(), ","); got != strings.Join(tt.wantMethod, ",") {
				t.Errorf("server saw %s, want %v", got, tt.wantMethod)
			}
			_, hasMeta := jsonrpc.LookupPath(resp.Result, "_meta", mcp.MetaProtocolVersion)
			if hasMeta != tt.modern {
				t.Errorf("request _meta present = %v, want %v (%s)", hasMeta, tt.modern, resp.Result)
			}
		})
	}
}

func TestConnRestartsAfterCrash(t *testing.T) {
	var fakes []*fakeTransport
	c := NewConn("crashy", dialFake(&fakes, legacyServer), Hello{ProtocolVersion: "2025-11-25"}, nil, nil)
	c.MinBackoff = time.Millisecond
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	errc := make(chan error, 1)
	go func() {
		_, err := c.Call(context.Background(), jsonrpc.NewRequest(jsonrpc.IntID(1), "hang", nil))
		errc <- err
	}()
	for len(fakes[0].methods()) < 3 {
		time.Sleep(time.Millisecond)
	}
	fakes[0].crash(ErrUnavailable)
	err := <-errc
	if err == nil || !strings.Contains(err.Error(), `"crashy"`) {
		t.Fatalf("call during crash: %v, want an error naming the server", err)
	}
	// The connection comes back with a new handshake.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		resp, err := c.Call(ctx, jsonrpc.NewRequest(jsonrpc.IntID(2), "tools/call", json.RawMessage(`{}`)))
		if err == nil && resp.Error == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no restart: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if len(fakes) < 2 || fakes[1].methods()[0] != "initialize" {
		t.Fatalf("restart did not redo the handshake: %d transports", len(fakes))
	}
}
