package approval

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	trail "github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/identity"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
	"github.com/portcullis-mcp/portcullis/internal/store"
	"github.com/portcullis-mcp/portcullis/internal/store/sqlite"
)

func openStore(t testing.TB) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// client is a calling client: its capabilities and how it answers elicitation/create.
type client struct {
	caps   string
	answer func(ctx context.Context, m *jsonrpc.Message) (*jsonrpc.Message, error)
	asked  atomic.Int32
	mu     sync.Mutex
	last   *jsonrpc.Message
	notes  []*jsonrpc.Message // notifications sent to the client
}

func (c *client) Notify(ctx context.Context, m *jsonrpc.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.notes = append(c.notes, m)
	return nil
}

func (c *client) notifications() []*jsonrpc.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*jsonrpc.Message(nil), c.notes...)
}

func (c *client) Capabilities() json.RawMessage { return json.RawMessage(c.caps) }
func (c *client) Request(ctx context.Context, m *jsonrpc.Message) (*jsonrpc.Message, error) {
	c.asked.Add(1)
	c.mu.Lock()
	c.last = m
	c.mu.Unlock()
	if c.answer == nil {
		return nil, guard.ErrNoClientRequests
	}
	return c.answer(ctx, m)
}

func answering(result string) func(context.Context, *jsonrpc.Message) (*jsonrpc.Message, error) {
	return func(ctx context.Context, m *jsonrpc.Message) (*jsonrpc.Message, error) {
		return &jsonrpc.Message{ID: jsonrpc.IntID(1), Result: json.RawMessage(result)}, nil
	}
}

// never answers until the request is cancelled.
func never(ctx context.Context, m *jsonrpc.Message) (*jsonrpc.Message, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// upstream records the calls that reach it.
type upstream struct {
	mu    sync.Mutex
	calls []*guard.Call
}

func (u *upstream) Handle(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
	if err := guard.Unheld(c); err != nil {
		return nil, err
	}
	u.mu.Lock()
	u.calls = append(u.calls, c)
	u.mu.Unlock()
	return jsonrpc.NewResult(c.Msg.ID, map[string]any{"content": []any{}}), nil
}

func (u *upstream) n() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.calls)
}

func newGuard(t testing.TB, st store.Store, c Config) (guard.Handler, *upstream, *Guard) {
	t.Helper()
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	if c.PollInterval == 0 {
		c.PollInterval = 10 * time.Millisecond
	}
	g, err := Compile(c, Options{Store: st, Signer: NewSigner([]byte("0123456789abcdef0123456789abcdef"))})
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{}
	return g.Middleware()(u), u, g
}

var alice = identity.Principal{ID: "alice", Method: "apikey", Groups: []string{"dev"}}

func call(args string, cl guard.Client, holds ...guard.Hold) *guard.Call {
	if len(holds) == 0 {
		holds = []guard.Hold{{Guard: "authz", Reason: `rule "writes"`}}
	}
	params := `{"name":"write","arguments":` + args + `}`
	return &guard.Call{Msg: &jsonrpc.Message{ID: jsonrpc.IntID(7), Method: "tools/call", Params: json.RawMessage(params)},
		Direction: guard.Inbound, Session: "s1", Principal: alice, Server: "fs", Name: "write", Era: "legacy", Client: cl, Holds: holds}
}

func refusal(t *testing.T, err error) *guard.Refusal {
	t.Helper()
	var r *guard.Refusal
	if !errors.As(err, &r) {
		t.Fatalf("error = %v, want a refusal", err)
	}
	return r
}

// decisions runs h with audit notes and returns the decision events recorded.
func handle(h guard.Handler, c *guard.Call) (*jsonrpc.Message, error, []trail.Event) {
	n := &trail.Notes{}
	resp, err := h.Handle(trail.WithNotes(context.Background(), n), c)
	return resp, err, n.Decisions()
}

func only(t *testing.T, st store.Store) store.Approval {
	t.Helper()
	as, err := st.ListApprovals(context.Background(), "", 0)
	if err != nil || len(as) != 1 {
		t.Fatalf("approvals = %v, %v; want exactly one", as, err)
	}
	return as[0]
}

func TestNoHoldsPass(t *testing.T) {
	h, u, _ := newGuard(t, openStore(t), Config{})
	c := call(`{"p":1}`, nil)
	c.Holds = nil
	if _, err := h.Handle(context.Background(), c); err != nil || u.n() != 1 {
		t.Fatalf("err %v, upstream calls %d", err, u.n())
	}
}

func TestNoStoreRefuses(t *testing.T) {
	h, u, _ := newGuard(t, nil, Config{})
	_, err := h.Handle(context.Background(), call(`{}`, nil))
	if r := refusal(t, err); r.Code != jsonrpc.CodeApprovalRequired || u.n() != 0 {
		t.Fatalf("refusal %+v, upstream %d", r, u.n())
	}
}

func TestElicitation(t *testing.T) {
	for _, tc := range []struct {
		name     string
		answer   func(context.Context, *jsonrpc.Message) (*jsonrpc.Message, error)
		pass     bool
		status   string
		code     string
		approver string
	}{
		{"accept", answering(`{"action":"accept","content":{"scope":"once"}}`), true, store.ApprovalApproved, trail.CodeApproved, "alice via elicitation"},
		{"accept without content", answering(`{"action":"accept"}`), true, store.ApprovalApproved, trail.CodeApproved, "alice via elicitation"},
		{"decline", answering(`{"action":"decline"}`), false, store.ApprovalDenied, trail.CodeApprovalDenied, "alice via elicitation"},
		{"cancel", answering(`{"action":"cancel"}`), false, store.ApprovalDenied, trail.CodeApprovalDenied, "alice via elicitation"},
		{"no answer: timeout", never, false, store.ApprovalExpired, trail.CodeApprovalExpired, ""},
		{"client error: timeout", nil, false, store.ApprovalExpired, trail.CodeApprovalExpired, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t)
			h, u, _ := newGuard(t, st, Config{Timeout: 300 * time.Millisecond})
			cl := &client{caps: `{"elicitation":{}}`, answer: tc.answer}
			_, err, ds := handle(h, call(`{"path":"/etc/x","n":1}`, cl))
			if tc.pass != (err == nil) || tc.pass != (u.n() == 1) {
				t.Fatalf("err %v, upstream calls %d; want pass %v", err, u.n(), tc.pass)
			}
			if !tc.pass {
				if r := refusal(t, err); r.Code != jsonrpc.CodeDenied || r.Guard != Name {
					t.Errorf("refusal %+v", r)
				}
			}
			if cl.asked.Load() != 1 {
				t.Fatalf("client asked %d times", cl.asked.Load())
			}
			// The question shows the exact server, tool and arguments.
			var q struct {
				Message string `json:"message"`
			}
			json.Unmarshal(cl.last.Params, &q)
			for _, want := range []string{"Server: fs", "Tool: write", `{"n":1,"path":"/etc/x"}`, `rule "writes"`} {
				if !strings.Contains(q.Message, want) {
					t.Errorf("question %q lacks %q", q.Message, want)
				}
			}
			a := only(t, st)
			if a.Status != tc.status {
				t.Errorf("status %s, want %s", a.Status, tc.status)
			}
			if len(ds) != 1 || ds[0].Code != tc.code || ds[0].Approval != a.ID || ds[0].Approver != tc.approver {
				t.Errorf("audit decisions %+v, want one %s by %q", ds, tc.code, tc.approver)
			}
		})
	}
}

// An approver group means the caller may not approve through its client: the call waits
// for the store, settled from another process.
func TestApproversUseStore(t *testing.T) {
	for _, approve := range []bool{true, false} {
		st := openStore(t)
		h, u, _ := newGuard(t, st, Config{})
		cl := &client{caps: `{"elicitation":{}}`, answer: answering(`{"action":"accept"}`)}
		c := call(`{"x":1}`, cl, guard.Hold{Guard: "authz", Reason: "r", Approvers: []string{"secops"}})
		done := make(chan error, 1)
		go func() { _, err := h.Handle(context.Background(), c); done <- err }()
		a := waitPending(t, st)
		if a.Approvers[0] != "secops" {
			t.Errorf("approvers %v", a.Approvers)
		}
		// The caller itself may not approve.
		if _, err := Settle(context.Background(), st, a.ID, Decision{Approve: true, Approver: "alice", Via: "cli"}, time.Now()); err == nil {
			t.Fatal("the caller approved its own call although approvers are named")
		}
		if _, err := Settle(context.Background(), st, a.ID, Decision{Approve: approve, Approver: "bob", Via: "cli"}, time.Now()); err != nil {
			t.Fatal(err)
		}
		err := <-done
		if approve != (err == nil) || u.n() != map[bool]int{true: 1, false: 0}[approve] {
			t.Fatalf("approve %v: err %v, upstream %d", approve, err, u.n())
		}
		if cl.asked.Load() != 0 {
			t.Errorf("the client was asked although policy names approvers")
		}
	}
}

func waitPending(t *testing.T, st store.Store) store.Approval {
	t.Helper()
	for end := time.Now().Add(time.Minute); time.Now().Before(end); {
		as, _ := st.ListApprovals(context.Background(), store.ApprovalPending, 0)
		if len(as) > 0 {
			return as[0]
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("no pending approval")
	return store.Approval{}
}

// Grants: a session or duration approval releases later calls with the same binding only.
func TestGrants(t *testing.T) {
	for _, scope := range []string{store.ScopeOnce, store.ScopeSession, store.ScopeDuration} {
		t.Run(scope, func(t *testing.T) {
			st := openStore(t)
			h, u, _ := newGuard(t, st, Config{Timeout: 200 * time.Millisecond})
			done := make(chan error, 1)
			go func() { _, err := h.Handle(context.Background(), call(`{"a":1}`, nil)); done <- err }()
			a := waitPending(t, st)
			if _, err := Settle(context.Background(), st, a.ID, Decision{Approve: true, Scope: scope, For: time.Hour, Approver: "bob", Via: "cli"}, time.Now()); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			// Same arguments, same session: released by a session or duration grant.
			_, err, ds := handle(h, call(`{ "a" : 1 }`, nil))
			if scope == store.ScopeOnce {
				if err == nil {
					t.Fatal("a once approval released a second call")
				}
			} else if err != nil || len(ds) != 1 || ds[0].Code != trail.CodeApprovalGranted {
				t.Fatalf("second call: %v, decisions %+v", err, ds)
			}
			// Other arguments: never.
			if _, err := h.Handle(context.Background(), call(`{"a":2}`, nil)); err == nil {
				t.Fatal("an approval released a call with other arguments")
			}
			// Another principal: never.
			c := call(`{"a":1}`, nil)
			c.Principal = identity.Principal{ID: "mallory", Method: "apikey"}
			if _, err := h.Handle(context.Background(), c); err == nil {
				t.Fatal("an approval released another principal's call")
			}
			// Another session: only a duration grant.
			c = call(`{"a":1}`, nil)
			c.Session = "s2"
			_, err = h.Handle(context.Background(), c)
			if (err == nil) != (scope == store.ScopeDuration) {
				t.Fatalf("other session: %v", err)
			}
			want := map[string]int{store.ScopeOnce: 1, store.ScopeSession: 2, store.ScopeDuration: 3}[scope]
			if u.n() != want {
				t.Errorf("upstream saw %d calls, want %d", u.n(), want)
			}
		})
	}
}

func TestSettleChecks(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	now := time.Now()
	a := store.Approval{ID: "ap1", ApprovalBinding: store.ApprovalBinding{Principal: "alice"}, Status: store.ApprovalPending, CreatedAt: now, ExpiresAt: now.Add(time.Minute)}
	if err := st.CreateApproval(ctx, a); err != nil {
		t.Fatal(err)
	}
	for _, d := range []Decision{
		{Approve: true, Scope: "forever", Approver: "bob"},
		{Approve: true, Scope: store.ScopeDuration, Approver: "bob"},
		{Approve: true, Scope: store.ScopeDuration, For: 48 * time.Hour, Approver: "bob"},
		{Approve: true, Scope: store.ScopeSession, Approver: "bob"}, // no session
		{Approve: true},
	} {
		if _, err := Settle(ctx, st, "ap1", d, now); err == nil {
			t.Errorf("Settle(%+v) succeeded", d)
		}
	}
	if _, err := Settle(ctx, st, "ap1", Decision{Approver: "bob", Via: "cli"}, now); err != nil {
		t.Fatal(err)
	}
	if _, err := Settle(ctx, st, "ap1", Decision{Approve: true, Approver: "bob", Via: "cli"}, now); !errors.Is(err, store.ErrNotPending) {
		t.Errorf("second settlement: %v, want ErrNotPending", err)
	}
}

func TestArgumentsCanonical(t *testing.T) {
	m := func(p string) *jsonrpc.Message {
		return &jsonrpc.Message{Method: "tools/call", Params: json.RawMessage(p)}
	}
	a, _ := Arguments(m(`{"name":"t","arguments":{"b":[1,2],"a":"<x>"}}`))
	b, _ := Arguments(m(`{"arguments": { "a" : "<x>", "b" : [1, 2] }, "name":"t"}`))
	if string(a) != `{"a":"<x>","b":[1,2]}` || string(a) != string(b) {
		t.Errorf("canonical %s / %s", a, b)
	}
	c, _ := Arguments(m(`{"name":"t"}`))
	if string(c) != "{}" {
		t.Errorf("no arguments: %s", c)
	}
	if _, err := Arguments(m(`{"name":"t","arguments":[1]}`)); err == nil {
		t.Error("arguments that are not an object accepted")
	}
	r, _ := Arguments(&jsonrpc.Message{Method: "resources/read", Params: json.RawMessage(`{"uri":"file:///x","_meta":{"k":1},"requestState":"s"}`)})
	if string(r) != `{"uri":"file:///x"}` {
		t.Errorf("resources/read: %s", r)
	}
}

// The wait for a person does not count against the call's timeout (limits' call_timeout):
// a call approved after longer than that still reaches the server, with time left.
func TestHoldPausesCallTimeout(t *testing.T) {
	st := openStore(t)
	h, u, _ := newGuard(t, st, Config{})
	ctx, stop := guard.PausableTimeout(context.Background(), 200*time.Millisecond, errors.New("call timeout"))
	defer stop()
	done := make(chan error, 1)
	go func() { _, err := h.Handle(ctx, call(`{}`, nil)); done <- err }()
	a := waitPending(t, st)
	time.Sleep(500 * time.Millisecond) // longer than the call timeout
	if _, err := Settle(context.Background(), st, a.ID, Decision{Approve: true, Approver: "bob", Via: "cli"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil || u.n() != 1 {
		t.Fatalf("%v, upstream %d", err, u.n())
	}
}

// A held call whose request asked for progress is reported to its client as waiting, at
// once and then every progress_interval, with increasing progress; none is sent after it
// is released, and a request without a progress token gets none.
func TestHeldCallReportsProgress(t *testing.T) {
	for _, token := range []string{`"tok-1"`, `42`, ``} {
		st := openStore(t)
		h, u, _ := newGuard(t, st, Config{ProgressInterval: 20 * time.Millisecond})
		cl := &client{caps: `{}`}
		c := call(`{"x":1}`, cl, guard.Hold{Guard: "authz", Reason: `rule "deploys"`, Approvers: []string{"secops"}})
		if token != "" {
			c.Msg.Params = json.RawMessage(`{"name":"write","arguments":{"x":1},"_meta":{"progressToken":` + token + `}}`)
		}
		done := make(chan error, 1)
		go func() { _, err := h.Handle(context.Background(), c); done <- err }()
		a := waitPending(t, st)
		if token != "" {
			for end := time.Now().Add(time.Minute); len(cl.notifications()) < 3 && time.Now().Before(end); {
				time.Sleep(5 * time.Millisecond)
			}
		} else {
			time.Sleep(100 * time.Millisecond) // five intervals: nothing may come
		}
		if _, err := Settle(context.Background(), st, a.ID, Decision{Approve: true, Approver: "bob", Via: "cli"}, time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil || u.n() != 1 {
			t.Fatalf("token %s: err %v, upstream %d", token, err, u.n())
		}
		notes := cl.notifications()
		if token == "" {
			if len(notes) != 0 {
				t.Errorf("a request without a progress token got %d notifications", len(notes))
			}
			continue
		}
		if len(notes) < 3 {
			t.Fatalf("token %s: %d progress notifications, want at least 3", token, len(notes))
		}
		last := -1.0
		for _, n := range notes {
			var p struct {
				ProgressToken json.RawMessage `json:"progressToken"`
				Progress      float64         `json:"progress"`
				Total         float64         `json:"total"`
				Message       string          `json:"message"`
			}
			if err := json.Unmarshal(n.Params, &p); err != nil || n.Method != "notifications/progress" {
				t.Fatalf("notification %s %s: %v", n.Method, n.Params, err)
			}
			if string(p.ProgressToken) != token || p.Progress <= last || p.Total != 5 {
				t.Errorf("progress %s after %v, want token %s, increasing progress, total 5", n.Params, last, token)
			}
			for _, want := range []string{a.ID, "secops", `rule "deploys"`} {
				if !strings.Contains(p.Message, want) {
					t.Errorf("message %q lacks %q", p.Message, want)
				}
			}
			last = p.Progress
		}
		time.Sleep(60 * time.Millisecond)
		if after := cl.notifications(); len(after) != len(notes) {
			t.Errorf("%d progress notifications after the call was released", len(after)-len(notes))
		}
	}
}

// After a held call that reported progress is released, the server's own progress
// reports for its token count on from past the gateway's last one (progress and total
// moved), so the client sees progress increase across both; after the call ends, and
// for other tokens, the server's reports pass as they are.
func TestServerProgressContinuesAfterHeld(t *testing.T) {
	st := openStore(t)
	g, err := Compile(Config{Timeout: 5 * time.Second, PollInterval: 10 * time.Millisecond, ProgressInterval: 20 * time.Millisecond},
		Options{Store: st, Signer: NewSigner([]byte("0123456789abcdef0123456789abcdef"))})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var delivered []string // progress params that reached the client's side of the chain
	var chain guard.Handler
	progress := func(token string) {
		n := jsonrpc.NewNotification("notifications/progress", json.RawMessage(`{"progressToken":`+token+`,"progress":0,"total":2}`))
		if _, err := chain.Handle(context.Background(), &guard.Call{Msg: n, Direction: guard.Outbound, Session: "s1", Server: "fs"}); err != nil {
			t.Error(err)
		}
	}
	chain = g.Middleware()(guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
		if c.Direction == guard.Outbound {
			mu.Lock()
			delivered = append(delivered, string(c.Msg.Params))
			mu.Unlock()
			return nil, nil
		}
		progress(`"tok-7"`) // the server reports on the released call
		progress(`"other"`)
		return jsonrpc.NewResult(c.Msg.ID, map[string]any{"content": []any{}}), nil
	}))
	cl := &client{caps: `{}`}
	c := call(`{"x":1}`, cl, guard.Hold{Guard: "authz", Reason: "r", Approvers: []string{"secops"}})
	c.Msg.Params = json.RawMessage(`{"name":"write","arguments":{"x":1},"_meta":{"progressToken":"tok-7"}}`)
	done := make(chan error, 1)
	go func() { _, err := chain.Handle(context.Background(), c); done <- err }()
	a := waitPending(t, st)
	for end := time.Now().Add(time.Minute); len(cl.notifications()) < 3 && time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := Settle(context.Background(), st, a.ID, Decision{Approve: true, Approver: "bob", Via: "cli"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	progress(`"tok-7"`) // after the call ended

	notes := cl.notifications()
	var last struct{ Progress float64 }
	json.Unmarshal(notes[len(notes)-1].Params, &last)
	mu.Lock()
	defer mu.Unlock()
	if len(delivered) != 3 {
		t.Fatalf("delivered %q", delivered)
	}
	var moved struct {
		ProgressToken string
		Progress      float64
		Total         float64
	}
	json.Unmarshal([]byte(delivered[0]), &moved)
	if moved.ProgressToken != "tok-7" || moved.Progress <= last.Progress || moved.Total != moved.Progress+2 {
		t.Errorf("the server's report after the gateway's last (%v): %s", last.Progress, delivered[0])
	}
	if delivered[1] != `{"progressToken":"other","progress":0,"total":2}` || delivered[2] != `{"progressToken":"tok-7","progress":0,"total":2}` {
		t.Errorf("reports of another token, or after the call, were changed: %q", delivered[1:])
	}
}
