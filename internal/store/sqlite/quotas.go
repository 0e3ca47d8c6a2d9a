package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/portcullis-mcp/portcullis/internal/store"
)

// migrationQuotas creates the daily counters (see store.Quotas).
const migrationQuotas = `CREATE TABLE quotas (
		day TEXT NOT NULL,    -- "2006-01-02" in the zone the limits guard counts days in
		key TEXT NOT NULL,
		n   INTEGER NOT NULL,
		PRIMARY KEY (day, key)
	) STRICT, WITHOUT ROWID;`

// addQuota adds a.N to the counter unless that passes its cap: one statement, atomic on its
// own (SQLite has one writer at a time). No row comes back when the cap refused it.
const addQuota = `INSERT INTO quotas AS q (day, key, n) VALUES (?1, ?2, MAX(0, ?3))
	ON CONFLICT (day, key) DO UPDATE SET n = MAX(0, q.n + ?3)
	WHERE ?4 < 0 OR ?3 <= 0 OR q.n + ?3 <= ?4
	RETURNING n`

type execQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *Store) AddQuotas(ctx context.Context, day string, adds []store.QuotaAdd) ([]int64, bool, error) {
	if len(adds) == 0 {
		return nil, true, nil
	}
	for _, a := range adds {
		if a.Cap >= 0 && a.N > a.Cap {
			return s.quotaValues(ctx, day, adds)
		}
	}
	s.quotaMu.Lock()
	defer s.quotaMu.Unlock()
	var q execQuerier = s.db
	var tx *sql.Tx
	if len(adds) > 1 {
		var err error
		if tx, err = s.db.BeginTx(ctx, nil); err != nil {
			return nil, false, err
		}
		defer tx.Rollback()
		q = tx
	}
	values := make([]int64, len(adds))
	for i, a := range adds {
		err := q.QueryRowContext(ctx, addQuota, day, a.Key, a.N, a.Cap).Scan(&values[i])
		if errors.Is(err, sql.ErrNoRows) {
			if tx != nil {
				tx.Rollback()
			}
			return s.quotaValues(ctx, day, adds)
		}
		if err != nil {
			return nil, false, err
		}
	}
	if tx != nil {
		if err := tx.Commit(); err != nil {
			return nil, false, err
		}
	}
	return values, true, nil
}

// quotaValues returns the current values of the counters of a refused add.
func (s *Store) quotaValues(ctx context.Context, day string, adds []store.QuotaAdd) ([]int64, bool, error) {
	values := make([]int64, len(adds))
	for i, a := range adds {
		err := s.db.QueryRowContext(ctx, "SELECT n FROM quotas WHERE day = ? AND key = ?", day, a.Key).Scan(&values[i])
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, false, err
		}
	}
	return values, false, nil
}

func (s *Store) ListQuotas(ctx context.Context, day string) ([]store.QuotaCount, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT key, n FROM quotas WHERE day = ? ORDER BY key", day)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.QuotaCount
	for rows.Next() {
		var c store.QuotaCount
		if err := rows.Scan(&c.Key, &c.N); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func (s *Store) PruneQuotas(ctx context.Context, before string) (int, error) {
	res, err := s.db.ExecContext(ctx, "DELETE FROM quotas WHERE day < ?", before)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}
