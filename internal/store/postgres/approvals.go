package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/portcullis-mcp/portcullis/internal/store"
)

// migrationApprovals creates the approvals table (see store.Approvals).
const migrationApprovals = `CREATE TABLE approvals (
		id               TEXT PRIMARY KEY,
		principal        TEXT NOT NULL,
		principal_method TEXT NOT NULL,
		server           TEXT NOT NULL,
		method           TEXT NOT NULL,
		tool             TEXT NOT NULL,
		args_hash        TEXT NOT NULL,
		session          TEXT NOT NULL,
		arguments        BYTEA NOT NULL,
		reason           TEXT NOT NULL,
		approvers        TEXT[] NOT NULL DEFAULT '{}',
		status           TEXT NOT NULL,
		created_at       TIMESTAMPTZ NOT NULL,
		expires_at       TIMESTAMPTZ NOT NULL,
		scope            TEXT NOT NULL DEFAULT '',
		grant_until      TIMESTAMPTZ,
		approver         TEXT NOT NULL DEFAULT '',
		via              TEXT NOT NULL DEFAULT '',
		note             TEXT NOT NULL DEFAULT '',
		decided_at       TIMESTAMPTZ
	);
	CREATE INDEX approvals_status ON approvals (status, created_at);
	CREATE INDEX approvals_grant ON approvals (principal, server, tool, args_hash) WHERE status = 'approved' AND scope <> 'once';`

const approvalColumns = "id, principal, principal_method, server, method, tool, args_hash, session, arguments, reason, approvers, status, created_at, expires_at, scope, grant_until, approver, via, note, decided_at"

func (s *Store) CreateApproval(ctx context.Context, a store.Approval) error {
	args := a.Arguments
	if args == nil {
		args = []byte{}
	}
	_, err := s.pool.Exec(ctx, "INSERT INTO approvals ("+approvalColumns+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
		a.ID, a.Principal, a.PrincipalMethod, a.Server, a.Method, a.Tool, a.ArgsHash, a.Session, args, a.Reason, nonNil(a.Approvers),
		a.Status, a.CreatedAt, a.ExpiresAt, a.Scope, a.GrantUntil, a.Approver, a.Via, a.Note, a.DecidedAt)
	if isUnique(err) {
		return fmt.Errorf("approval %q: %w", a.ID, store.ErrExists)
	}
	return err
}

func (s *Store) GetApproval(ctx context.Context, id string) (store.Approval, error) {
	a, err := scanApproval(s.pool.QueryRow(ctx, "SELECT "+approvalColumns+" FROM approvals WHERE id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Approval{}, fmt.Errorf("approval %q: %w", id, store.ErrNotFound)
	}
	return a, err
}

func (s *Store) ListApprovals(ctx context.Context, status string, limit int) ([]store.Approval, error) {
	q := "SELECT " + approvalColumns + " FROM approvals"
	var args []any
	if status != "" {
		args = append(args, status)
		q += " WHERE status = $1"
	}
	q += " ORDER BY created_at DESC, id DESC"
	if limit > 0 {
		args = append(args, limit)
		q += fmt.Sprintf(" LIMIT $%d", len(args))
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Approval, error) { return scanApproval(r) })
}

// SettleApproval locks the row (SELECT ... FOR UPDATE), so that of two replicas settling
// the same approval at once exactly one succeeds and the other sees it settled.
func (s *Store) SettleApproval(ctx context.Context, id string, d store.ApprovalDecision) (store.Approval, error) {
	switch d.Status {
	case store.ApprovalApproved, store.ApprovalDenied, store.ApprovalExpired:
	default:
		return store.Approval{}, fmt.Errorf("approval %q: cannot settle as %q", id, d.Status)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return store.Approval{}, err
	}
	defer tx.Rollback(ctx)
	a, err := scanApproval(tx.QueryRow(ctx, "SELECT "+approvalColumns+" FROM approvals WHERE id = $1 FOR UPDATE", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Approval{}, fmt.Errorf("approval %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Approval{}, err
	}
	if a.Status != store.ApprovalPending {
		return a, fmt.Errorf("approval %q is %s: %w", id, a.Status, store.ErrNotPending)
	}
	late := d.Status != store.ApprovalExpired && d.At.After(a.ExpiresAt)
	if late {
		d = store.ApprovalDecision{Status: store.ApprovalExpired, Via: "timeout", At: a.ExpiresAt}
	}
	at := d.At
	if _, err := tx.Exec(ctx, `UPDATE approvals SET status = $1, scope = $2, grant_until = $3, approver = $4, via = $5, note = $6, decided_at = $7
		WHERE id = $8 AND status = 'pending'`, d.Status, d.Scope, d.GrantUntil, d.Approver, d.Via, d.Note, at, id); err != nil {
		return store.Approval{}, err
	}
	// Delivered on commit to every process listening (WatchApprovals): a call held on one
	// replica is released when another replica or the command line settles it.
	if _, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", approvalChannel, id); err != nil {
		return store.Approval{}, err
	}
	if err := tx.Commit(ctx); err != nil {
		return store.Approval{}, err
	}
	a.Status, a.Scope, a.GrantUntil, a.Approver, a.Via, a.Note, a.DecidedAt = d.Status, d.Scope, d.GrantUntil, d.Approver, d.Via, d.Note, &at
	if late {
		return a, fmt.Errorf("approval %q expired at %s: %w", id, a.ExpiresAt.Format(time.RFC3339), store.ErrNotPending)
	}
	return a, nil
}

func (s *Store) FindGrant(ctx context.Context, b store.ApprovalBinding, session string, now time.Time) (store.Approval, error) {
	a, err := scanApproval(s.pool.QueryRow(ctx, "SELECT "+approvalColumns+` FROM approvals
		WHERE status = 'approved' AND principal = $1 AND principal_method = $2 AND server = $3 AND method = $4 AND tool = $5 AND args_hash = $6
		  AND ((scope = 'session' AND session = $7 AND session <> '') OR (scope = 'duration' AND grant_until > $8))
		ORDER BY decided_at DESC LIMIT 1`,
		b.Principal, b.PrincipalMethod, b.Server, b.Method, b.Tool, b.ArgsHash, session, now))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Approval{}, fmt.Errorf("grant: %w", store.ErrNotFound)
	}
	return a, err
}

func scanApproval(row pgx.Row) (store.Approval, error) {
	var a store.Approval
	if err := row.Scan(&a.ID, &a.Principal, &a.PrincipalMethod, &a.Server, &a.Method, &a.Tool, &a.ArgsHash, &a.Session, &a.Arguments,
		&a.Reason, &a.Approvers, &a.Status, &a.CreatedAt, &a.ExpiresAt, &a.Scope, &a.GrantUntil, &a.Approver, &a.Via, &a.Note, &a.DecidedAt); err != nil {
		return store.Approval{}, err
	}
	if len(a.Approvers) == 0 {
		a.Approvers = nil
	}
	if len(a.Arguments) == 0 {
		a.Arguments = nil
	}
	a.CreatedAt, a.ExpiresAt = a.CreatedAt.UTC(), a.ExpiresAt.UTC()
	a.GrantUntil, a.DecidedAt = utc(a.GrantUntil), utc(a.DecidedAt)
	return a, nil
}
