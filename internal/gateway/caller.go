package gateway

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

// caller is the calling client as guards see it (guard.Client): a legacy session's client,
// with the capabilities it declared at initialize, or a 2026-07-28 client, with those of
// the request's _meta.
type caller struct {
	s    *Session
	caps json.RawMessage
}

func (c *caller) Capabilities() json.RawMessage { return c.caps }

// Request sends a request to the client on the stream of the call in ctx (the response
// stream of a Streamable HTTP POST, or stdio). Server-to-client requests do not exist in
// 2026-07-28.
func (c *caller) Request(ctx context.Context, m *jsonrpc.Message) (*jsonrpc.Message, error) {
	if c.s.era != "legacy" || c.s.client == nil {
		return nil, guard.ErrNoClientRequests
	}
	return c.s.client.Request(ctx, m)
}

// Notify sends a notification to the client on the stream of the call in ctx.
func (c *caller) Notify(ctx context.Context, m *jsonrpc.Message) error {
	if c.s.client == nil {
		return errors.New("no client for this session")
	}
	return c.s.client.Notify(ctx, m)
}

// noCaps is what a client that declared no capabilities has.
var noCaps = json.RawMessage(`{}`)

// callerFor returns the client of request m in session s.
func (s *Session) callerFor(m *jsonrpc.Message) guard.Client {
	if s.era == "legacy" {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.caller == nil {
			caps := noCaps
			if len(s.clientCaps) > 0 && s.clientCaps[0] == '{' {
				caps = s.clientCaps
			}
			s.caller = &caller{s: s, caps: caps}
		}
		return s.caller
	}
	caps := noCaps
	if raw, ok := jsonrpc.LookupPath(m.Params, "_meta", MetaClientCapabilities); ok && len(raw) > 0 && raw[0] == '{' {
		caps = raw
	}
	return &caller{s: s, caps: caps}
}
