// Package limits is the guard that bounds what calls may cost (seed risk 10, denial of
// wallet): the size of a call's arguments and result, how long the server may take, how
// many calls a session has in flight, and, by rules that select calls by principal,
// server, tool and method: token-bucket rates, calls in flight, daily call quotas, daily
// budgets of cost units, result sizes and timeouts. Loop detection throttles a call
// repeated identically many times in a short window and raises an alert.
//
// Rates, concurrency and loops are checked in memory first; daily quotas and budgets are
// counted in the store (store.Quotas), exactly, across every process and replica that
// shares it. Every refusal is a JSON-RPC error (-32011, or -32013 for a timeout) whose
// data says which limit refused (data.limit), by which rule (data.rule), and when a retry
// may succeed (data.retryAfterMs; absent when retrying the same call cannot help).
package limits

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
	"github.com/portcullis-mcp/portcullis/internal/store"
)

// Name is the guard's name in configuration and refusals.
const Name = "limits"

func init() {
	guard.Register(Name, true, func(cfg guard.Config, env guard.Env) (guard.Middleware, error) {
		c := Defaults
		if cfg != nil {
			if err := cfg.Decode(&c); err != nil {
				return nil, err
			}
		}
		o := Options{Logger: env.Logger}
		if env.Store != nil {
			o.Quotas = env.Store
		}
		mw, err := New(c, o)
		if err != nil {
			return nil, locate(cfg, c, err)
		}
		return mw, nil
	})
}

// Options are what the guard needs besides its configuration.
type Options struct {
	// Quotas counts daily quotas and budgets; required when a rule sets one.
	Quotas store.Quotas
	// Now is the clock (nil: time.Now). Tests move it to end a day.
	Now func() time.Time
	// Logger receives loop alerts and store failures (nil: none).
	Logger *slog.Logger
}

// New returns the guard, or an error when the configuration is invalid.
func New(c Config, o Options) (guard.Middleware, error) {
	cc, err := compile(c)
	if err != nil {
		return nil, err
	}
	if cc.daily && o.Quotas == nil {
		return nil, errors.New("daily_calls and daily_budget are counted in the store, and the gateway has none")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	var owner any
	if o.Quotas != nil {
		owner = o.Quotas
	}
	st := &state{c: cc, o: o, days: &days{zone: cc.zone}, sessions: attach(owner, cc.rules)}
	if cc.loop != nil {
		st.loops = newLoops(cc.loop)
	}
	return func(next guard.Handler) guard.Handler { return &limiter{state: st, next: next} }, nil
}

type limiter struct {
	*state
	next guard.Handler
}

// maxSelected is how many rules the hot path expects a call to match without allocating.
const maxSelected = 8

func (l *limiter) Handle(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
	m := c.Msg
	if c.Direction != guard.Inbound || !m.IsRequest() {
		return l.next.Handle(ctx, c)
	}
	if l.c.MaxParamsBytes > 0 && len(m.Params) > l.c.MaxParamsBytes {
		r := deny("params of %d bytes exceed the limit of %d bytes", len(m.Params), l.c.MaxParamsBytes)
		r.Data = map[string]any{"limit": "max_params_bytes"}
		return nil, r
	}
	release, refusal := l.enterSession(c)
	if refusal != nil {
		return nil, refusal
	}
	defer release()

	now := l.o.Now()
	var selBuf [maxSelected]*rule
	var keyBuf [maxSelected]memKey
	sel, keys := selBuf[:0], keyBuf[:0]
	timeout, timeoutRule := l.c.CallTimeout, ""
	maxResult, maxResultRule := l.c.MaxResultBytes, ""
	memoryLimits, dailyLimits := false, false
	for _, r := range l.c.rules {
		if !r.selects(&c.Principal, m.Method, c.Server, c.Name) {
			continue
		}
		sel = append(sel, r)
		keys = append(keys, r.key(c))
		memoryLimits = memoryLimits || r.needsMemory
		dailyLimits = dailyLimits || r.needsCounter
		if r.timeout > 0 && r.timeout < timeout {
			timeout, timeoutRule = r.timeout, r.name
		}
		if r.maxResultBytes > 0 && (maxResult == 0 || r.maxResultBytes < maxResult) {
			maxResult, maxResultRule = r.maxResultBytes, r.name
		}
	}

	if l.loops != nil && l.c.loop.methods.Match(m.Method) {
		if refusal := l.checkLoop(ctx, c, now); refusal != nil {
			return nil, refusal
		}
	}
	var adm admission
	if memoryLimits {
		if v := admitMemory(now.UnixNano(), sel, keys, &adm); v != nil {
			return nil, v.refusal(c)
		}
		defer releaseSlots(&adm)
	}
	var counted *counted
	if dailyLimits {
		var refusal error
		counted, refusal = l.count(ctx, c, now, sel, keys)
		if refusal != nil {
			refundTokens(&adm)
			return nil, refusal
		}
	}

	// A pausable timeout rather than a context deadline: the approval guard pauses it
	// while a person decides (guard.PauseTimeouts).
	tctx, cancel := guard.PausableTimeout(ctx, timeout, errTimeout)
	defer cancel()
	resp, err := l.next.Handle(tctx, c)
	if err != nil {
		if errors.Is(context.Cause(tctx), errTimeout) {
			var r *guard.Refusal
			if timeoutRule == "" {
				r = guard.Deny(Name, jsonrpc.CodeUpstreamTimeout, "server %q did not answer within %s (call_timeout); the call was cancelled", c.Server, timeout)
				r.Data = map[string]any{"limit": "call_timeout"}
			} else {
				r = guard.Deny(Name, jsonrpc.CodeUpstreamTimeout, "server %q did not answer within %s (timeout of limits rule %q); the call was cancelled", c.Server, timeout, timeoutRule)
				r.Data = map[string]any{"limit": "timeout", "rule": timeoutRule}
			}
			return nil, r
		}
		var r *guard.Refusal
		if counted != nil && errors.As(err, &r) && r.Guard != Name {
			l.refund(ctx, counted) // a later guard refused it: the server never saw it
		}
		return nil, err
	}
	if maxResult > 0 && resp != nil && len(resp.Result) > maxResult {
		var r *guard.Refusal
		if maxResultRule == "" {
			r = deny("result of %d bytes exceeds the limit of %d bytes", len(resp.Result), maxResult)
			r.Data = map[string]any{"limit": "max_result_bytes"}
		} else {
			r = deny("result of %d bytes exceeds the limit of %d bytes (limits rule %q)", len(resp.Result), maxResult, maxResultRule)
			r.Data = map[string]any{"limit": "max_result_bytes", "rule": maxResultRule}
		}
		return nil, r
	}
	return resp, nil
}

// key is the counter of the rule a call counts against.
func (r *rule) key(c *guard.Call) memKey {
	k := memKey{rule: r.index}
	if r.perPrincipal {
		k.method, k.principal = c.Principal.Method, c.Principal.ID
	}
	if r.perServer {
		k.server = c.Server
	}
	if r.perTool {
		k.tool = c.Name
	}
	return k
}

func (v *verdict) refusal(c *guard.Call) *guard.Refusal {
	var r *guard.Refusal
	switch v.limit {
	case "rate":
		r = deny("%s for %s (limits rule %q: %s, burst %d); retry in %s", v.msg, what(c), v.rule.name, v.rule.rate, int(v.rule.burst), roundUp(v.retry))
	case "concurrency":
		r = deny("%s for %s (limits rule %q allows %d at once); retry when one has finished", v.msg, what(c), v.rule.name, v.rule.concurrency)
	default:
		r = deny("%s (limits rule %q)", v.msg, v.rule.name)
	}
	r.Data = map[string]any{"limit": v.limit, "rule": v.rule.name, "retryAfterMs": retryMs(v.retry)}
	return r
}

// what names a call in messages: the tool (or prompt, resource) and server.
func what(c *guard.Call) string {
	switch {
	case c.Name != "" && c.Server != "":
		return fmt.Sprintf("%s %q of server %q", c.Msg.Method, c.Name, c.Server)
	case c.Name != "":
		return fmt.Sprintf("%s %q", c.Msg.Method, c.Name)
	case c.Server != "":
		return fmt.Sprintf("%s on server %q", c.Msg.Method, c.Server)
	}
	return c.Msg.Method
}

// retryMs is d in whole milliseconds, rounded up, at least 1.
func retryMs(d time.Duration) int64 {
	ms := (d + time.Millisecond - 1) / time.Millisecond
	return max(1, int64(ms))
}

func roundUp(d time.Duration) time.Duration {
	if d < time.Second {
		return time.Duration(retryMs(d)) * time.Millisecond
	}
	return (d + time.Second - 1).Truncate(time.Second)
}

// checkLoop records the call with the loop detector and refuses it when it is in a loop.
func (l *limiter) checkLoop(ctx context.Context, c *guard.Call, now time.Time) *guard.Refusal {
	out, wait := l.loops.observe(now.UnixNano(), l.loops.key(c))
	if out == loopPass {
		return nil
	}
	lc := l.c.loop
	r := deny("the same call (%s with the same arguments) was made %d times within %s: it looks like a loop, and is throttled; retry in %s", what(c), lc.calls, lc.window, roundUp(wait))
	r.Data = map[string]any{"limit": "loop", "retryAfterMs": retryMs(wait)}
	if out == loopDetected {
		msg := fmt.Sprintf("%s %q called %s %d times with the same arguments within %s; the call is refused for %s", c.Principal.Method, c.Principal.ID, what(c), lc.calls, lc.window, lc.cooldown)
		audit.Report(ctx, audit.Finding{Detector: Name, Rule: "loop", Severity: "high", In: "call", Message: msg}) // "call": about the call as a whole, nothing in it to redact
		if l.o.Logger != nil {
			l.o.Logger.Warn("loop detected: "+msg, "guard", Name, "principal", c.Principal.ID, "upstream", c.Server, "tool", c.Name, "incident", r.Incident)
		}
	}
	return r
}

// enterSession counts the call against its session's (or, for sessionless clients, its
// principal's) calls in flight.
func (s *state) enterSession(c *guard.Call) (func(), *guard.Refusal) {
	key := c.Session
	if key == "" {
		key = "principal:" + c.Principal.Method + ":" + c.Principal.ID
	}
	memMu.Lock()
	if s.sessions[key] >= s.c.MaxConcurrentPerSession {
		memMu.Unlock()
		r := deny("too many calls in flight for this session (limit %d); retry when one has finished", s.c.MaxConcurrentPerSession)
		r.Data = map[string]any{"limit": "max_concurrent_per_session", "retryAfterMs": 100}
		return nil, r
	}
	s.sessions[key]++
	memMu.Unlock()
	return func() {
		memMu.Lock()
		if s.sessions[key]--; s.sessions[key] <= 0 {
			delete(s.sessions, key)
		}
		memMu.Unlock()
	}, nil
}

var errTimeout = fmt.Errorf("call timeout")

func deny(format string, args ...any) *guard.Refusal {
	return guard.Deny(Name, jsonrpc.CodeLimitExceeded, format, args...)
}
