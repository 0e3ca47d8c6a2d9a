// Package stdio is the gateway's front side over stdio: the client starts portcullis as
// its MCP server and speaks newline-delimited JSON-RPC on stdin and stdout.
package stdio

import (
	"context"
	"errors"
	"io"
	"sync"

	"github.com/portcullis-mcp/portcullis/internal/gateway"
	"github.com/portcullis-mcp/portcullis/internal/identity"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
	"github.com/portcullis-mcp/portcullis/internal/rpc"
)

type peerClient struct{ p *rpc.Peer }

func (c peerClient) Notify(_ context.Context, m *jsonrpc.Message) error { return c.p.Notify(m) }

func (c peerClient) Request(ctx context.Context, m *jsonrpc.Message) (*jsonrpc.Message, error) {
	return c.p.Call(ctx, m)
}

// Serve runs one client session over r and w until r ends or ctx is cancelled; then the
// session and its servers are closed (calls in flight are cancelled).
func Serve(ctx context.Context, g *gateway.Gateway, r io.Reader, w io.Writer, p identity.Principal) error {
	closer, _ := r.(io.Closer)
	stream := rpc.NewLineStream(r, w, closer, g.Limits())
	var (
		mu   sync.Mutex
		sess *gateway.Session
		peer *rpc.Peer
	)
	handler := func(ctx context.Context, m *jsonrpc.Message) *jsonrpc.Message {
		mu.Lock()
		s := sess
		if s == nil && m.Method == "initialize" {
			if _, modern := gateway.ModernVersion(m); !modern {
				var err error
				s, err = g.NewSession(p, peerClient{peer})
				if err != nil {
					mu.Unlock()
					return jsonrpc.NewError(m.ID, jsonrpc.Errorf(jsonrpc.CodeUpstreamUnavailable, "%v", err))
				}
				s.Pin()
				sess = s
			}
		}
		mu.Unlock()
		if s != nil {
			return s.Handle(ctx, m)
		}
		if !m.IsRequest() {
			return nil
		}
		if je := gateway.CheckModern(m); je != nil {
			return jsonrpc.NewError(m.ID, je)
		}
		return g.HandleModern(ctx, p, peerClient{peer}, m)
	}
	peer = rpc.NewPeer(stream, handler)
	runErr := make(chan error, 1)
	go func() { runErr <- peer.Run(ctx) }()
	var err error
	select {
	case err = <-runErr:
	case <-ctx.Done():
		// Run is blocked reading r, which only the client can end (closing the stream
		// closes r only when r is a Closer): do not wait for it, or a cancelled Serve
		// would hang until the client closes its end.
		peer.Close()
		err = rpc.ErrClosed
	}
	mu.Lock()
	s := sess
	mu.Unlock()
	if s != nil {
		s.Close()
	}
	if errors.Is(err, io.EOF) || errors.Is(err, rpc.ErrClosed) {
		return nil
	}
	return err
}
