// Package limits is the guard that bounds what one call may cost: the size of its
// arguments and of its result, how long the server may take, and how many calls one
// session may have in flight (seed risk 10, denial of wallet).
package limits

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

// Name is the guard's name in configuration and refusals.
const Name = "limits"

// Config is the guard's configuration section.
type Config struct {
	// CallTimeout bounds how long a server may take to answer one request.
	CallTimeout time.Duration `yaml:"call_timeout"`
	// MaxConcurrentPerSession bounds the requests one session has in flight.
	MaxConcurrentPerSession int `yaml:"max_concurrent_per_session"`
	// MaxParamsBytes bounds the params of one request (0: only the message limit applies).
	MaxParamsBytes int `yaml:"max_params_bytes"`
	// MaxResultBytes bounds the result of one request (0: only the message limit applies).
	MaxResultBytes int `yaml:"max_result_bytes"`
}

// Defaults apply to a missing section or missing fields.
var Defaults = Config{CallTimeout: 60 * time.Second, MaxConcurrentPerSession: 32}

func init() {
	guard.Register(Name, true, func(cfg guard.Config, env guard.Env) (guard.Middleware, error) {
		c := Defaults
		if cfg != nil {
			if err := cfg.Decode(&c); err != nil {
				return nil, err
			}
		}
		if err := c.Validate(); err != nil {
			return nil, err
		}
		return New(c), nil
	})
}

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.CallTimeout <= 0 {
		errs = append(errs, errors.New("call_timeout must be positive"))
	}
	if c.MaxConcurrentPerSession < 1 {
		errs = append(errs, errors.New("max_concurrent_per_session must be at least 1"))
	}
	if c.MaxParamsBytes < 0 || c.MaxResultBytes < 0 {
		errs = append(errs, errors.New("max_params_bytes and max_result_bytes must not be negative"))
	}
	return errors.Join(errs...)
}

// New returns the guard.
func New(c Config) guard.Middleware {
	return func(next guard.Handler) guard.Handler {
		return &limiter{c: c, next: next, inflight: map[string]int{}}
	}
}

type limiter struct {
	c        Config
	next     guard.Handler
	mu       sync.Mutex
	inflight map[string]int
}

func (l *limiter) Handle(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
	m := c.Msg
	if c.Direction != guard.Inbound || !m.IsRequest() {
		return l.next.Handle(ctx, c)
	}
	if l.c.MaxParamsBytes > 0 && len(m.Params) > l.c.MaxParamsBytes {
		return nil, deny("params of %d bytes exceed the limit of %d bytes", len(m.Params), l.c.MaxParamsBytes)
	}
	key := c.Session
	if key == "" {
		key = "principal:" + c.Principal.Method + ":" + c.Principal.ID
	}
	l.mu.Lock()
	if l.inflight[key] >= l.c.MaxConcurrentPerSession {
		l.mu.Unlock()
		r := deny("too many calls in flight for this session (limit %d); retry when one has finished", l.c.MaxConcurrentPerSession)
		r.Data = map[string]any{"limit": "max_concurrent_per_session", "retryAfterMs": 100}
		return nil, r
	}
	l.inflight[key]++
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		if l.inflight[key]--; l.inflight[key] <= 0 {
			delete(l.inflight, key)
		}
		l.mu.Unlock()
	}()
	// A pausable timeout rather than a context deadline: the approval guard pauses it
	// while a person decides (guard.PauseTimeouts).
	ctx, stop := guard.PausableTimeout(ctx, l.c.CallTimeout, errTimeout)
	defer stop()
	resp, err := l.next.Handle(ctx, c)
	if err != nil {
		if errors.Is(context.Cause(ctx), errTimeout) {
			r := guard.Deny(Name, jsonrpc.CodeUpstreamTimeout, "server %q did not answer within %s (call_timeout); the call was cancelled", c.Server, l.c.CallTimeout)
			r.Data = map[string]any{"limit": "call_timeout"}
			return nil, r
		}
		return nil, err
	}
	if l.c.MaxResultBytes > 0 && resp != nil && len(resp.Result) > l.c.MaxResultBytes {
		return nil, deny("result of %d bytes exceeds the limit of %d bytes", len(resp.Result), l.c.MaxResultBytes)
	}
	return resp, nil
}

var errTimeout = fmt.Errorf("call timeout")

func deny(format string, args ...any) *guard.Refusal {
	return guard.Deny(Name, jsonrpc.CodeLimitExceeded, format, args...)
}
