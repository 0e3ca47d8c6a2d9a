package guard

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

// Hold is a guard's request that a person approve a call before it goes on. Guards before
// "approval" in Order add holds (authz for a rule whose effect is approve, detect-args for
// findings at the approval severity); the approval guard settles them and passes the call
// on only when every hold is approved. A call that reaches the server end of the chain
// with a hold still on it is refused: a missing approval guard never lets it through.
type Hold struct {
	Guard  string // the guard that asked: "authz", "detect-args"
	Reason string // why, for the person asked and the audit trail: `rule "deploys"`
	// Approvers are the groups whose members must approve. None: the caller may approve
	// its own call when its client can ask the user (MCP elicitation).
	Approvers []string
}

// Client is the client a call came from, as a guard may reach it: its declared
// capabilities, and a way to ask it something (a server-to-client request such as
// elicitation/create) while the call waits.
type Client interface {
	// Capabilities returns the client's declared capabilities, a JSON object: those of
	// initialize for a legacy session, those of the request's _meta for a 2026-07-28
	// client. Never nil.
	Capabilities() json.RawMessage
	// Request sends a request to the client on the call's own stream and waits for the
	// response. ErrNoClientRequests when the client's protocol has none (2026-07-28
	// clients are asked through input_required results instead).
	Request(ctx context.Context, m *jsonrpc.Message) (*jsonrpc.Message, error)
	// Notify sends a notification to the client on the call's own stream (progress of
	// the call while it waits).
	Notify(ctx context.Context, m *jsonrpc.Message) error
}

// ErrNoClientRequests is returned by Client.Request when the client cannot be sent
// requests.
var ErrNoClientRequests = errors.New("the client takes no server-to-client requests")

// HasCapability reports whether the client of c declared capability name (a top-level
// member of its capabilities that is an object).
func (c *Call) HasCapability(name string) bool {
	if c.Client == nil {
		return false
	}
	v, ok := jsonrpc.Lookup(c.Client.Capabilities(), name)
	return ok && len(v) > 0 && v[0] == '{'
}

// Unheld refuses a call that still has holds when it reaches the end of the chain.
func Unheld(c *Call) error {
	if len(c.Holds) == 0 {
		return nil
	}
	h := c.Holds[0]
	r := Deny("approval", jsonrpc.CodeApprovalRequired, "%s needs a person's approval (%s: %s), and no approval guard is in the chain, so it was refused", c.Msg.Method, h.Guard, h.Reason)
	return r
}
