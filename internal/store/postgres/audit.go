package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/portcullis-mcp/portcullis/internal/store"
)

// migrationAudit creates the audit trail (store.AuditLog). time is Unix nanoseconds: the
// copy must equal the sealed event's time exactly, and timestamptz keeps microseconds.
const migrationAudit = `CREATE TABLE audit_events (
		row       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		chain     TEXT NOT NULL,
		seq       BIGINT NOT NULL,
		time      BIGINT NOT NULL,
		code      TEXT NOT NULL,
		principal TEXT NOT NULL DEFAULT '',
		server    TEXT NOT NULL DEFAULT '',
		method    TEXT NOT NULL DEFAULT '',
		tool      TEXT NOT NULL DEFAULT '',
		decision  TEXT NOT NULL DEFAULT '',
		prev      TEXT NOT NULL,
		hash      TEXT NOT NULL,
		line      BYTEA NOT NULL
	);
	CREATE INDEX audit_events_chain ON audit_events (chain, row);
	CREATE INDEX audit_events_time ON audit_events (time);
	CREATE INDEX audit_events_principal ON audit_events (principal, time);`

// AppendAudit stores records in one transaction. Each chain's end is read under a
// transaction-scoped advisory lock on the chain's name, so two writers of one chain are
// serialized and the second sees the first's records (and conflicts), and a chain's rows
// increase in the order its records were appended.
func (s *Store) AppendAudit(ctx context.Context, records []store.AuditRecord) error {
	if len(records) == 0 {
		return nil
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	ends := map[string]string{} // chain -> hash of its last record
	rows := make([][]any, 0, len(records))
	for _, r := range records {
		end, seen := ends[r.Chain]
		if !seen {
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended('portcullis.audit:' || $1, 0))", r.Chain); err != nil {
				return err
			}
			err := tx.QueryRow(ctx, "SELECT hash FROM audit_events WHERE chain = $1 ORDER BY row DESC LIMIT 1", r.Chain).Scan(&end)
			if errors.Is(err, pgx.ErrNoRows) {
				end = r.Prev // an empty chain may start anywhere (a trail that began in a file)
			} else if err != nil {
				return err
			}
		}
		if r.Prev != end {
			return fmt.Errorf("%w: event %d of chain %q follows %.12s…, but the chain ends at %.12s… (is another process writing the same chain?)",
				store.ErrChainConflict, r.Seq, r.Chain, r.Prev, end)
		}
		rows = append(rows, []any{r.Chain, int64(r.Seq), r.Time.UnixNano(), r.Code, r.Principal, r.Server,
			r.Method, r.Tool, r.Decision, r.Prev, r.Hash, r.Line})
		ends[r.Chain] = r.Hash
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"audit_events"},
		[]string{"chain", "seq", "time", "code", "principal", "server", "method", "tool", "decision", "prev", "hash", "line"},
		pgx.CopyFromRows(rows)); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

const auditColumns = "row, chain, seq, time, code, principal, server, method, tool, decision, prev, hash, line"

func scanAudit(row pgx.Row) (store.AuditRecord, error) {
	var r store.AuditRecord
	var seq, t int64
	if err := row.Scan(&r.Row, &r.Chain, &seq, &t, &r.Code, &r.Principal, &r.Server, &r.Method, &r.Tool,
		&r.Decision, &r.Prev, &r.Hash, &r.Line); err != nil {
		return store.AuditRecord{}, err
	}
	r.Seq, r.Time = uint64(seq), time.Unix(0, t).UTC()
	return r, nil
}

func (s *Store) LastAudit(ctx context.Context, chain string) (store.AuditRecord, error) {
	r, err := scanAudit(s.pool.QueryRow(ctx, "SELECT "+auditColumns+" FROM audit_events WHERE chain = $1 ORDER BY row DESC LIMIT 1", chain))
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("audit chain %q: %w", chain, store.ErrNotFound)
	}
	return r, err
}

func (s *Store) AuditChains(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, "SELECT DISTINCT chain FROM audit_events ORDER BY chain")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// ScanAudit reads in pages, so that fn may take its time without holding a query open.
func (s *Store) ScanAudit(ctx context.Context, chain string, after int64, fn func(store.AuditRecord) (bool, error)) error {
	const page = 1000
	for {
		rows, err := s.pool.Query(ctx, "SELECT "+auditColumns+" FROM audit_events WHERE chain = $1 AND row > $2 ORDER BY row LIMIT $3", chain, after, page)
		if err != nil {
			return err
		}
		batch, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.AuditRecord, error) { return scanAudit(r) })
		if err != nil {
			return err
		}
		for _, r := range batch {
			more, err := fn(r)
			if err != nil || !more {
				return err
			}
			after = r.Row
		}
		if len(batch) < page {
			return nil
		}
	}
}

func (s *Store) SearchAudit(ctx context.Context, q store.AuditQuery) ([]store.AuditRecord, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	for _, f := range []struct {
		col, v string
	}{{"chain", q.Chain}, {"principal", q.Principal}, {"server", q.Server}, {"tool", q.Tool},
		{"method", q.Method}, {"decision", q.Decision}, {"code", q.Code}} {
		if f.v != "" {
			add(f.col+" = $%d", f.v)
		}
	}
	if !q.Since.IsZero() {
		add("time >= $%d", q.Since.UnixNano())
	}
	if !q.Until.IsZero() {
		add("time < $%d", q.Until.UnixNano())
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 10000)
	query := "SELECT " + auditColumns + " FROM audit_events"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, limit)
	query += fmt.Sprintf(" ORDER BY time DESC, row DESC LIMIT $%d", len(args))
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.AuditRecord, error) { return scanAudit(r) })
}
