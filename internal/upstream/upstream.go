// Package upstream connects the gateway to MCP servers: a stdio child process, a Streamable
// HTTP endpoint, or a legacy HTTP+SSE endpoint. A Transport moves messages; a Conn adds the
// MCP handshake, restarts, and the server's identity and capabilities.
package upstream

import (
	"context"
	"errors"

	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

// Incoming handles a message the server sent to the gateway: a request (sampling,
// elicitation, roots, ping), for which it returns the response, or a notification (nil).
//
// For transports that can tell which request a server message belongs to (Streamable HTTP
// sends it on that request's response stream), ctx is derived from the ctx passed to Call
// for that request, so values the front side put there (such as the client's response
// stream) reach the handler. Otherwise ctx is a background context of the transport.
type Incoming func(ctx context.Context, m *jsonrpc.Message) *jsonrpc.Message

// Transport is a message connection to one server.
type Transport interface {
	// Call sends req (a request) and returns the server's response. The response carries
	// the id req had; the transport may use its own ids on the wire. When ctx ends before
	// the response, the server is told the request was cancelled.
	Call(ctx context.Context, req *jsonrpc.Message) (*jsonrpc.Message, error)
	// Notify sends a notification.
	Notify(ctx context.Context, n *jsonrpc.Message) error
	// SetSession tells an HTTP transport the session id and protocol version to send on
	// later requests (after initialize); other transports ignore it.
	SetSession(sessionID, protocolVersion string)
	// Done is closed when the connection is gone (process exit, stream closed).
	Done() <-chan struct{}
	// Err says why Done was closed.
	Err() error
	// Close ends the connection (terminating an HTTP session with DELETE, killing a process).
	Close() error
}

// ErrUnavailable wraps every error about a server that cannot be reached.
var ErrUnavailable = errors.New("server unavailable")
