package postgres

import (
	"context"
	"errors"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/portcullis-mcp/portcullis/internal/store"
)

// migrationQuotas creates the daily counters (see store.Quotas).
const migrationQuotas = `CREATE TABLE quotas (
		day TEXT NOT NULL,   -- "2006-01-02" in the zone the limits guard counts days in
		key TEXT NOT NULL,
		n   BIGINT NOT NULL,
		PRIMARY KEY (day, key)
	)`

// addQuota adds $3 to the counter unless that passes the cap $4. It is one statement: the
// conflicting row is locked and the condition evaluated on its latest version, so replicas
// adding at once are serialized by the row, and none passes the cap. No row comes back
// when the cap refused it.
const addQuota = `INSERT INTO quotas AS q (day, key, n) VALUES ($1, $2, GREATEST(0, $3::bigint))
	ON CONFLICT (day, key) DO UPDATE SET n = GREATEST(0, q.n + $3::bigint)
	WHERE $4::bigint < 0 OR $3::bigint <= 0 OR q.n + $3::bigint <= $4::bigint
	RETURNING n`

type queryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
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
	var q queryRower = s.pool
	var tx pgx.Tx
	// Several counters: one transaction, rows locked in key order so that two replicas
	// adding to the same counters cannot deadlock.
	order := make([]int, len(adds))
	for i := range order {
		order[i] = i
	}
	if len(adds) > 1 {
		slices.SortFunc(order, func(a, b int) int {
			if adds[a].Key < adds[b].Key {
				return -1
			}
			if adds[a].Key > adds[b].Key {
				return 1
			}
			return a - b
		})
		var err error
		if tx, err = s.pool.Begin(ctx); err != nil {
			return nil, false, err
		}
		defer tx.Rollback(ctx)
		q = tx
	}
	values := make([]int64, len(adds))
	for _, i := range order {
		a := adds[i]
		err := q.QueryRow(ctx, addQuota, day, a.Key, a.N, a.Cap).Scan(&values[i])
		if errors.Is(err, pgx.ErrNoRows) {
			if tx != nil {
				tx.Rollback(ctx)
			}
			return s.quotaValues(ctx, day, adds)
		}
		if err != nil {
			return nil, false, err
		}
	}
	if tx != nil {
		if err := tx.Commit(ctx); err != nil {
			return nil, false, err
		}
	}
	return values, true, nil
}

// quotaValues returns the current values of the counters of a refused add.
func (s *Store) quotaValues(ctx context.Context, day string, adds []store.QuotaAdd) ([]int64, bool, error) {
	keys := make([]string, len(adds))
	for i, a := range adds {
		keys[i] = a.Key
	}
	rows, err := s.pool.Query(ctx, "SELECT key, n FROM quotas WHERE day = $1 AND key = ANY($2)", day, keys)
	if err != nil {
		return nil, false, err
	}
	got := map[string]int64{}
	var k string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&k, &n}, func() error { got[k] = n; return nil }); err != nil {
		return nil, false, err
	}
	values := make([]int64, len(adds))
	for i, a := range adds {
		values[i] = got[a.Key]
	}
	return values, false, nil
}

func (s *Store) ListQuotas(ctx context.Context, day string) ([]store.QuotaCount, error) {
	rows, err := s.pool.Query(ctx, "SELECT key, n FROM quotas WHERE day = $1 ORDER BY key COLLATE \"C\"", day)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.QuotaCount, error) {
		var c store.QuotaCount
		err := r.Scan(&c.Key, &c.N)
		return c, err
	})
}

func (s *Store) PruneQuotas(ctx context.Context, before string) (int, error) {
	tag, err := s.pool.Exec(ctx, "DELETE FROM quotas WHERE day < $1 COLLATE \"C\"", before)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}
