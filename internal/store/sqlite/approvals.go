package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/store"

	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
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
		arguments        BLOB NOT NULL,
		reason           TEXT NOT NULL,
		approvers        TEXT NOT NULL DEFAULT '[]', -- JSON array of group names
		status           TEXT NOT NULL,
		created_at       INTEGER NOT NULL,            -- Unix nanoseconds, UTC
		expires_at       INTEGER NOT NULL,
		scope            TEXT NOT NULL DEFAULT '',
		grant_until      INTEGER,
		approver         TEXT NOT NULL DEFAULT '',
		via              TEXT NOT NULL DEFAULT '',
		note             TEXT NOT NULL DEFAULT '',
		decided_at       INTEGER
	) STRICT;
	CREATE INDEX approvals_status ON approvals (status, created_at);
	CREATE INDEX approvals_grant ON approvals (principal, server, tool, args_hash) WHERE status = 'approved' AND scope != 'once';`

const approvalColumns = "id, principal, principal_method, server, method, tool, args_hash, session, arguments, reason, approvers, status, created_at, expires_at, scope, grant_until, approver, via, note, decided_at"

func (s *Store) CreateApproval(ctx context.Context, a store.Approval) error {
	approvers, err := json.Marshal(nonNil(a.Approvers))
	if err != nil {
		return err
	}
	args := a.Arguments
	if args == nil {
		args = []byte{}
	}
	_, err = s.db.ExecContext(ctx, "INSERT INTO approvals ("+approvalColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		a.ID, a.Principal, a.PrincipalMethod, a.Server, a.Method, a.Tool, a.ArgsHash, a.Session, args, a.Reason, string(approvers),
		a.Status, a.CreatedAt.UnixNano(), a.ExpiresAt.UnixNano(), a.Scope, nanos(a.GrantUntil), a.Approver, a.Via, a.Note, nanos(a.DecidedAt))
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_CONSTRAINT {
		return fmt.Errorf("approval %q: %w", a.ID, store.ErrExists)
	}
	return err
}

func (s *Store) GetApproval(ctx context.Context, id string) (store.Approval, error) {
	a, err := scanApproval(s.db.QueryRowContext(ctx, "SELECT "+approvalColumns+" FROM approvals WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Approval{}, fmt.Errorf("approval %q: %w", id, store.ErrNotFound)
	}
	return a, err
}

func (s *Store) ListApprovals(ctx context.Context, status string, limit int) ([]store.Approval, error) {
	q := "SELECT " + approvalColumns + " FROM approvals"
	var args []any
	if status != "" {
		q += " WHERE status = ?"
		args = append(args, status)
	}
	q += " ORDER BY created_at DESC, id DESC"
	if limit > 0 {
		q += " LIMIT ?"
		args = append(args, limit)
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Approval
	for rows.Next() {
		a, err := scanApproval(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

func (s *Store) SettleApproval(ctx context.Context, id string, d store.ApprovalDecision) (store.Approval, error) {
	switch d.Status {
	case store.ApprovalApproved, store.ApprovalDenied, store.ApprovalExpired:
	default:
		return store.Approval{}, fmt.Errorf("approval %q: cannot settle as %q", id, d.Status)
	}
	tx, err := s.db.BeginTx(ctx, nil) // immediate: the write lock is taken here
	if err != nil {
		return store.Approval{}, err
	}
	defer tx.Rollback()
	a, err := scanApproval(tx.QueryRowContext(ctx, "SELECT "+approvalColumns+" FROM approvals WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
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
	if _, err := tx.ExecContext(ctx, `UPDATE approvals SET status = ?, scope = ?, grant_until = ?, approver = ?, via = ?, note = ?, decided_at = ?
		WHERE id = ? AND status = 'pending'`, d.Status, d.Scope, nanos(d.GrantUntil), d.Approver, d.Via, d.Note, at.UnixNano(), id); err != nil {
		return store.Approval{}, err
	}
	if err := tx.Commit(); err != nil {
		return store.Approval{}, err
	}
	a.Status, a.Scope, a.GrantUntil, a.Approver, a.Via, a.Note, a.DecidedAt = d.Status, d.Scope, d.GrantUntil, d.Approver, d.Via, d.Note, &at
	if late {
		return a, fmt.Errorf("approval %q expired at %s: %w", id, a.ExpiresAt.Format(time.RFC3339), store.ErrNotPending)
	}
	return a, nil
}

func (s *Store) FindGrant(ctx context.Context, b store.ApprovalBinding, session string, now time.Time) (store.Approval, error) {
	a, err := scanApproval(s.db.QueryRowContext(ctx, "SELECT "+approvalColumns+` FROM approvals
		WHERE status = 'approved' AND principal = ? AND principal_method = ? AND server = ? AND method = ? AND tool = ? AND args_hash = ?
		  AND ((scope = 'session' AND session = ? AND session != '') OR (scope = 'duration' AND grant_until > ?))
		ORDER BY decided_at DESC LIMIT 1`,
		b.Principal, b.PrincipalMethod, b.Server, b.Method, b.Tool, b.ArgsHash, session, now.UnixNano()))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Approval{}, fmt.Errorf("grant: %w", store.ErrNotFound)
	}
	return a, err
}

func scanApproval(row scanner) (store.Approval, error) {
	var a store.Approval
	var approvers string
	var created, expires int64
	var grant, decided sql.NullInt64
	if err := row.Scan(&a.ID, &a.Principal, &a.PrincipalMethod, &a.Server, &a.Method, &a.Tool, &a.ArgsHash, &a.Session, &a.Arguments,
		&a.Reason, &approvers, &a.Status, &created, &expires, &a.Scope, &grant, &a.Approver, &a.Via, &a.Note, &decided); err != nil {
		return store.Approval{}, err
	}
	if err := json.Unmarshal([]byte(approvers), &a.Approvers); err != nil {
		return store.Approval{}, fmt.Errorf("approval %q: approvers: %w", a.ID, err)
	}
	if len(a.Approvers) == 0 {
		a.Approvers = nil
	}
	if len(a.Arguments) == 0 {
		a.Arguments = nil
	}
	a.CreatedAt = time.Unix(0, created).UTC()
	a.ExpiresAt = time.Unix(0, expires).UTC()
	a.GrantUntil = fromNanos(grant)
	a.DecidedAt = fromNanos(decided)
	return a, nil
}
