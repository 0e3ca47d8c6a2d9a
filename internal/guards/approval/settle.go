package approval

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/store"
)

// Decision is a person's decision about a pending approval, from any process (the
// command line, the dashboard, a signed link).
type Decision struct {
	Approve  bool
	Scope    string        // for Approve: once (default), session or duration
	For      time.Duration // for scope duration: how long later calls are released
	Approver string        // who decides: an OS user, a dashboard login, "signed link"
	Via      string        // cli, dashboard, link, elicitation
	Note     string
}

// MaxGrant bounds a duration scope.
const MaxGrant = 24 * time.Hour

// Settle settles pending approval id in st with d at now: the one way every surface
// settles approvals, so that the same rules hold everywhere.
//
//   - The scope must be once, session or duration (with 0 < For <= MaxGrant).
//   - When policy named approver groups, the caller of the held call may not approve its
//     own call.
//   - An approval is settled once: ErrNotPending (with the approval as it is) when it
//     was already settled or had expired.
func Settle(ctx context.Context, st store.Store, id string, d Decision, now time.Time) (store.Approval, error) {
	if st == nil {
		return store.Approval{}, errNoStore
	}
	dec := store.ApprovalDecision{Status: store.ApprovalDenied, Approver: d.Approver, Via: d.Via, Note: d.Note, At: now}
	if d.Approver == "" {
		return store.Approval{}, errors.New("approval: the approver must be named")
	}
	if d.Approve {
		dec.Status = store.ApprovalApproved
		switch d.Scope {
		case "", store.ScopeOnce:
			dec.Scope = store.ScopeOnce
		case store.ScopeSession:
			dec.Scope = store.ScopeSession
		case store.ScopeDuration:
			if d.For <= 0 || d.For > MaxGrant {
				return store.Approval{}, fmt.Errorf("approval: a duration scope needs a duration between 1s and %s (--for), not %s", MaxGrant, d.For)
			}
			dec.Scope = store.ScopeDuration
			until := now.Add(d.For)
			dec.GrantUntil = &until
		default:
			return store.Approval{}, fmt.Errorf("approval: unknown scope %q: want once, session or duration", d.Scope)
		}
	}
	a, err := st.GetApproval(ctx, id)
	if err != nil {
		return store.Approval{}, err
	}
	if d.Approve && len(a.Approvers) > 0 && d.Approver == a.Principal {
		return a, fmt.Errorf("approval %s: %q may not approve its own call: policy names approvers %v", id, d.Approver, a.Approvers)
	}
	if d.Approve && dec.Scope == store.ScopeSession && a.Session == "" {
		return a, fmt.Errorf("approval %s: the held call has no session (a 2026-07-28 client): approve it once or for a duration", id)
	}
	a, err = st.SettleApproval(ctx, id, dec)
	if err == nil || errors.Is(err, store.ErrNotPending) {
		Settled(id)
	}
	return a, err
}

// MayApprove reports whether a person in groups may settle approval a. With no approver
// groups any approver may; otherwise one of the groups must match.
func MayApprove(a store.Approval, groups []string) bool {
	if len(a.Approvers) == 0 {
		return true
	}
	for _, g := range groups {
		if slices.Contains(a.Approvers, g) {
			return true
		}
	}
	return false
}
