package store

import (
	"context"
	"errors"
	"time"
)

// Approvals keep the approvals of held calls (package approval): pending until a person
// settles them from any process (the CLI, the dashboard, a signed link), then approved or
// denied, or expired when nobody did in time. An approval is bound to one principal,
// server, tool and argument hash; approved ones with a session or time scope release later
// calls with the same binding.
type Approvals interface {
	// CreateApproval records a new approval. Its ID must be new: ErrExists otherwise.
	CreateApproval(ctx context.Context, a Approval) error
	// GetApproval returns the approval with id, or ErrNotFound.
	GetApproval(ctx context.Context, id string) (Approval, error)
	// ListApprovals returns approvals, newest first: only those with the given status
	// when status is not "", at most limit (0: no limit).
	ListApprovals(ctx context.Context, status string, limit int) ([]Approval, error)
	// SettleApproval moves a pending approval to d.Status (approved, denied or expired),
	// atomically: ErrNotFound when there is none, ErrNotPending when it was already settled
	// (the approval as it is is returned with it). Approving or denying a pending approval
	// whose ExpiresAt is before d.At is refused with ErrNotPending too, and the approval is
	// marked expired.
	SettleApproval(ctx context.Context, id string, d ApprovalDecision) (Approval, error)
	// FindGrant returns an approved approval that releases a call with binding b in
	// session at time now: scope "session" and the same session (not ""), or scope
	// "duration" and GrantUntil after now. ErrNotFound when none does.
	FindGrant(ctx context.Context, b ApprovalBinding, session string, now time.Time) (Approval, error)
}

// Statuses of an approval.
const (
	ApprovalPending  = "pending"
	ApprovalApproved = "approved"
	ApprovalDenied   = "denied"
	ApprovalExpired  = "expired"
)

// Scopes of an approval: what it releases besides the call it was asked for.
const (
	ScopeOnce     = "once"     // only that call
	ScopeSession  = "session"  // calls with the same binding in the same client session
	ScopeDuration = "duration" // calls with the same binding by the principal until GrantUntil
)

// ApprovalBinding is what an approval is for: it never releases a call of another
// principal, to another server or tool, or with other arguments.
type ApprovalBinding struct {
	Principal       string // principal id
	PrincipalMethod string // how the principal authenticated ("apikey", "oidc", ...)
	Server          string
	Method          string // tools/call, prompts/get, resources/read, ...
	Tool            string // tool or prompt name, or resource URI
	ArgsHash        string // hex SHA-256 of the canonical arguments
}

// Approval is one approval as stored.
type Approval struct {
	ID string
	ApprovalBinding
	Session   string // the client session of the held call ("" for sessionless clients)
	Arguments []byte // the arguments, canonical JSON, as shown to approvers
	Reason    string // why the call is held: the guard and its reason
	Approvers []string
	Status    string
	CreatedAt time.Time
	ExpiresAt time.Time // a pending approval not settled by then is expired

	// Set when settled.
	Scope      string     // once, session or duration (approved only)
	GrantUntil *time.Time // end of a duration scope
	Approver   string     // who settled it ("" for expired)
	Via        string     // how: cli, dashboard, link, elicitation, timeout
	Note       string     // the approver's words
	DecidedAt  *time.Time
}

// ApprovalDecision settles a pending approval.
type ApprovalDecision struct {
	Status     string // approved, denied or expired
	Scope      string // for approved: once, session or duration
	GrantUntil *time.Time
	Approver   string
	Via        string
	Note       string
	At         time.Time
}

// ErrNotPending is returned when an approval to settle is no longer pending.
var ErrNotPending = errors.New("store: approval is not pending")
