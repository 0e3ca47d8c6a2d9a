package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

// pipeEnd is the closer of a LineStream over one end of two io.Pipes; Close closes both of its ends,
// so that its own Read fails and the other side reads EOF.
type pipeEnd struct {
	r *io.PipeReader
	w *io.PipeWriter
}

func (e pipeEnd) Close() error {
	e.w.Close()
	return e.r.Close()
}

// pipe returns two connected streams.
func pipe() (a, b *LineStream) {
	ar, bw := io.Pipe()
	br, aw := io.Pipe()
	return NewLineStream(ar, aw, pipeEnd{ar, aw}, jsonrpc.Limits{MaxBytes: 1 << 10}),
		NewLineStream(br, bw, pipeEnd{br, bw}, jsonrpc.Limits{MaxBytes: 1 << 10})
}

// running starts p.Run and returns a channel that yields its result; the test's cleanup
// closes p and waits for Run to return.
func running(t *testing.T, p *Peer) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	t.Cleanup(func() {
		p.Close()
		<-p.Done()
	})
	return done
}

// peers returns two running peers connected to each other.
func peers(t *testing.T, ha, hb Handler) (a, b *Peer) {
	t.Helper()
	sa, sb := pipe()
	a, b = NewPeer(sa, ha), NewPeer(sb, hb)
	running(t, a)
	running(t, b)
	return a, b
}

func ignore(ctx context.Context, m *jsonrpc.Message) *jsonrpc.Message { return nil }

// echo answers a request with what it saw: its method, its id and its params.
func echo(ctx context.Context, m *jsonrpc.Message) *jsonrpc.Message {
	if m.IsNotification() {
		return nil
	}
	if m.Method == "fail" {
		return jsonrpc.NewError(nil, jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "failed as asked"))
	}
	return jsonrpc.NewResult(jsonrpc.ID(`"ignored"`), map[string]any{"method": m.Method, "id": string(m.ID), "params": m.Params})
}

func TestPeerCall(t *testing.T) {
	tests := []struct {
		name   string
		req    *jsonrpc.Message
		result string // "" for an error response
	}{
		{"string id", jsonrpc.NewRequest(jsonrpc.ID(`"client-7"`), "tools/list", nil),
			`{"id":"1","method":"tools/list","params":null}`},
		{"number id", jsonrpc.NewRequest(jsonrpc.IntID(42), "tools/call", map[string]any{"name": "x"}),
			`{"id":"2","method":"tools/call","params":{"name":"x"}}`},
		{"same id as the wire", jsonrpc.NewRequest(jsonrpc.IntID(3), "ping", map[string]any{}),
			`{"id":"3","method":"ping","params":{}}`},
		{"error response", jsonrpc.NewRequest(jsonrpc.ID(`"e"`), "fail", nil), ""},
	}
	a, _ := peers(t, ignore, echo)
	// The calls share one peer, in order: the wire ids are 1, 2, 3, ...
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := a.Call(context.Background(), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if string(resp.ID) != string(tt.req.ID) {
				t.Errorf("response id = %s, want the caller's %s", resp.ID, tt.req.ID)
			}
			if tt.result == "" {
				if resp.Error == nil || resp.Error.Code != jsonrpc.CodeInvalidParams || resp.Error.Message != "failed as asked" {
					t.Errorf("response = %s, want the handler's error", resp.Marshal())
				}
				return
			}
			if string(resp.Result) != tt.result {
				t.Errorf("result = %s, want %s", resp.Result, tt.result)
			}
		})
	}
	if string(tests[0].req.ID) != `"client-7"` {
		t.Errorf("Call changed the caller's request")
	}
}

func TestPeerNotify(t *testing.T) {
	got := make(chan *jsonrpc.Message, 4)
	sa, sb := pipe()
	b := NewPeer(sb, func(ctx context.Context, m *jsonrpc.Message) *jsonrpc.Message {
		if m.IsNotification() {
			got <- m
			return jsonrpc.NewResult(jsonrpc.IntID(5), map[string]any{"stray": true}) // must be ignored
		}
		return jsonrpc.NewResult(nil, map[string]any{"pong": true})
	})
	running(t, b)
	go func() {
		sa.Write(jsonrpc.NewNotification("notifications/initialized", map[string]any{"n": 1}))
		sa.Write(jsonrpc.NewNotification("notifications/progress", map[string]any{"n": 2}))
		sa.Write(jsonrpc.NewRequest(jsonrpc.IntID(5), "ping", nil))
	}()
	// Notifications are handled in order, before the request that follows them, and get
	// no response: the first thing b writes is the response to the request.
	for i, want := range []string{"notifications/initialized", "notifications/progress"} {
		if m := <-got; m.Method != want || string(m.Params) != fmt.Sprintf(`{"n":%d}`, i+1) {
			t.Errorf("handler got %s, want %s", m.Marshal(), want)
		}
	}
	m, err := sa.Read()
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"jsonrpc":"2.0","id":5,"result":{"pong":true}}`; string(m.Marshal()) != want {
		t.Errorf("b wrote %s, want %s", m.Marshal(), want)
	}
	// Notify sends a notification as it is.
	a := NewPeer(sa, ignore)
	go func() { a.Notify(jsonrpc.NewNotification("notifications/roots/list_changed", nil)) }()
	if m := <-got; m.Method != "notifications/roots/list_changed" || m.ID != nil {
		t.Errorf("Notify sent %s", m.Marshal())
	}
}

// TestPeerConcurrentHandlers checks that a request being handled does not hold up others.
func TestPeerConcurrentHandlers(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	a, _ := peers(t, ignore, func(ctx context.Context, m *jsonrpc.Message) *jsonrpc.Message {
		if m.Method == "slow" {
			close(entered)
			<-release
		}
		return jsonrpc.NewResult(nil, map[string]any{"method": m.Method})
	})
	slow := make(chan error, 1)
	go func() {
		resp, err := a.Call(context.Background(), jsonrpc.NewRequest(jsonrpc.IntID(1), "slow", nil))
		if err == nil && string(resp.Result) != `{"method":"slow"}` {
			err = errors.New("wrong result " + string(resp.Result))
		}
		slow <- err
	}()
	<-entered
	for range 3 {
		resp, err := a.Call(context.Background(), jsonrpc.NewRequest(jsonrpc.IntID(2), "fast", nil))
		if err != nil || string(resp.Result) != `{"method":"fast"}` {
			t.Fatalf("fast call while a slow one is handled: %v, %v", resp, err)
		}
	}
	select {
	case err := <-slow:
		t.Fatalf("the slow call finished before it was released: %v", err)
	default:
	}
	close(release)
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
}

// TestPeerCancel checks both ends of a cancellation: the caller's Call returns the cause
// and sends notifications/cancelled with the id the request had on the wire; the other
// side's handler sees its context cancelled.
func TestPeerCancel(t *testing.T) {
	type seen struct {
		id     string
		ctxErr error
	}
	started, handled := make(chan string, 1), make(chan seen, 1)
	cancels := make(chan *jsonrpc.Message, 1)
	a, _ := peers(t, ignore, func(ctx context.Context, m *jsonrpc.Message) *jsonrpc.Message {
		if m.Method == "notifications/cancelled" {
			cancels <- m
			return nil
		}
		started <- string(m.ID)
		<-ctx.Done()
		handled <- seen{string(m.ID), ctx.Err()}
		return jsonrpc.NewResult(nil, map[string]any{"late": true})
	})
	cause := errors.New("the user gave up")
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := a.Call(ctx, jsonrpc.NewRequest(jsonrpc.ID(`"mine"`), "tools/call", nil))
		done <- err
	}()
	wireID := <-started
	if wireID == `"mine"` {
		t.Fatalf("the request went out with the caller's id")
	}
	cancel(cause)
	if err := <-done; !errors.Is(err, cause) {
		t.Errorf("Call = %v, want the cause %v", err, cause)
	}
	h := <-handled
	if !errors.Is(h.ctxErr, context.Canceled) || h.id != wireID {
		t.Errorf("handler of %s ended with %v, want its context cancelled", h.id, h.ctxErr)
	}
	m := <-cancels
	if id, _ := jsonrpc.Lookup(m.Params, "requestId"); string(id) != wireID {
		t.Errorf("notifications/cancelled %s, want requestId %s", m.Params, wireID)
	}
	if reason, _ := jsonrpc.LookupString(m.Params, "reason"); reason != cause.Error() {
		t.Errorf("reason = %q, want %q", reason, cause.Error())
	}
}

// TestPeerCallCancelledBefore checks the wire for a Call whose context is already done:
// the request goes out (as the peer does today), then notifications/cancelled with the
// request's wire id.
func TestPeerCallCancelledBefore(t *testing.T) {
	sa, sb := pipe()
	a := NewPeer(sa, ignore)
	running(t, a)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	go func() {
		_, err := a.Call(ctx, jsonrpc.NewRequest(jsonrpc.ID(`"abc"`), "tools/call", map[string]any{"name": "x"}))
		done <- err
	}()
	req, err := sb.Read()
	if err != nil {
		t.Fatal(err)
	}
	if !req.IsRequest() || string(req.ID) == `"abc"` {
		t.Fatalf("first message %s, want the request with a wire id", req.Marshal())
	}
	note, err := sb.Read()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"reason":"context canceled","requestId":` + string(req.ID) + `}}`
	if string(note.Marshal()) != want {
		t.Errorf("got %s\nwant %s", note.Marshal(), want)
	}
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Call = %v, want context.Canceled", err)
	}
	// A response that comes after all is dropped, not delivered to a later call.
	if err := sb.Write(jsonrpc.NewResult(req.ID, map[string]any{"stale": true})); err != nil {
		t.Fatal(err)
	}
	go func() {
		m, err := sb.Read()
		if err == nil {
			sb.Write(jsonrpc.NewResult(m.ID, map[string]any{"fresh": true}))
		}
	}()
	resp, err := a.Call(context.Background(), jsonrpc.NewRequest(jsonrpc.IntID(9), "ping", nil))
	if err != nil || string(resp.Result) != `{"fresh":true}` {
		t.Errorf("next call got %v, %v", resp, err)
	}
}

// TestPeerClosed checks that Run returns when the stream ends, that pending calls fail
// with ErrClosed, and that the peer refuses new calls.
func TestPeerClosed(t *testing.T) {
	entered := make(chan struct{})
	handlerCtx := make(chan error, 1)
	sa, sb := pipe()
	a := NewPeer(sa, ignore)
	b := NewPeer(sb, func(ctx context.Context, m *jsonrpc.Message) *jsonrpc.Message {
		close(entered)
		<-ctx.Done()
		handlerCtx <- ctx.Err()
		return nil
	})
	runA, runB := running(t, a), running(t, b)
	pending := make(chan error, 1)
	go func() {
		_, err := a.Call(context.Background(), jsonrpc.NewRequest(jsonrpc.IntID(1), "forever", nil))
		pending <- err
	}()
	<-entered
	b.Close()

	if err := <-runA; !errors.Is(err, io.EOF) {
		t.Errorf("a.Run = %v, want io.EOF", err)
	}
	if err := <-pending; !errors.Is(err, ErrClosed) {
		t.Errorf("pending call = %v, want ErrClosed", err)
	}
	<-runB
	if err := <-handlerCtx; !errors.Is(err, context.Canceled) {
		t.Errorf("b's handler context = %v, want it cancelled when b stopped", err)
	}
	select {
	case <-a.Done():
	default:
		t.Error("a.Done() is open after Run returned")
	}
	if !errors.Is(a.Err(), io.EOF) {
		t.Errorf("a.Err() = %v, want io.EOF", a.Err())
	}
	if _, err := a.Call(context.Background(), jsonrpc.NewRequest(jsonrpc.IntID(2), "ping", nil)); !errors.Is(err, ErrClosed) {
		t.Errorf("Call after close = %v, want ErrClosed", err)
	}
	if err := a.Notify(jsonrpc.NewNotification("n", nil)); !errors.Is(err, ErrClosed) {
		t.Errorf("Notify after close = %v, want ErrClosed", err)
	}
}

// scripted is a Stream whose Read returns queued messages and then EOF.
type scripted struct {
	in      chan *jsonrpc.Message
	onWrite func(*jsonrpc.Message)
}

func (s *scripted) Read() (*jsonrpc.Message, error) {
	m, ok := <-s.in
	if !ok {
		return nil, io.EOF
	}
	return m, nil
}

func (s *scripted) Write(m *jsonrpc.Message) error { s.onWrite(m); return nil }
func (s *scripted) Close() error                   { return nil }

// TestPeerResponseThenClose: a server that answers and exits at once. Its response was
// read before the end of the stream, so the call gets it, not ErrClosed.
func TestPeerResponseThenClose(t *testing.T) {
	for range 50 {
		s := &scripted{in: make(chan *jsonrpc.Message, 1)}
		p := NewPeer(s, ignore)
		s.onWrite = func(m *jsonrpc.Message) {
			s.in <- jsonrpc.NewResult(m.ID, map[string]any{"last": "words"})
			close(s.in)
			<-p.Done() // the response and the end were both read before Call waits
		}
		go p.Run(context.Background())
		resp, err := p.Call(context.Background(), jsonrpc.NewRequest(jsonrpc.IntID(1), "ping", nil))
		if err != nil {
			t.Fatalf("Call = %v, want the response read before the stream ended", err)
		}
		if string(resp.Result) != `{"last":"words"}` {
			t.Fatalf("result = %s", resp.Result)
		}
	}
}

func TestPeerDecodeError(t *testing.T) {
	tests := []struct {
		name string
		line string
		id   string
		code int
		msg  string
	}{
		{"duplicate key", `{"jsonrpc":"2.0","id":7,"method":"a","method":"b"}`, "7", jsonrpc.CodeParseError, `duplicate object key "method"`},
		{"string id", `{"jsonrpc":"2.0","id":"x","method":"a","params":3}`, `"x"`, jsonrpc.CodeInvalidRequest, `"params" must be an object or an array`},
		{"truncated", `{"jsonrpc":"2.0","id":12,"method":"a","params":{`, "12", jsonrpc.CodeParseError, "parse error"},
		{"no id", `not json`, "null", jsonrpc.CodeParseError, "parse error"},
		{"bad id", `{"jsonrpc":"2.0","id":{"a":1},"method":"a"}`, "null", jsonrpc.CodeInvalidRequest, `"id" must be a string or a number`},
		{"batch", `[{"jsonrpc":"2.0","id":1,"method":"a"}]`, "null", jsonrpc.CodeInvalidRequest, "batch"},
		{"too long", `{"jsonrpc":"2.0","id":5,"method":"a","params":{"p":"` + strings.Repeat("x", 2<<10) + `"}}`, "null", jsonrpc.CodeInvalidRequest, "exceeds the limit of 1024 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, toPeer := io.Pipe()
			fromPeer, out := io.Pipe()
			p := NewPeer(NewLineStream(in, out, pipeEnd{in, out}, jsonrpc.Limits{MaxBytes: 1 << 10}), echo)
			running(t, p)
			t.Cleanup(func() { toPeer.Close(); fromPeer.Close() })
			replies := NewLineStream(fromPeer, io.Discard, nil, jsonrpc.Limits{})
			go io.WriteString(toPeer, tt.line+"\n"+`{"jsonrpc":"2.0","id":"after","method":"ping"}`+"\n")

			m, err := replies.Read()
			if err != nil {
				t.Fatal(err)
			}
			if string(m.ID) != tt.id || m.Error == nil || m.Error.Code != tt.code || !strings.Contains(m.Error.Message, tt.msg) {
				t.Errorf("reply %s, want id %s, code %d, message containing %q", m.Marshal(), tt.id, tt.code, tt.msg)
			}
			// The stream goes on.
			m, err = replies.Read()
			if err != nil || string(m.ID) != `"after"` || m.Error != nil {
				t.Errorf("reply to the next line: %v, %v", m, err)
			}
		})
	}
}

func TestPeerOnDecodeError(t *testing.T) {
	in, toPeer := io.Pipe()
	fromPeer, out := io.Pipe()
	p := NewPeer(NewLineStream(in, out, pipeEnd{in, out}, jsonrpc.Limits{}), echo)
	var mu sync.Mutex
	var got []*jsonrpc.DecodeError
	p.OnDecodeError = func(de *jsonrpc.DecodeError) {
		mu.Lock()
		got = append(got, de)
		mu.Unlock()
	}
	running(t, p)
	t.Cleanup(func() { toPeer.Close(); fromPeer.Close() })
	go io.WriteString(toPeer, `{"jsonrpc":"2.0","id":7,"method":"a","method":"b"}`+"\n"+`{"jsonrpc":"2.0","id":"after","method":"ping"}`+"\n")

	// Nothing is written for the bad line: the first reply is to the next one.
	m, err := NewLineStream(fromPeer, io.Discard, nil, jsonrpc.Limits{}).Read()
	if err != nil || string(m.ID) != `"after"` {
		t.Fatalf("first reply %v, %v; want the one to \"after\"", m, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || string(got[0].ID) != "7" || got[0].Code != jsonrpc.CodeParseError {
		t.Errorf("OnDecodeError got %+v", got)
	}
}

// TestPeerManyCalls runs calls from both sides at once.
func TestPeerManyCalls(t *testing.T) {
	a, b := peers(t, echo, echo)
	var wg sync.WaitGroup
	for i := range 20 {
		for _, p := range []*Peer{a, b} {
			wg.Go(func() {
				id := jsonrpc.IntID(int64(i))
				resp, err := p.Call(context.Background(), jsonrpc.NewRequest(id, "m", map[string]any{"i": i}))
				if err != nil {
					t.Error(err)
					return
				}
				var r struct{ Params struct{ I int } }
				if err := json.Unmarshal(resp.Result, &r); err != nil || r.Params.I != i || string(resp.ID) != string(id) {
					t.Errorf("call %d got %s", i, resp.Marshal())
				}
			})
		}
	}
	wg.Wait()
}
