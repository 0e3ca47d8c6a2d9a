package limits_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/guards/limits"
	"github.com/portcullis-mcp/portcullis/internal/identity"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
	"github.com/portcullis-mcp/portcullis/internal/store"
	"github.com/portcullis-mcp/portcullis/internal/store/sqlite"
)

// clock is a clock the test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// noon is mid-day, UTC: twelve hours before the daily counters renew.
var noon = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

func openStore(t testing.TB) store.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "portcullis.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// gw is a limits guard over a server that answers every call, with a clock and a store.
type gw struct {
	h     guard.Handler
	clock *clock
	store store.Store
	calls atomic.Int64 // calls that reached the server
}

func newGW(t testing.TB, c limits.Config) *gw {
	t.Helper()
	g := &gw{clock: newClock(noon), store: openStore(t)}
	if c.CallTimeout == 0 {
		c.CallTimeout = time.Minute
	}
	if c.MaxConcurrentPerSession == 0 {
		c.MaxConcurrentPerSession = 1000
	}
	mw, err := limits.New(c, limits.Options{Quotas: g.store, Now: g.clock.Now})
	if err != nil {
		t.Fatalf("limits.New: %v", err)
	}
	g.h = mw(guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
		g.calls.Add(1)
		return jsonrpc.NewResult(c.Msg.ID, map[string]any{"ok": true}), nil
	}))
	return g
}

// toolCall is a tools/call of server's tool by p with the given arguments.
func toolCall(p identity.Principal, server, tool string, args string) *guard.Call {
	params := json.RawMessage(fmt.Sprintf(`{"name":%q,"arguments":%s}`, tool, args))
	return &guard.Call{Msg: &jsonrpc.Message{ID: jsonrpc.IntID(1), Method: "tools/call", Params: params},
		Direction: guard.Inbound, Session: "s-" + p.ID, Principal: p, Server: server, Name: tool}
}

// outcome is what a call got: "" when it passed, else the refusal's data.limit.
func (g *gw) do(t testing.TB, c *guard.Call) (string, map[string]any) {
	t.Helper()
	_, err := g.h.Handle(context.Background(), c)
	if err == nil {
		return "", nil
	}
	var r *guard.Refusal
	if !errors.As(err, &r) || r.Guard != limits.Name {
		t.Fatalf("error %v is not a refusal by limits", err)
	}
	je, _ := guard.ErrorFor(err)
	var data map[string]any
	if err := json.Unmarshal(je.Data, &data); err != nil {
		t.Fatal(err)
	}
	data["message"] = r.Message
	limit, _ := data["limit"].(string)
	return limit, data
}

// expect runs the call and checks the outcome: want "" passes, else the limit refusing it
// and (when retryMs >= 0) its retryAfterMs.
func (g *gw) expect(t testing.TB, c *guard.Call, want string, retryMs int64) map[string]any {
	t.Helper()
	got, data := g.do(t, c)
	if got != want {
		t.Fatalf("%s %s by %s: refused by %q, want %q (%v)", c.Msg.Method, c.Name, c.Principal.ID, got, want, data)
	}
	if want != "" && retryMs >= 0 {
		if ms, _ := data["retryAfterMs"].(float64); int64(ms) != retryMs {
			t.Errorf("%s refusal: retryAfterMs = %v, want %d (%v)", want, data["retryAfterMs"], retryMs, data)
		}
	}
	return data
}

var (
	carol = identity.Principal{ID: "carol", Method: "apikey", Groups: []string{"interns"}}
	dave  = identity.Principal{ID: "dave", Method: "oidc", Groups: []string{"eng", "oncall"}}
)

func TestRate(t *testing.T) {
	tests := []struct {
		name    string
		rule    limits.Rule
		other   *guard.Call // not limited by alice's use
		sharing *guard.Call // shares alice's bucket
	}{
		{"per principal", limits.Rule{Name: "r", Rate: "2/s"}, toolCall(bob, "gh", "echo", "{}"), nil},
		{"per principal and tool", limits.Rule{Name: "r", Rate: "2/s", Per: []string{"principal", "tool"}}, toolCall(alice, "gh", "other", "{}"), nil},
		{"one bucket for all", limits.Rule{Name: "r", Rate: "2/s", Per: []string{}}, nil, toolCall(bob, "fs", "echo", "{}")},
		{"per server", limits.Rule{Name: "r", Rate: "2/s", Per: []string{"server"}, Servers: []string{"g*"}}, toolCall(alice, "fs", "echo", "{}"), toolCall(bob, "gh", "x", "{}")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGW(t, limits.Config{Rules: []limits.Rule{tt.rule}})
			c := toolCall(alice, "gh", "echo", "{}")
			g.expect(t, c, "", 0)
			g.expect(t, c, "", 0)
			data := g.expect(t, c, "rate", 500) // 2/s: a token every 500ms
			if data["rule"] != "r" || !strings.Contains(data["message"].(string), `limits rule "r": 2/s, burst 2`) {
				t.Errorf("refusal does not name the rule and rate: %v", data)
			}
			if tt.other != nil {
				g.expect(t, tt.other, "", 0)
			}
			if tt.sharing != nil {
				g.expect(t, tt.sharing, "rate", 500)
			}
			g.clock.Advance(200 * time.Millisecond)
			g.expect(t, c, "rate", 300)
			g.clock.Advance(300 * time.Millisecond)
			g.expect(t, c, "", 0)
			g.expect(t, c, "rate", 500)
			// A long pause refills the bucket to its burst, no more.
			g.clock.Advance(time.Hour)
			g.expect(t, c, "", 0)
			g.expect(t, c, "", 0)
			g.expect(t, c, "rate", 500)
		})
	}
}

func TestRateBurst(t *testing.T) {
	g := newGW(t, limits.Config{Rules: []limits.Rule{{Name: "hourly", Rate: "60/h", Burst: 3}}})
	c := toolCall(alice, "gh", "echo", "{}")
	for range 3 {
		g.expect(t, c, "", 0)
	}
	g.expect(t, c, "rate", 60000) // one a minute
	if n := g.calls.Load(); n != 3 {
		t.Errorf("the server saw %d calls, want 3", n)
	}
}

func TestRuleConcurrency(t *testing.T) {
	b := newBlocker()
	blockCall := func(p identity.Principal) *guard.Call {
		c := toolCall(p, "gh", "block", "{}")
		c.Msg.Method = "block" // the blocker holds calls of method "block"
		return c
	}
	// The rule covers the blocker's method as well as tools/call.
	mw, err := limits.New(limits.Config{CallTimeout: time.Minute, MaxConcurrentPerSession: 100,
		Rules: []limits.Rule{{Name: "slow", Tools: []string{"block"}, Methods: []string{"block", "tools/call"}, Concurrency: 2}}}, limits.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := mw(b)
	d1 := start(t, h, b, blockCall(alice))
	d2 := start(t, h, b, blockCall(alice))
	_, err = h.Handle(context.Background(), toolCall(alice, "gh", "block", "{}"))
	r := refusal(t, err, jsonrpc.CodeLimitExceeded, "concurrency")
	if r.Data["retryAfterMs"] == nil || r.Data["rule"] != "slow" || !strings.Contains(r.Message, "allows 2 at once") {
		t.Errorf("refusal %q %v", r.Message, r.Data)
	}
	// Another principal, and another tool, are not affected.
	d3 := start(t, h, b, blockCall(bob))
	passes(t, h, toolCall(alice, "gh", "echo", "{}"))
	b.release <- struct{}{}
	b.release <- struct{}{}
	b.release <- struct{}{}
	for _, d := range []<-chan result{d1, d2, d3} {
		if r := <-d; r.err != nil {
			t.Fatal(r.err)
		}
	}
	// Both ended: alice may have two in flight again.
	d1 = start(t, h, b, blockCall(alice))
	d2 = start(t, h, b, blockCall(alice))
	close(b.release)
	<-d1
	<-d2
}

// TestDailyCalls: a quota runs out mid-day, refusals say when it renews, and the next day
// (by the clock, not by sleeping) it is whole again.
func TestDailyCalls(t *testing.T) {
	g := newGW(t, limits.Config{Rules: []limits.Rule{{Name: "daily", Servers: []string{"gh"}, DailyCalls: 3}}})
	c := toolCall(alice, "gh", "echo", "{}")
	for range 3 {
		g.expect(t, c, "", 0)
	}
	data := g.expect(t, c, "daily_calls", 12*3600*1000)
	if data["used"] != 3.0 || data["cap"] != 3.0 || !strings.Contains(data["message"].(string), "renews at midnight UTC, in 12h0m0s") {
		t.Errorf("refusal data %v", data)
	}
	g.clock.Advance(11*time.Hour + 59*time.Minute)
	g.expect(t, c, "daily_calls", 60*1000)
	g.expect(t, toolCall(bob, "gh", "echo", "{}"), "", 0)   // bob's own quota
	g.expect(t, toolCall(alice, "fs", "echo", "{}"), "", 0) // another server: no rule
	g.clock.Advance(time.Minute)                            // midnight
	for range 3 {
		g.expect(t, c, "", 0)
	}
	g.expect(t, c, "daily_calls", 24*3600*1000)
	if n := g.calls.Load(); n != 8 {
		t.Errorf("the server saw %d calls, want 8", n)
	}
}

func TestDayZone(t *testing.T) {
	// 12:00 UTC is 21:00 in Tokyo: three hours until the day renews there.
	g := newGW(t, limits.Config{DayZone: "Asia/Tokyo", Rules: []limits.Rule{{Name: "daily", DailyCalls: 1}}})
	c := toolCall(alice, "gh", "echo", "{}")
	g.expect(t, c, "", 0)
	g.expect(t, c, "daily_calls", 3*3600*1000)
	g.clock.Advance(3 * time.Hour)
	g.expect(t, c, "", 0)
}

// TestDailyBudget: tools cost units; a principal's budget runs out mid-day on an
// expensive call while a cheap one still fits, then on the cheap one.
func TestDailyBudget(t *testing.T) {
	g := newGW(t, limits.Config{Rules: []limits.Rule{
		{Name: "images", Tools: []string{"generate_*"}, Cost: 4},
		{Name: "wallet", DailyBudget: 10},
	}})
	image, echo := toolCall(alice, "ai", "generate_image", "{}"), toolCall(alice, "ai", "echo", "{}")
	g.expect(t, image, "", 0) // 4
	g.expect(t, image, "", 0) // 8
	data := g.expect(t, image, "daily_budget", 12*3600*1000)
	if data["rule"] != "wallet" || data["cost"] != 4.0 || data["used"] != 8.0 || data["cap"] != 10.0 ||
		!strings.Contains(data["message"].(string), "costs 4 units and 2 of 10 are left today") {
		t.Errorf("refusal data %v", data)
	}
	g.expect(t, echo, "", 0) // 9
	g.expect(t, echo, "", 0) // 10
	g.expect(t, echo, "daily_budget", 12*3600*1000)
	g.expect(t, toolCall(bob, "ai", "generate_image", "{}"), "", 0)
	got, err := g.store.ListQuotas(context.Background(), "2026-12-03")
	if err != nil {
		t.Fatal(err)
	}
	want := []store.QuotaCount{{Key: "wallet/units/p=apikey:alice", N: 10}, {Key: "wallet/units/p=apikey:bob", N: 4}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("counters %v, want %v", got, want)
	}
	g.clock.Advance(12 * time.Hour)
	g.expect(t, image, "", 0)
}

func TestBudgetBelowCost(t *testing.T) {
	g := newGW(t, limits.Config{Rules: []limits.Rule{{Name: "tiny", Cost: 5, DailyBudget: 3}}})
	data := g.expect(t, toolCall(alice, "ai", "x", "{}"), "daily_budget", -1)
	if _, ok := data["retryAfterMs"]; ok || !strings.Contains(data["message"].(string), "can never be admitted") {
		t.Errorf("a call that costs more than the budget: %v", data)
	}
}

// TestDailyAllOrNone: a call refused by one counter does not use up another.
func TestDailyAllOrNone(t *testing.T) {
	g := newGW(t, limits.Config{Rules: []limits.Rule{
		{Name: "calls", DailyCalls: 100},
		{Name: "wallet", Tools: []string{"big"}, Cost: 6, DailyBudget: 10},
	}})
	g.expect(t, toolCall(alice, "ai", "big", "{}"), "", 0)
	g.expect(t, toolCall(alice, "ai", "big", "{}"), "daily_budget", -1)
	got, _ := g.store.ListQuotas(context.Background(), "2026-12-03")
	if fmt.Sprint(got) != fmt.Sprint([]store.QuotaCount{{Key: "calls/calls/p=apikey:alice", N: 1}, {Key: "wallet/units/p=apikey:alice", N: 6}}) {
		t.Errorf("counters after a refused call: %v", got)
	}
}

// TestRefundOnLaterRefusal: a call a later guard refused never reached the server, and
// does not count against the day.
func TestRefundOnLaterRefusal(t *testing.T) {
	s := openStore(t)
	mw, err := limits.New(limits.Config{CallTimeout: time.Minute, MaxConcurrentPerSession: 10,
		Rules: []limits.Rule{{Name: "daily", DailyCalls: 2}}}, limits.Options{Quotas: s, Now: newClock(noon).Now})
	if err != nil {
		t.Fatal(err)
	}
	deny := true
	h := mw(guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
		if deny {
			return nil, guard.Deny("authz", jsonrpc.CodeDenied, "no")
		}
		return jsonrpc.NewResult(c.Msg.ID, nil), nil
	}))
	for range 5 {
		_, err := h.Handle(context.Background(), toolCall(alice, "gh", "x", "{}"))
		var r *guard.Refusal
		if !errors.As(err, &r) || r.Guard != "authz" {
			t.Fatalf("want authz's refusal, got %v", err)
		}
	}
	deny = false
	passes(t, h, toolCall(alice, "gh", "x", "{}"))
	passes(t, h, toolCall(alice, "gh", "x", "{}"))
	_, err = h.Handle(context.Background(), toolCall(alice, "gh", "x", "{}"))
	refusal(t, err, jsonrpc.CodeLimitExceeded, "daily_calls")
}

// brokenQuotas is a store that cannot count.
type brokenQuotas struct{ store.Quotas }

func (brokenQuotas) AddQuotas(context.Context, string, []store.QuotaAdd) ([]int64, bool, error) {
	return nil, false, errors.New("connection refused")
}

func (brokenQuotas) PruneQuotas(context.Context, string) (int, error) {
	return 0, errors.New("connection refused")
}

func TestStoreDownFailsClosed(t *testing.T) {
	mw, err := limits.New(limits.Config{CallTimeout: time.Minute, MaxConcurrentPerSession: 10,
		Rules: []limits.Rule{{Name: "daily", DailyCalls: 2}}}, limits.Options{Quotas: brokenQuotas{}})
	if err != nil {
		t.Fatal(err)
	}
	reached := false
	h := mw(guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
		reached = true
		return jsonrpc.NewResult(c.Msg.ID, nil), nil
	}))
	_, err = h.Handle(context.Background(), toolCall(alice, "gh", "x", "{}"))
	r := refusal(t, err, jsonrpc.CodeGatewayError, "store")
	if reached || r.Incident == "" || strings.Contains(r.Message, "connection refused") {
		t.Errorf("reached %v, refusal %q %v", reached, r.Message, r.Data)
	}
	// A call no daily rule selects does not need the store.
	passes(t, h, &guard.Call{Msg: jsonrpc.NewRequest(jsonrpc.IntID(2), "ping", nil), Direction: guard.Inbound, Principal: alice})
}

func TestRuleResultSizeAndTimeout(t *testing.T) {
	big := json.RawMessage(`{"content":[{"type":"text","text":"` + strings.Repeat("x", 100) + `"}]}`)
	mw, err := limits.New(limits.Config{CallTimeout: time.Minute, MaxConcurrentPerSession: 10, MaxResultBytes: 1000,
		Rules: []limits.Rule{
			{Name: "small", Tools: []string{"read_*"}, MaxResultBytes: 50},
			{Name: "quick", Tools: []string{"slow"}, Timeout: 20 * time.Millisecond},
		}}, limits.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := mw(guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
		if c.Name == "slow" {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return &jsonrpc.Message{ID: c.Msg.ID, Result: big}, nil
	}))
	_, err = h.Handle(context.Background(), toolCall(alice, "fs", "read_file", "{}"))
	r := refusal(t, err, jsonrpc.CodeLimitExceeded, "max_result_bytes")
	if r.Data["rule"] != "small" || !strings.Contains(r.Message, "limit of 50 bytes") {
		t.Errorf("refusal %q %v", r.Message, r.Data)
	}
	passes(t, h, toolCall(alice, "fs", "list", "{}")) // the global 1000 bytes
	_, err = h.Handle(context.Background(), toolCall(alice, "fs", "slow", "{}"))
	r = refusal(t, err, jsonrpc.CodeUpstreamTimeout, "timeout")
	if r.Data["rule"] != "quick" || !strings.Contains(r.Message, "20ms") {
		t.Errorf("refusal %q %v", r.Message, r.Data)
	}
}

func TestSelects(t *testing.T) {
	tests := []struct {
		name string
		rule limits.Rule
		call *guard.Call
		want bool
	}{
		{"everyone, any tool", limits.Rule{}, toolCall(alice, "gh", "x", "{}"), true},
		{"principal id", limits.Rule{Principals: []string{"ali*"}}, toolCall(alice, "gh", "x", "{}"), true},
		{"principal id, other", limits.Rule{Principals: []string{"ali*"}}, toolCall(bob, "gh", "x", "{}"), false},
		{"group", limits.Rule{Groups: []string{"interns"}}, toolCall(carol, "gh", "x", "{}"), true},
		{"group, not a member", limits.Rule{Groups: []string{"interns"}}, toolCall(dave, "gh", "x", "{}"), false},
		{"id or group", limits.Rule{Principals: []string{"alice"}, Groups: []string{"on*"}}, toolCall(dave, "gh", "x", "{}"), true},
		{"server", limits.Rule{Servers: []string{"gh"}}, toolCall(alice, "fs", "x", "{}"), false},
		{"tool glob", limits.Rule{Tools: []string{"create_*", "delete_*"}}, toolCall(alice, "gh", "delete_repo", "{}"), true},
		{"tool glob, other", limits.Rule{Tools: []string{"create_*"}}, toolCall(alice, "gh", "list", "{}"), false},
		{"tools/call by default, not ping", limits.Rule{}, &guard.Call{Msg: jsonrpc.NewRequest(jsonrpc.IntID(1), "ping", nil), Direction: guard.Inbound, Principal: alice}, false},
		{"methods", limits.Rule{Methods: []string{"resources/*"}}, &guard.Call{Msg: jsonrpc.NewRequest(jsonrpc.IntID(1), "resources/read", map[string]any{"uri": "file:///a"}), Direction: guard.Inbound, Principal: alice, Server: "fs", Name: "file:///a"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.rule.Name, tt.rule.DailyCalls = "r", 1
			g := newGW(t, limits.Config{Rules: []limits.Rule{tt.rule}})
			g.expect(t, tt.call, "", 0)
			want := ""
			if tt.want {
				want = "daily_calls"
			}
			g.expect(t, tt.call, want, -1)
		})
	}
}

func TestLoop(t *testing.T) {
	g := newGW(t, limits.Config{Loop: &limits.Loop{Calls: 3, Window: 10 * time.Second, Cooldown: time.Minute}})
	same := func(args string) *guard.Call { return toolCall(alice, "fs", "read_file", args) }
	g.expect(t, same(`{"path":"/a"}`), "", 0)
	g.clock.Advance(4 * time.Second)
	g.expect(t, same(`{ "path" : "/a" }`), "", 0) // the same arguments, spaced out
	g.expect(t, same(`{"path":"/b"}`), "", 0)     // other arguments
	g.expect(t, toolCall(bob, "fs", "read_file", `{"path":"/a"}`), "", 0)
	g.expect(t, toolCall(alice, "gh", "read_file", `{"path":"/a"}`), "", 0)

	notes := &audit.Notes{}
	ctx := audit.WithNotes(context.Background(), notes)
	_, err := g.h.Handle(ctx, same(`{"path":"/a"}`)) // the third within 10s
	r := refusal(t, err, jsonrpc.CodeLimitExceeded, "loop")
	if r.Data["retryAfterMs"] != int64(60000) || !strings.Contains(r.Message, "3 times within 10s") {
		t.Errorf("loop refusal %q %v", r.Message, r.Data)
	}
	fs := notes.Findings()
	if len(fs) != 1 || fs[0].Detector != "limits" || fs[0].Rule != "loop" || fs[0].Severity != "high" || !strings.Contains(fs[0].Message, `"alice"`) {
		t.Errorf("loop alert findings %+v", fs)
	}
	// Cooling down: the same call stays refused (no second alert); others pass.
	g.clock.Advance(30 * time.Second)
	notes2 := &audit.Notes{}
	_, err = g.h.Handle(audit.WithNotes(context.Background(), notes2), same(`{"path":"/a"}`))
	if r := refusal(t, err, jsonrpc.CodeLimitExceeded, "loop"); r.Data["retryAfterMs"] != int64(30000) {
		t.Errorf("during the cool-down: %v", r.Data)
	}
	if len(notes2.Findings()) != 0 {
		t.Errorf("a second alert during the cool-down: %+v", notes2.Findings())
	}
	g.expect(t, same(`{"path":"/b"}`), "", 0)
	g.clock.Advance(30 * time.Second)
	g.expect(t, same(`{"path":"/a"}`), "", 0)
	// Calls spread wider than the window are no loop.
	for range 10 {
		g.clock.Advance(6 * time.Second)
		g.expect(t, same(`{"path":"/c"}`), "", 0)
	}
	if n := g.calls.Load(); n != 17 {
		t.Errorf("the server saw %d calls, want 17", n)
	}
}

// TestHoldUnder64 runs 64 sessions at once against a rate burst, a rule's concurrency and
// a daily quota: each admits exactly its number, never more.
func TestHoldUnder64(t *testing.T) {
	tests := []struct {
		name  string
		rule  limits.Rule
		want  int64
		limit string
	}{
		{"daily quota", limits.Rule{Name: "q", DailyCalls: 10, Per: []string{}}, 10, "daily_calls"},
		{"daily budget", limits.Rule{Name: "b", Cost: 3, DailyBudget: 30, Per: []string{}}, 10, "daily_budget"},
		{"rate burst", limits.Rule{Name: "r", Rate: "1/h", Burst: 10, Per: []string{}}, 10, "rate"},
		{"concurrency", limits.Rule{Name: "c", Concurrency: 10, Per: []string{}}, 10, "concurrency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t)
			mw, err := limits.New(limits.Config{CallTimeout: time.Minute, MaxConcurrentPerSession: 10, Rules: []limits.Rule{tt.rule}},
				limits.Options{Quotas: s, Now: newClock(noon).Now})
			if err != nil {
				t.Fatal(err)
			}
			release := make(chan struct{})
			var reached atomic.Int64
			h := mw(guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
				reached.Add(1)
				<-release // every admitted call stays in flight until all were tried
				return jsonrpc.NewResult(c.Msg.ID, nil), nil
			}))
			var wg sync.WaitGroup
			var refused atomic.Int64
			begin := make(chan struct{})
			for i := range 64 {
				wg.Go(func() {
					p := identity.Principal{ID: fmt.Sprintf("user%d", i), Method: "apikey"}
					<-begin
					_, err := h.Handle(context.Background(), toolCall(p, "gh", "x", "{}"))
					if err != nil {
						refused.Add(1)
						var r *guard.Refusal
						if !errors.As(err, &r) || r.Data["limit"] != tt.limit {
							t.Errorf("session %d: %v", i, err)
						}
					}
				})
			}
			close(begin)
			// Wait until every call was admitted (and waits) or refused.
			for reached.Load()+refused.Load() < 64 && reached.Load() <= tt.want {
				time.Sleep(time.Millisecond)
			}
			close(release)
			wg.Wait()
			if got := reached.Load(); got != tt.want {
				t.Errorf("%d of 64 concurrent calls reached the server, want exactly %d", got, tt.want)
			}
		})
	}
}

// TestPruneOldDays: when a day starts, counters older than a week are removed.
func TestPruneOldDays(t *testing.T) {
	g := newGW(t, limits.Config{Rules: []limits.Rule{{Name: "daily", DailyCalls: 5}}})
	ctx := context.Background()
	for _, day := range []string{"2026-11-20", "2026-11-26", "2026-11-27"} {
		if _, _, err := g.store.AddQuotas(ctx, day, []store.QuotaAdd{{Key: "daily/calls/p=apikey:alice", N: 1, Cap: -1}}); err != nil {
			t.Fatal(err)
		}
	}
	g.expect(t, toolCall(alice, "gh", "x", "{}"), "", 0) // the first call of 2026-12-03
	deadline := time.Now().Add(30 * time.Second)
	for {
		old, _ := g.store.ListQuotas(ctx, "2026-11-20")
		kept, _ := g.store.ListQuotas(ctx, "2026-11-26")
		if len(old) == 0 && len(kept) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a day started: 2026-11-20 has %v, 2026-11-26 has %v; want the first pruned, the second kept", old, kept)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReloadKeepsCounters: a configuration reload builds a new chain; it takes over the
// buckets and calls in flight of the rules it keeps, so a reload neither refills buckets
// nor admits calls beyond a concurrency bound. A changed rate starts a fresh bucket.
func TestReloadKeepsCounters(t *testing.T) {
	s := openStore(t)
	clk := newClock(noon)
	b := newBlocker()
	build := func(rules ...limits.Rule) guard.Handler {
		t.Helper()
		mw, err := limits.New(limits.Config{CallTimeout: time.Minute, MaxConcurrentPerSession: 100, Rules: rules}, limits.Options{Quotas: s, Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		return mw(b)
	}
	rate := limits.Rule{Name: "rate", Tools: []string{"echo"}, Rate: "1/h", Burst: 1}
	conc := limits.Rule{Name: "conc", Tools: []string{"block"}, Methods: []string{"block"}, Concurrency: 1}
	old := build(rate, conc)
	passes(t, old, toolCall(alice, "gh", "echo", "{}"))
	held := toolCall(alice, "gh", "block", "{}")
	held.Msg.Method = "block"
	done := start(t, old, b, held)

	reloaded := build(conc, rate) // the same rules, in another order
	_, err := reloaded.Handle(context.Background(), toolCall(alice, "gh", "echo", "{}"))
	refusal(t, err, jsonrpc.CodeLimitExceeded, "rate")
	again := *held
	_, err = reloaded.Handle(context.Background(), &again)
	refusal(t, err, jsonrpc.CodeLimitExceeded, "concurrency")

	// The call on the old chain ends: its slot is free for the new chain.
	b.release <- struct{}{}
	if r := <-done; r.err != nil {
		t.Fatal(r.err)
	}
	done = start(t, reloaded, b, held)
	close(b.release)
	<-done

	// A new rate is a new bucket.
	rate.Rate = "2/h"
	passes(t, build(rate), toolCall(alice, "gh", "echo", "{}"))
	// Another store (another gateway in the same process) has its own counters.
	mw, err := limits.New(limits.Config{CallTimeout: time.Minute, MaxConcurrentPerSession: 100, Rules: []limits.Rule{rate}}, limits.Options{Quotas: openStore(t), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	passes(t, mw(b), toolCall(alice, "gh", "echo", "{}"))
}
