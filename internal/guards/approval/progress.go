package approval

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
	"github.com/portcullis-mcp/portcullis/internal/store"
)

// progressToken returns the request's _meta.progressToken when it has one of the types
// MCP allows (a string or an integer).
func progressToken(m *jsonrpc.Message) (json.RawMessage, bool) {
	raw, ok := jsonrpc.LookupPath(m.Params, "_meta", "progressToken")
	if !ok || len(raw) == 0 {
		return nil, false
	}
	if raw[0] == '"' || raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9' {
		return raw, true
	}
	return nil, false
}

// reportHeld tells the client of c, on the call's own stream, that the call waits for
// approval a: at once, then every ProgressInterval until ctx ends. The person asked
// sees why nothing happens, and a client that restarts its request timeout on progress
// (the TypeScript SDK's resetTimeoutOnProgress) waits as long as the approval may take
// instead of giving up after its own timeout (60 s in that SDK).
//
// progress is the seconds waited and total the approval's timeout, so progress
// increases with each report, as MCP requires. It returns the last progress reported (-1:
// none); the server's own reports for the token then count on from past it (continued).
func (g *Guard) reportHeld(ctx context.Context, c *guard.Call, a store.Approval, token json.RawMessage) float64 {
	start := g.o.Now()
	who := "a person"
	if len(a.Approvers) > 0 {
		who = "a member of " + strings.Join(a.Approvers, " or ")
	}
	t := time.NewTicker(g.c.ProgressInterval)
	defer t.Stop()
	last := -1.0
	for {
		waited := g.o.Now().Sub(start)
		left := a.ExpiresAt.Sub(g.o.Now()).Round(time.Second)
		n := jsonrpc.NewNotification("notifications/progress", map[string]any{
			"progressToken": token,
			"progress":      waited.Seconds(),
			"total":         a.ExpiresAt.Sub(a.CreatedAt).Seconds(),
			"message":       fmt.Sprintf("waiting for %s to approve the call (approval %s, %s; %s left)", who, a.ID, a.Reason, max(left, 0)),
		})
		if err := c.Client.Notify(ctx, n); err != nil {
			if ctx.Err() == nil {
				g.log.LogAttrs(ctx, slog.LevelDebug, "could not tell the client its call is held", slog.String("approval", a.ID), slog.String("err", err.Error()))
			}
			return last
		}
		last = waited.Seconds()
		select {
		case <-ctx.Done():
			return last
		case <-t.C:
		}
	}
}

// reported holds, for each released call whose client was told of progress while it was
// held, the offset from which the server's own progress reports for its token count on,
// so that the client sees progress increase across the two, as MCP requires. It is the
// process's: the inbound chain's guard starts an offset, the outbound chain's (another
// instance) applies it.
var reported = &offsets{m: map[offsetKey]float64{}}

type offsets struct {
	active atomic.Int64 // len(m), read without the lock on every outbound progress
	mu     sync.Mutex
	m      map[offsetKey]float64
}

type offsetKey struct{ session, server, token string }

// tokenKey is a progress token as text (a string's value, an integer's digits), the same
// however the server re-encodes it.
func tokenKey(raw json.RawMessage) string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	return fmt.Sprint(v)
}

// start makes the server's reports for the token of held call c count on from past last;
// the returned func ends that.
func (o *offsets) start(c *guard.Call, last float64) func() {
	token, _ := progressToken(c.Msg)
	k := offsetKey{c.Session, c.Server, tokenKey(token)}
	o.mu.Lock()
	o.m[k] = math.Floor(last) + 1
	o.active.Store(int64(len(o.m)))
	o.mu.Unlock()
	return func() {
		o.mu.Lock()
		delete(o.m, k)
		o.active.Store(int64(len(o.m)))
		o.mu.Unlock()
	}
}

// continued returns the server's progress notification c, with its progress (and total)
// moved past what the gateway reported while the call was held, or c's message as it is.
func (o *offsets) continued(c *guard.Call) *jsonrpc.Message {
	var p map[string]json.RawMessage
	if json.Unmarshal(c.Msg.Params, &p) != nil {
		return c.Msg
	}
	o.mu.Lock()
	off, ok := o.m[offsetKey{c.Session, c.Server, tokenKey(p["progressToken"])}]
	o.mu.Unlock()
	if !ok {
		return c.Msg
	}
	for _, k := range []string{"progress", "total"} {
		var v float64
		if raw, set := p[k]; set && json.Unmarshal(raw, &v) == nil {
			p[k], _ = json.Marshal(off + v)
		}
	}
	params, err := json.Marshal(p)
	if err != nil {
		return c.Msg
	}
	m := *c.Msg
	m.Params = params
	return &m
}
