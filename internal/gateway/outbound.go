package gateway

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/identity"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
	"github.com/portcullis-mcp/portcullis/internal/upstream"
)

// fromServer handles what server name sends this session unasked: requests (sampling,
// elicitation, roots) and notifications (progress, logging, list changes) pass the
// outbound chain and go to the client.
func (s *Session) fromServer(name string) upstream.Incoming {
	return func(ctx context.Context, m *jsonrpc.Message) *jsonrpc.Message {
		if m.Method == "ping" {
			return jsonrpc.NewResult(m.ID, json.RawMessage(`{}`))
		}
		ctx = context.WithValue(ctx, sessionKey{}, s)
		ctx = identity.With(ctx, s.principal)
		call := &guard.Call{Msg: m, Direction: guard.Outbound, Session: s.id, Principal: s.principal, Server: name, Era: s.era}
		if m.Method == "notifications/resources/list_changed" || m.Method == "notifications/tools/list_changed" || m.Method == "notifications/prompts/list_changed" {
			if s.prefix {
				s.mu.Lock()
				for k, v := range s.owners {
					if v == name {
						delete(s.owners, k)
					}
				}
				s.mu.Unlock()
			}
		}
		resp, err := s.g.chains.Load().outbound.Handle(ctx, call)
		if m.IsNotification() {
			if err != nil {
				s.g.logger.Warn("server notification refused", "upstream", name, "method", m.Method, "err", err)
			}
			return nil
		}
		if err != nil {
			je, _ := guard.ErrorFor(err)
			return jsonrpc.NewError(m.ID, je)
		}
		return resp
	}
}

// outboundTerminal delivers a server message to the client.
func (g *Gateway) outboundTerminal(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
	s := sessionFrom(ctx)
	if s == nil || s.client == nil {
		return nil, errors.New("no client for this session")
	}
	if c.Msg.IsNotification() {
		return nil, s.client.Notify(ctx, c.Msg)
	}
	resp, err := s.client.Request(ctx, c.Msg)
	if err != nil {
		return nil, err
	}
	return resp, nil
}
