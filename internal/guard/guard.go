// Package guard defines the chain every MCP message passes through. A guard is a Handler
// that wraps the next one: it may refuse a call (an error), change it, hold it, or call
// next and inspect the reply. The order of guards is fixed in order.go; configuration only
// enables and parameterizes them.
package guard

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/portcullis-mcp/portcullis/internal/identity"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

// Direction says which way a message travels.
type Direction int

const (
	// Inbound messages go from a client to a server.
	Inbound Direction = iota
	// Outbound messages go from a server to a client (sampling, elicitation, roots,
	// notifications).
	Outbound
)

func (d Direction) String() string {
	if d == Outbound {
		return "outbound"
	}
	return "inbound"
}

// Call is one message on its way through a chain.
type Call struct {
	Msg       *jsonrpc.Message
	Direction Direction
	Session   string             // client session id ("" for modern, sessionless clients)
	Principal identity.Principal // who the client is
	Server    string             // the upstream the message is routed to; "" for fan-out or the gateway itself
	Name      string             // tool or prompt name (without the server prefix) or resource URI
	Era       string             // "legacy" or "modern": how the client speaks
	// Client reaches the calling client (capabilities, server-to-client requests); nil for
	// server-to-client messages and in tests without one.
	Client Client
	// Holds are approvals guards asked for (see Hold); the approval guard settles them.
	Holds []Hold
}

// Handler handles a call. For a request it returns the response; for a notification it
// returns nil. An error refuses the call: a *jsonrpc.Error is sent to the client as it is;
// any other error becomes an internal error with an incident id (the call is never passed).
type Handler interface {
	Handle(ctx context.Context, c *Call) (*jsonrpc.Message, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, c *Call) (*jsonrpc.Message, error)

// Handle implements Handler.
func (f HandlerFunc) Handle(ctx context.Context, c *Call) (*jsonrpc.Message, error) { return f(ctx, c) }

// Middleware makes a guard around next.
type Middleware func(next Handler) Handler

// Incident returns a fresh incident id, quoted in refusals and in the log.
func Incident() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Refusal is a refusal by a named guard: the client sees Code and Message, with the guard
// and an incident id in the error data.
type Refusal struct {
	Guard    string
	Code     int
	Message  string
	Incident string
	Data     map[string]any // extra fields for the error data (for example retryAfterMs)

	detail string // for the log only (Error), never sent to the client
}

func (r *Refusal) Error() string {
	if r.detail != "" {
		return fmt.Sprintf("guard/%s: %s (incident %s): %s", r.Guard, r.Message, r.Incident, r.detail)
	}
	return fmt.Sprintf("guard/%s: %s (incident %s)", r.Guard, r.Message, r.Incident)
}

// Deny returns a refusal by guard with a fresh incident id.
func Deny(guard string, code int, format string, args ...any) *Refusal {
	return &Refusal{Guard: guard, Code: code, Message: fmt.Sprintf(format, args...), Incident: Incident()}
}

// ErrorFor converts any error a chain returned into the JSON-RPC error the client gets.
// Errors that are not refusals or JSON-RPC errors are internal: the client gets an incident
// id, never the details.
func ErrorFor(err error) (*jsonrpc.Error, string) {
	var r *Refusal
	if errors.As(err, &r) {
		data := map[string]any{"guard": r.Guard, "incident": r.Incident}
		for k, v := range r.Data {
			data[k] = v
		}
		return (&jsonrpc.Error{Code: r.Code, Message: r.Message}).WithData(data), r.Incident
	}
	var je *jsonrpc.Error
	if errors.As(err, &je) {
		return je, ""
	}
	id := Incident()
	return (&jsonrpc.Error{Code: jsonrpc.CodeGatewayError, Message: "the gateway could not process this message; it was not passed on"}).
		WithData(map[string]any{"incident": id}), id
}

// Safe wraps h so that a panic becomes a refusal: security checks fail closed. The client
// gets the guard and an incident id; the panic and its stack are only in the error's text,
// which is what the log records.
func Safe(name string, h Handler) Handler {
	return HandlerFunc(func(ctx context.Context, c *Call) (resp *jsonrpc.Message, err error) {
		defer func() {
			if p := recover(); p != nil {
				resp = nil
				r := Deny(name, jsonrpc.CodeGatewayError, "guard %s failed; the message was refused", name)
				r.detail = fmt.Sprintf("panic: %v\n%s", p, debug.Stack())
				err = r
			}
		}()
		return h.Handle(ctx, c)
	})
}
