package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/store"
)

// migrationPins creates the pins and a version counter that triggers move on every change,
// so that a gateway re-reads pins only after another process (pins approve) changed one.
const migrationPins = `CREATE TABLE pins (
		server             TEXT NOT NULL,
		kind               TEXT NOT NULL,
		name               TEXT NOT NULL,
		hash               TEXT NOT NULL DEFAULT '',
		definition         BLOB,
		pinned_at          INTEGER NOT NULL,
		pinned_by          TEXT NOT NULL DEFAULT '',
		pending_hash       TEXT,
		pending_definition BLOB,
		pending_seen_at    INTEGER,
		PRIMARY KEY (server, kind, name)
	) STRICT;
	CREATE TABLE pins_version (id INTEGER PRIMARY KEY CHECK (id = 1), v INTEGER NOT NULL) STRICT;
	INSERT INTO pins_version (id, v) VALUES (1, 0);
	CREATE TRIGGER pins_ins AFTER INSERT ON pins BEGIN UPDATE pins_version SET v = v + 1 WHERE id = 1; END;
	CREATE TRIGGER pins_upd AFTER UPDATE ON pins BEGIN UPDATE pins_version SET v = v + 1 WHERE id = 1; END;
	CREATE TRIGGER pins_del AFTER DELETE ON pins BEGIN UPDATE pins_version SET v = v + 1 WHERE id = 1; END;`

const pinColumns = "server, kind, name, hash, definition, pinned_at, pinned_by, pending_hash, pending_definition, pending_seen_at"

func (s *Store) PinFirst(ctx context.Context, p store.Pin) (store.Pin, bool, error) {
	var ph, pd, ps any
	if p.Pending != nil {
		ph, pd, ps = p.Pending.Hash, p.Pending.Definition, p.Pending.SeenAt.UnixNano()
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO pins (`+pinColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (server, kind, name) DO NOTHING`,
		p.Server, p.Kind, p.Name, p.Hash, p.Definition, p.PinnedAt.UnixNano(), p.PinnedBy, ph, pd, ps)
	if err != nil {
		return store.Pin{}, false, fmt.Errorf("pin %s/%s/%s: %w", p.Server, p.Kind, p.Name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return store.Pin{}, false, err
	}
	stored, err := s.getPin(ctx, s.db, p.PinKey)
	return stored, n == 1, err
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *Store) getPin(ctx context.Context, q querier, k store.PinKey) (store.Pin, error) {
	p, err := scanPin(q.QueryRowContext(ctx, "SELECT "+pinColumns+" FROM pins WHERE server = ? AND kind = ? AND name = ?", k.Server, k.Kind, k.Name))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Pin{}, fmt.Errorf("pin %s/%s/%s: %w", k.Server, k.Kind, k.Name, store.ErrNotFound)
	}
	return p, err
}

func (s *Store) SetPinPending(ctx context.Context, k store.PinKey, c store.PinCandidate) error {
	res, err := s.db.ExecContext(ctx, `UPDATE pins SET pending_hash = ?, pending_definition = ?, pending_seen_at = ?
		WHERE server = ? AND kind = ? AND name = ?`, c.Hash, c.Definition, c.SeenAt.UnixNano(), k.Server, k.Kind, k.Name)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return fmt.Errorf("pin %s/%s/%s: %w", k.Server, k.Kind, k.Name, store.ErrNotFound)
	}
	return nil
}

func (s *Store) ApprovePin(ctx context.Context, k store.PinKey, hash, by string, at time.Time) (store.Pin, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return store.Pin{}, err
	}
	defer tx.Rollback()
	p, err := s.getPin(ctx, tx, k)
	if err != nil {
		return store.Pin{}, err
	}
	if p.Pending == nil {
		return store.Pin{}, fmt.Errorf("pin %s/%s/%s has no pending change: %w", k.Server, k.Kind, k.Name, store.ErrNotFound)
	}
	if hash != "" && hash != p.Pending.Hash {
		return store.Pin{}, fmt.Errorf("pin %s/%s/%s: the pending definition is %s, not %s: %w", k.Server, k.Kind, k.Name, p.Pending.Hash, hash, store.ErrConflict)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE pins SET hash = pending_hash, definition = pending_definition, pinned_at = ?, pinned_by = ?,
		pending_hash = NULL, pending_definition = NULL, pending_seen_at = NULL WHERE server = ? AND kind = ? AND name = ?`,
		at.UnixNano(), by, k.Server, k.Kind, k.Name); err != nil {
		return store.Pin{}, err
	}
	p.Hash, p.Definition, p.PinnedAt, p.PinnedBy, p.Pending = p.Pending.Hash, p.Pending.Definition, at, by, nil
	return p, tx.Commit()
}

func (s *Store) DeletePins(ctx context.Context, server, kind, name string) (int, error) {
	q, args := "DELETE FROM pins WHERE server = ?", []any{server}
	if name != "" {
		q, args = q+" AND kind = ? AND name = ?", append(args, kind, name)
	} else if kind != "" {
		q, args = q+" AND kind = ?", append(args, kind)
	}
	res, err := s.db.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

func (s *Store) ListPins(ctx context.Context) ([]store.Pin, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+pinColumns+" FROM pins ORDER BY server, kind, name")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Pin
	for rows.Next() {
		p, err := scanPin(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// PinsVersion runs a statement prepared once: the registry guard asks on every listing
// (each session's first), and parsing the query each time kept SQLite's parser and code
// generator in the gateway's working set for that alone.
func (s *Store) PinsVersion(ctx context.Context) (int64, error) {
	s.pinsVersion.once.Do(func() {
		s.pinsVersion.st, s.pinsVersion.err = s.db.PrepareContext(ctx, "SELECT v FROM pins_version WHERE id = 1")
	})
	if s.pinsVersion.err != nil {
		return 0, s.pinsVersion.err
	}
	var v int64
	err := s.pinsVersion.st.QueryRowContext(ctx).Scan(&v)
	return v, err
}

func scanPin(row scanner) (store.Pin, error) {
	var p store.Pin
	var at int64
	var ph sql.NullString
	var pd []byte
	var ps sql.NullInt64
	if err := row.Scan(&p.Server, &p.Kind, &p.Name, &p.Hash, &p.Definition, &at, &p.PinnedBy, &ph, &pd, &ps); err != nil {
		return store.Pin{}, err
	}
	p.PinnedAt = time.Unix(0, at).UTC()
	if ph.Valid {
		p.Pending = &store.PinCandidate{Hash: ph.String, Definition: pd, SeenAt: time.Unix(0, ps.Int64).UTC()}
	}
	return p, nil
}
