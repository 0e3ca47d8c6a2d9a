package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/portcullis-mcp/portcullis/internal/store"
)

// migrationPins creates the pins and a version counter that a trigger moves on every
// change, so that a replica re-reads pins only after another (or pins approve) changed one.
const migrationPins = `CREATE TABLE pins (
		server             TEXT NOT NULL,
		kind               TEXT NOT NULL,
		name               TEXT NOT NULL,
		hash               TEXT NOT NULL DEFAULT '',
		definition         BYTEA,
		pinned_at          TIMESTAMPTZ NOT NULL,
		pinned_by          TEXT NOT NULL DEFAULT '',
		pending_hash       TEXT,
		pending_definition BYTEA,
		pending_seen_at    TIMESTAMPTZ,
		PRIMARY KEY (server, kind, name)
	);
	CREATE TABLE pins_version (id INTEGER PRIMARY KEY CHECK (id = 1), v BIGINT NOT NULL);
	INSERT INTO pins_version (id, v) VALUES (1, 0);
	CREATE FUNCTION pins_bump() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		UPDATE pins_version SET v = v + 1 WHERE id = 1;
		RETURN NULL;
	END $$;
	CREATE TRIGGER pins_changed AFTER INSERT OR UPDATE OR DELETE ON pins FOR EACH ROW EXECUTE FUNCTION pins_bump();`

const pinColumns = "server, kind, name, hash, definition, pinned_at, pinned_by, pending_hash, pending_definition, pending_seen_at"

func (s *Store) PinFirst(ctx context.Context, p store.Pin) (store.Pin, bool, error) {
	var ph, pd, ps any
	if p.Pending != nil {
		ph, pd, ps = p.Pending.Hash, p.Pending.Definition, p.Pending.SeenAt
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO pins (`+pinColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (server, kind, name) DO NOTHING`,
		p.Server, p.Kind, p.Name, p.Hash, p.Definition, p.PinnedAt, p.PinnedBy, ph, pd, ps)
	if err != nil {
		return store.Pin{}, false, fmt.Errorf("pin %s/%s/%s: %w", p.Server, p.Kind, p.Name, err)
	}
	stored, err := getPin(ctx, s.pool, p.PinKey, "")
	return stored, tag.RowsAffected() == 1, err
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func getPin(ctx context.Context, q querier, k store.PinKey, suffix string) (store.Pin, error) {
	p, err := scanPin(q.QueryRow(ctx, "SELECT "+pinColumns+" FROM pins WHERE server = $1 AND kind = $2 AND name = $3"+suffix, k.Server, k.Kind, k.Name))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Pin{}, fmt.Errorf("pin %s/%s/%s: %w", k.Server, k.Kind, k.Name, store.ErrNotFound)
	}
	return p, err
}

func (s *Store) SetPinPending(ctx context.Context, k store.PinKey, c store.PinCandidate) error {
	tag, err := s.pool.Exec(ctx, `UPDATE pins SET pending_hash = $1, pending_definition = $2, pending_seen_at = $3
		WHERE server = $4 AND kind = $5 AND name = $6`, c.Hash, c.Definition, c.SeenAt, k.Server, k.Kind, k.Name)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("pin %s/%s/%s: %w", k.Server, k.Kind, k.Name, store.ErrNotFound)
	}
	return nil
}

func (s *Store) ApprovePin(ctx context.Context, k store.PinKey, hash, by string, at time.Time) (store.Pin, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return store.Pin{}, err
	}
	defer tx.Rollback(ctx)
	p, err := getPin(ctx, tx, k, " FOR UPDATE")
	if err != nil {
		return store.Pin{}, err
	}
	if p.Pending == nil {
		return store.Pin{}, fmt.Errorf("pin %s/%s/%s has no pending change: %w", k.Server, k.Kind, k.Name, store.ErrNotFound)
	}
	if hash != "" && hash != p.Pending.Hash {
		return store.Pin{}, fmt.Errorf("pin %s/%s/%s: the pending definition is %s, not %s: %w", k.Server, k.Kind, k.Name, p.Pending.Hash, hash, store.ErrConflict)
	}
	if _, err := tx.Exec(ctx, `UPDATE pins SET hash = pending_hash, definition = pending_definition, pinned_at = $1, pinned_by = $2,
		pending_hash = NULL, pending_definition = NULL, pending_seen_at = NULL WHERE server = $3 AND kind = $4 AND name = $5`,
		at, by, k.Server, k.Kind, k.Name); err != nil {
		return store.Pin{}, err
	}
	p.Hash, p.Definition, p.PinnedAt, p.PinnedBy, p.Pending = p.Pending.Hash, p.Pending.Definition, at, by, nil
	return p, tx.Commit(ctx)
}

func (s *Store) DeletePins(ctx context.Context, server, kind, name string) (int, error) {
	q, args := "DELETE FROM pins WHERE server = $1", []any{server}
	if name != "" {
		q, args = q+" AND kind = $2 AND name = $3", append(args, kind, name)
	} else if kind != "" {
		q, args = q+" AND kind = $2", append(args, kind)
	}
	tag, err := s.pool.Exec(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

func (s *Store) ListPins(ctx context.Context) ([]store.Pin, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+pinColumns+" FROM pins ORDER BY server, kind, name")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Pin, error) { return scanPin(r) })
}

func (s *Store) PinsVersion(ctx context.Context) (int64, error) {
	var v int64
	err := s.pool.QueryRow(ctx, "SELECT v FROM pins_version WHERE id = 1").Scan(&v)
	return v, err
}

func scanPin(row pgx.Row) (store.Pin, error) {
	var p store.Pin
	var ph *string
	var pd []byte
	var ps *time.Time
	if err := row.Scan(&p.Server, &p.Kind, &p.Name, &p.Hash, &p.Definition, &p.PinnedAt, &p.PinnedBy, &ph, &pd, &ps); err != nil {
		return store.Pin{}, err
	}
	p.PinnedAt = p.PinnedAt.UTC()
	if ph != nil {
		p.Pending = &store.PinCandidate{Hash: *ph, Definition: pd}
		if ps != nil {
			p.Pending.SeenAt = ps.UTC()
		}
	}
	return p, nil
}
