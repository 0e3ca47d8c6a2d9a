package limits_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/config"
	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/guards/limits"
	"github.com/portcullis-mcp/portcullis/internal/identity"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

var (
	alice = identity.Principal{ID: "alice", Method: "apikey"}
	bob   = identity.Principal{ID: "bob", Method: "apikey"}
)

func call(session string, p identity.Principal, method string) *guard.Call {
	return &guard.Call{
		Msg:       jsonrpc.NewRequest(jsonrpc.IntID(1), method, map[string]any{"name": "echo"}),
		Direction: guard.Inbound,
		Session:   session,
		Principal: p,
		Server:    "everything",
	}
}

// blocker is a next handler that holds "block" calls until released, one per release.
type blocker struct {
	entered chan struct{}
	release chan struct{}
}

func newBlocker() *blocker {
	return &blocker{entered: make(chan struct{}, 16), release: make(chan struct{})}
}

func (b *blocker) Handle(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
	if c.Msg.Method == "block" {
		b.entered <- struct{}{}
		select {
		case <-b.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return jsonrpc.NewResult(c.Msg.ID, map[string]any{"ok": true}), nil
}

type result struct {
	resp *jsonrpc.Message
	err  error
}

// start runs a call that blocks in next and returns once it has got there.
func start(t *testing.T, h guard.Handler, b *blocker, c *guard.Call) <-chan result {
	t.Helper()
	done := make(chan result, 1)
	go func() {
		resp, err := h.Handle(context.Background(), c)
		done <- result{resp, err}
	}()
	select {
	case <-b.entered:
	case r := <-done:
		t.Fatalf("call did not reach next: %v, %v", r.resp, r.err)
	}
	return done
}

// refusal checks that err is a refusal by the limits guard with code and data.limit.
func refusal(t *testing.T, err error, code int, limit string) *guard.Refusal {
	t.Helper()
	var r *guard.Refusal
	if !errors.As(err, &r) {
		t.Fatalf("err = %v (%T), want a *guard.Refusal", err, err)
	}
	if r.Guard != limits.Name || r.Code != code {
		t.Errorf("refusal by %s with code %d, want %s with %d", r.Guard, r.Code, limits.Name, code)
	}
	je, _ := guard.ErrorFor(err)
	var data map[string]any
	if err := json.Unmarshal(je.Data, &data); err != nil {
		t.Fatal(err)
	}
	if limit != "" && data["limit"] != limit {
		t.Errorf("data.limit = %v, want %q (data %s)", data["limit"], limit, je.Data)
	}
	return r
}

func passes(t *testing.T, h guard.Handler, c *guard.Call) {
	t.Helper()
	resp, err := h.Handle(context.Background(), c)
	if err != nil || resp == nil {
		t.Fatalf("call refused: %v, %v", resp, err)
	}
}

func TestConcurrency(t *testing.T) {
	tests := []struct {
		name         string
		first, other *guard.Call // other is a different session: it is not affected
	}{
		{"legacy sessions", call("s1", alice, "block"), call("s2", alice, "ping")},
		{"modern, keyed by principal", call("", alice, "block"), call("", bob, "ping")},
		{"modern, principal method counts", call("", alice, "block"), call("", identity.Principal{ID: "alice", Method: "oidc"}, "ping")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBlocker()
			h := mustNew(t, limits.Config{CallTimeout: time.Minute, MaxConcurrentPerSession: 2})(b)
			d1 := start(t, h, b, tt.first)
			d2 := start(t, h, b, tt.first)

			same := *tt.first
			same.Msg = jsonrpc.NewRequest(jsonrpc.IntID(3), "ping", nil)
			resp, err := h.Handle(context.Background(), &same)
			if resp != nil {
				t.Errorf("third call got a response")
			}
			r := refusal(t, err, jsonrpc.CodeLimitExceeded, "max_concurrent_per_session")
			if !strings.Contains(r.Message, "limit 2") {
				t.Errorf("message %q does not name the limit", r.Message)
			}
			if r.Data["retryAfterMs"] == nil {
				t.Errorf("refusal data %v has no retryAfterMs", r.Data)
			}

			other := *tt.other
			passes(t, h, &other)

			b.release <- struct{}{}
			var finished result
			var rest <-chan result
			select {
			case finished = <-d1:
				rest = d2
			case finished = <-d2:
				rest = d1
			}
			if finished.err != nil {
				t.Fatalf("blocked call failed: %v", finished.err)
			}
			passes(t, h, &same)

			b.release <- struct{}{}
			if r := <-rest; r.err != nil {
				t.Fatalf("blocked call failed: %v", r.err)
			}
			// Both have finished: the session may again have two in flight.
			d3 := start(t, h, b, tt.first)
			d4 := start(t, h, b, tt.first)
			close(b.release)
			<-d3
			<-d4
		})
	}
}

// TestConcurrencyReleasedOnError checks that a call that failed or panicked below no
// longer counts as in flight.
func TestConcurrencyReleasedOnError(t *testing.T) {
	tests := []struct {
		name string
		next guard.HandlerFunc
	}{
		{"error", func(context.Context, *guard.Call) (*jsonrpc.Message, error) { return nil, errors.New("upstream gone") }},
		{"panic", func(context.Context, *guard.Call) (*jsonrpc.Message, error) { panic("bug") }},
		{"jsonrpc error", func(_ context.Context, c *guard.Call) (*jsonrpc.Message, error) {
			return jsonrpc.NewError(c.Msg.ID, jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "no")), nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := guard.Safe("test", mustNew(t, limits.Config{CallTimeout: time.Minute, MaxConcurrentPerSession: 1})(tt.next))
			for range 3 {
				_, err := h.Handle(context.Background(), call("s", alice, "tools/call"))
				var r *guard.Refusal
				if errors.As(err, &r) && r.Guard == limits.Name {
					t.Fatalf("call refused by limits after an earlier one failed: %v", err)
				}
			}
		})
	}
}

func TestCallTimeout(t *testing.T) {
	var sawErr, sawCause error
	next := guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
		<-ctx.Done()
		sawErr, sawCause = ctx.Err(), context.Cause(ctx)
		return nil, ctx.Err()
	})
	h := mustNew(t, limits.Config{CallTimeout: 50 * time.Millisecond, MaxConcurrentPerSession: 1})(next)
	resp, err := h.Handle(context.Background(), call("s", alice, "tools/call"))
	if resp != nil {
		t.Errorf("a timed-out call got a response")
	}
	r := refusal(t, err, jsonrpc.CodeUpstreamTimeout, "call_timeout")
	for _, w := range []string{"call_timeout", `"everything"`, "50ms"} {
		if !strings.Contains(r.Message, w) {
			t.Errorf("message %q does not mention %s", r.Message, w)
		}
	}
	if !errors.Is(sawErr, context.DeadlineExceeded) {
		t.Errorf("next saw ctx.Err() = %v, want it cancelled by the deadline", sawErr)
	}
	if sawCause == nil || errors.Is(sawCause, context.DeadlineExceeded) {
		t.Errorf("next saw cause %v, want the guard's own", sawCause)
	}
	// The timed-out call no longer counts as in flight.
	h2 := mustNew(t, limits.Config{CallTimeout: time.Minute, MaxConcurrentPerSession: 1})(guard.HandlerFunc(
		func(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
			return jsonrpc.NewResult(c.Msg.ID, nil), nil
		}))
	passes(t, h2, call("s", alice, "tools/call"))
}

// TestClientCancelIsNotTimeout checks that a call the client cancelled is not reported as
// the server's timeout.
func TestClientCancelIsNotTimeout(t *testing.T) {
	next := guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	h := mustNew(t, limits.Config{CallTimeout: time.Hour, MaxConcurrentPerSession: 1})(next)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := h.Handle(ctx, call("s", alice, "tools/call"))
	var r *guard.Refusal
	if errors.As(err, &r) {
		t.Fatalf("client cancellation reported as refusal %v", r)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestSizeLimits(t *testing.T) {
	small := json.RawMessage(`{"name":"echo"}`)                               // 15 bytes
	big := json.RawMessage(`{"name":"echo","arguments":{"text":"aaaaaaaa"}}`) // 47 bytes
	tests := []struct {
		name       string
		cfg        limits.Config
		params     json.RawMessage
		result     json.RawMessage
		wantNext   bool
		wantRefuse string // substring of the message; "" passes
	}{
		{"no limits", limits.Config{}, big, big, true, ""},
		{"params within", limits.Config{MaxParamsBytes: 15}, small, big, true, ""},
		{"params over", limits.Config{MaxParamsBytes: 14}, small, big, false, "params of 15 bytes exceed the limit of 14 bytes"},
		{"result within", limits.Config{MaxResultBytes: 47}, big, big, true, ""},
		{"result over", limits.Config{MaxResultBytes: 46}, small, big, true, "result of 47 bytes exceeds the limit of 46 bytes"},
		{"both, params first", limits.Config{MaxParamsBytes: 10, MaxResultBytes: 10}, big, big, false, "params of 47 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reached := false
			next := guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
				reached = true
				return &jsonrpc.Message{ID: c.Msg.ID, Result: tt.result}, nil
			})
			tt.cfg.CallTimeout, tt.cfg.MaxConcurrentPerSession = time.Minute, 1
			h := mustNew(t, tt.cfg)(next)
			c := call("s", alice, "tools/call")
			c.Msg.Params = tt.params
			resp, err := h.Handle(context.Background(), c)
			if reached != tt.wantNext {
				t.Errorf("next reached = %v, want %v", reached, tt.wantNext)
			}
			if tt.wantRefuse == "" {
				if err != nil || string(resp.Result) != string(tt.result) {
					t.Fatalf("Handle = %v, %v; want the result", resp, err)
				}
				return
			}
			if resp != nil {
				t.Errorf("refused call got a response")
			}
			r := refusal(t, err, jsonrpc.CodeLimitExceeded, "")
			if !strings.Contains(r.Message, tt.wantRefuse) {
				t.Errorf("message %q, want %q", r.Message, tt.wantRefuse)
			}
			// The size limits are released too.
			if _, err := h.Handle(context.Background(), call("s", alice, "tools/call")); err != nil && strings.Contains(err.Error(), "in flight") {
				t.Errorf("a refused call still counts as in flight")
			}
		})
	}
}

// TestPassesUntouched checks that notifications, responses and outbound messages go to next
// as they are: no size limits, no deadline, not counted as in flight.
func TestPassesUntouched(t *testing.T) {
	big := json.RawMessage(`{"text":"` + strings.Repeat("x", 100) + `"}`)
	tests := []struct {
		name string
		msg  *jsonrpc.Message
		dir  guard.Direction
	}{
		{"inbound notification", jsonrpc.NewNotification("notifications/progress", big), guard.Inbound},
		{"inbound response", &jsonrpc.Message{ID: jsonrpc.IntID(9), Result: big}, guard.Inbound},
		{"outbound request", jsonrpc.NewRequest(jsonrpc.IntID(9), "sampling/createMessage", big), guard.Outbound},
		{"outbound notification", jsonrpc.NewNotification("notifications/tools/list_changed", big), guard.Outbound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBlocker()
			var got *guard.Call
			var gotCtx context.Context
			next := guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
				if c.Msg.Method == "block" {
					return b.Handle(ctx, c)
				}
				got, gotCtx = c, ctx
				return &jsonrpc.Message{ID: c.Msg.ID, Result: big}, nil
			})
			h := mustNew(t, limits.Config{CallTimeout: time.Minute, MaxConcurrentPerSession: 1, MaxParamsBytes: 10, MaxResultBytes: 10})(next)
			// The session's one slot is taken.
			held := call("s", alice, "block")
			held.Msg.Params = nil
			done := start(t, h, b, held)
			defer func() { close(b.release); <-done }()

			ctx := context.WithValue(context.Background(), struct{}{}, "mark")
			c := &guard.Call{Msg: tt.msg, Direction: tt.dir, Session: "s", Principal: alice}
			resp, err := h.Handle(ctx, c)
			if err != nil {
				t.Fatalf("Handle: %v", err)
			}
			if got != c {
				t.Errorf("next got %+v, want the call as it is", got)
			}
			if gotCtx != ctx {
				t.Errorf("next got a different context")
			}
			if string(resp.Result) != string(big) {
				t.Errorf("result changed to %s", resp.Result)
			}
		})
	}
}

// section parses a configuration with the given guards section and returns it as the
// limits guard gets it.
func section(t *testing.T, body string) map[string]guard.Config {
	t.Helper()
	yaml := "auth: none\nservers:\n  - name: a\n    url: http://127.0.0.1:1/mcp\nguards:\n  limits:" + body
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("Parse:\n%s\n%v", yaml, err)
	}
	out := map[string]guard.Config{}
	for name, s := range cfg.GuardSections() {
		out[name] = s
	}
	return out
}

func TestSetup(t *testing.T) {
	tests := []struct {
		name string
		body string // after "limits:"; "-" means no section at all
		want []string
	}{
		{"absent", "-", nil},
		{"empty", "", nil},
		{"partial", "\n    max_params_bytes: 64\n", nil},
		{"full", "\n    call_timeout: 5s\n    max_concurrent_per_session: 4\n    max_params_bytes: 64\n    max_result_bytes: 1024\n", nil},
		{"zero timeout", "\n    call_timeout: 0s\n", []string{"guard limits:", "call_timeout must be positive"}},
		{"negative timeout", "\n    call_timeout: -1s\n", []string{"call_timeout must be positive"}},
		{"bare zero timeout", "\n    call_timeout: 0\n", []string{"test.yaml:7:", "call_timeout"}},
		{"zero concurrency", "\n    max_concurrent_per_session: 0\n", []string{"max_concurrent_per_session must be at least 1"}},
		{"negative size", "\n    max_result_bytes: -1\n", []string{"must not be negative"}},
		{"two problems", "\n    call_timeout: 0s\n    max_concurrent_per_session: 0\n", []string{"call_timeout must be positive", "max_concurrent_per_session must be at least 1"}},
		{"unknown key", "\n    call_timeout: 5s\n    max_concurent_per_session: 4\n", []string{"test.yaml:8:", "guards.limits.max_concurent_per_session", "unknown field"}},
		{"not a mapping", " 5\n", []string{"test.yaml:6:", "guards.limits", "must be a mapping"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sections := map[string]guard.Config{}
			if tt.body != "-" {
				sections = section(t, tt.body)
			}
			h, names, err := guard.Build(guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
				return jsonrpc.NewResult(c.Msg.ID, nil), nil
			}), sections, guard.Env{})
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Build: %v", err)
				}
				if len(names) != 1 || names[0] != limits.Name {
					t.Errorf("chain = %v, want [limits] (the guard is on by default)", names)
				}
				passes(t, h, call("s", alice, "tools/call"))
				return
			}
			if err == nil {
				t.Fatalf("Build accepted %q", tt.body)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestSetupApplies checks that configured values reach the guard and missing ones keep
// their defaults.
func TestSetupApplies(t *testing.T) {
	b := newBlocker()
	h, _, err := guard.Build(b, section(t, "\n    max_concurrent_per_session: 1\n    max_params_bytes: 20\n"), guard.Env{})
	if err != nil {
		t.Fatal(err)
	}
	c := call("s", alice, "tools/call")
	c.Msg.Params = json.RawMessage(`{"name":"echo","arguments":{}}`)
	_, err = h.Handle(context.Background(), c)
	refusal(t, err, jsonrpc.CodeLimitExceeded, "")

	done := start(t, h, b, call("s", alice, "block"))
	_, err = h.Handle(context.Background(), call("s", alice, "ping"))
	refusal(t, err, jsonrpc.CodeLimitExceeded, "max_concurrent_per_session")
	close(b.release)
	<-done

	if err := limits.Defaults.Validate(); err != nil {
		t.Errorf("the defaults do not validate: %v", err)
	}
}

// TestConcurrencyRace hammers one session from many goroutines: at no time are more calls
// in next than the limit, and every call either passes or is refused by the limit.
func TestConcurrencyRace(t *testing.T) {
	const limit = 3
	var mu sync.Mutex
	in, peak := 0, 0
	next := guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
		mu.Lock()
		in++
		peak = max(peak, in)
		mu.Unlock()
		time.Sleep(time.Millisecond)
		mu.Lock()
		in--
		mu.Unlock()
		return jsonrpc.NewResult(c.Msg.ID, nil), nil
	})
	h := mustNew(t, limits.Config{CallTimeout: time.Minute, MaxConcurrentPerSession: limit})(next)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for range 10 {
				_, err := h.Handle(context.Background(), call("s", alice, "tools/call"))
				var r *guard.Refusal
				if err != nil && (!errors.As(err, &r) || r.Code != jsonrpc.CodeLimitExceeded) {
					t.Errorf("unexpected error %v", err)
				}
			}
		})
	}
	wg.Wait()
	if peak > limit {
		t.Errorf("%d calls were in next at once, limit %d", peak, limit)
	}
}

func BenchmarkLimits(b *testing.B) {
	next := guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) { return nil, nil })
	h := mustNew(b, limits.Config{CallTimeout: time.Minute, MaxConcurrentPerSession: 8, MaxParamsBytes: 1 << 20, MaxResultBytes: 1 << 20})(next)
	c := call("session", alice, "tools/call")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Handle(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
}

// mustNew builds the guard or fails the test.
func mustNew(t testing.TB, c limits.Config) guard.Middleware {
	t.Helper()
	mw, err := limits.New(c, limits.Options{})
	if err != nil {
		t.Fatalf("limits.New: %v", err)
	}
	return mw
}
