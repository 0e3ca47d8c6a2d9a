// Package sqlite is the embedded store: one SQLite file (modernc.org/sqlite, pure Go, so the
// binary stays static), in WAL mode so that readers (serve) and a writer (the keys command,
// another process) do not block each other, with a busy timeout for the rare write-write
// overlap. The schema evolves by numbered migrations recorded in schema_migrations.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/store"

	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// migrations are applied in order; migrations[i] brings the schema to version i+1. Never
// edit one that has shipped: append a new one.
var migrations = []string{
	// 1: API keys.
	`CREATE TABLE api_keys (
		id         TEXT PRIMARY KEY,
		name       TEXT NOT NULL,
		groups     TEXT NOT NULL DEFAULT '[]', -- JSON array of strings
		hash       BLOB NOT NULL,
		created_at INTEGER NOT NULL,            -- Unix nanoseconds, UTC
		revoked_at INTEGER,
		last_used  INTEGER
	) STRICT;`,
	// 2: the audit trail (store.AuditLog).
	`CREATE TABLE audit_events (
		row       INTEGER PRIMARY KEY AUTOINCREMENT,
		chain     TEXT NOT NULL,
		seq       INTEGER NOT NULL,
		time      INTEGER NOT NULL, -- Unix nanoseconds, UTC
		code      TEXT NOT NULL,
		principal TEXT NOT NULL DEFAULT '',
		server    TEXT NOT NULL DEFAULT '',
		method    TEXT NOT NULL DEFAULT '',
		tool      TEXT NOT NULL DEFAULT '',
		decision  TEXT NOT NULL DEFAULT '',
		prev      TEXT NOT NULL,
		hash      TEXT NOT NULL,
		line      BLOB NOT NULL
	) STRICT;
	CREATE INDEX audit_events_chain ON audit_events (chain, row);
	CREATE INDEX audit_events_time ON audit_events (time);
	CREATE INDEX audit_events_principal ON audit_events (principal, time);`,
	// 3: pins of tool, prompt and resource template definitions (pins.go).
	migrationPins,
	// 4: approvals of held calls.
	migrationApprovals,
	// 5: daily quota and budget counters (quotas.go).
	migrationQuotas,
	// 6: the audit trail's table rebuilt for cheaper inserts (audit.go).
	migrationAuditLean,
}

// BusyTimeout is how long a statement waits for another connection's write lock.
const BusyTimeout = 5 * time.Second

// Store is a store.Store in one SQLite file.
type Store struct {
	db    *sql.DB
	path  string
	audit auditStmts // prepared once: the audit trail's writes are on every call's path
	// pinsVersion is PinsVersion's statement, prepared by its first call.
	pinsVersion struct {
		once sync.Once
		st   *sql.Stmt
		err  error
	}
	// quotaMu queues this process's quota writes (quotas.go): SQLite has one writer at a
	// time, and waiting here is much cheaper than in its busy handler's sleeps.
	quotaMu sync.Mutex
}

// Path is the database file (":memory:" for an in-memory store).
func (s *Store) Path() string { return s.path }

var _ store.Store = (*Store)(nil)

// Open opens (creating it and its directory if needed) the database at path and brings its
// schema up to date. A database written by a newer version of portcullis is refused.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("store/sqlite: no path")
	}
	if path != ":memory:" {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("store/sqlite: %w", err)
		}
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", BusyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)") // safe with WAL: a crash loses no committed data, power loss at most the last transactions
	// A new database gets 16 KiB pages: the audit trail appends about a kilobyte per event,
	// and each page a transaction changes costs two writes into the WAL and one more at the
	// checkpoint, so larger pages mean fewer system calls per row (about 10 % less CPU per
	// audit insert than 4 KiB). An existing database keeps its page size.
	q.Add("_pragma", "page_size(16384)")
	q.Set("_txlock", "immediate") // writers take the lock at BEGIN: no deadlock-prone lock upgrades
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store/sqlite: %w", err)
	}
	if path == ":memory:" {
		db.SetMaxOpenConns(1) // every connection would be a different empty database
	}
	s := &Store{db: db, path: path}
	// Processes opening a new database at once race to switch it to WAL and migrate it;
	// SQLite answers some of those races with SQLITE_BUSY at once instead of waiting in
	// the busy handler (it would deadlock), so a busy start is tried again.
	deadline := time.Now().Add(BusyTimeout)
	for {
		err := s.init(ctx, path)
		if err == nil {
			return s, nil
		}
		var se *sqlite.Error
		if !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY || time.Now().After(deadline) {
			db.Close()
			return nil, fmt.Errorf("store/sqlite: %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			db.Close()
			return nil, fmt.Errorf("store/sqlite: %s: %w", path, err)
		case <-time.After(time.Duration(10+mrand.IntN(40)) * time.Millisecond):
		}
	}
}

func (s *Store) init(ctx context.Context, path string) error {
	if path != ":memory:" {
		// WAL is a property of the file: set once, it stays. It may need the write lock,
		// which the busy timeout waits for.
		var mode string
		if err := s.db.QueryRowContext(ctx, "PRAGMA journal_mode=WAL").Scan(&mode); err != nil {
			return err
		}
		if !strings.EqualFold(mode, "wal") {
			return fmt.Errorf("journal_mode is %q, want wal", mode)
		}
		if err := os.Chmod(path, 0o600); err != nil { // key hashes are not for every local user
			return err
		}
	}
	return s.migrate(ctx)
}

// migrate applies the missing migrations, each in its own transaction, under the write lock
// (two processes starting at once apply each migration once).
func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return err
	}
	for {
		done, err := s.migrateOne(ctx)
		if err != nil || done {
			return err
		}
	}
}

func (s *Store) migrateOne(ctx context.Context) (done bool, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&v); err != nil {
		return false, err
	}
	switch {
	case v > len(migrations):
		return false, fmt.Errorf("the database has schema version %d, newer than this portcullis knows (%d): use a newer portcullis", v, len(migrations))
	case v == len(migrations):
		return true, nil
	}
	if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
		return false, fmt.Errorf("migration %d: %w", v+1, err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", v+1, time.Now().UnixNano()); err != nil {
		return false, err
	}
	return false, tx.Commit()
}

// Version returns the schema version of the database.
func (s *Store) Version(ctx context.Context) (int, error) {
	var v int
	err := s.db.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&v)
	return v, err
}

// Close closes the database. database/sql closes a connection still in use by a query
// that began before Close only when that query ends; Close waits for those too (up to
// closeWait), so that the database's files (the -wal and -shm beside it) are closed and
// checkpointed when it returns and a caller may remove or copy them.
func (s *Store) Close() error {
	err := s.db.Close()
	deadline := time.Now().Add(closeWait)
	for s.db.Stats().OpenConnections > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	return err
}

// closeWait bounds how long Close waits for queries in flight.
const closeWait = 5 * time.Second

func (s *Store) CreateKey(ctx context.Context, k store.Key) error {
	groups, err := json.Marshal(nonNil(k.Groups))
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO api_keys (id, name, groups, hash, created_at, revoked_at, last_used)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, k.ID, k.Name, string(groups), k.Hash, k.CreatedAt.UnixNano(), nanos(k.RevokedAt), nanos(k.LastUsed))
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_CONSTRAINT { // the primary key is the only constraint
		return fmt.Errorf("key %q: %w", k.ID, store.ErrExists)
	}
	return err
}

const keyColumns = "id, name, groups, hash, created_at, revoked_at, last_used"

func (s *Store) LookupKey(ctx context.Context, id string) (store.Key, error) {
	k, err := scanKey(s.db.QueryRowContext(ctx, "SELECT "+keyColumns+" FROM api_keys WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Key{}, fmt.Errorf("key %q: %w", id, store.ErrNotFound)
	}
	return k, err
}

func (s *Store) ListKeys(ctx context.Context) ([]store.Key, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+keyColumns+" FROM api_keys ORDER BY created_at, id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

func (s *Store) RevokeKey(ctx context.Context, id string, at time.Time) error {
	res, err := s.db.ExecContext(ctx, "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?", at.UnixNano(), id)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return fmt.Errorf("key %q: %w", id, store.ErrNotFound)
	}
	return nil
}

func (s *Store) TouchKey(ctx context.Context, id string, at time.Time) error {
	res, err := s.db.ExecContext(ctx, "UPDATE api_keys SET last_used = MAX(COALESCE(last_used, 0), ?) WHERE id = ?", at.UnixNano(), id)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return fmt.Errorf("key %q: %w", id, store.ErrNotFound)
	}
	return nil
}

type scanner interface{ Scan(dest ...any) error }

func scanKey(row scanner) (store.Key, error) {
	var k store.Key
	var groups string
	var created int64
	var revoked, used sql.NullInt64
	if err := row.Scan(&k.ID, &k.Name, &groups, &k.Hash, &created, &revoked, &used); err != nil {
		return store.Key{}, err
	}
	if err := json.Unmarshal([]byte(groups), &k.Groups); err != nil {
		return store.Key{}, fmt.Errorf("key %q: groups: %w", k.ID, err)
	}
	if len(k.Groups) == 0 {
		k.Groups = nil
	}
	k.CreatedAt = time.Unix(0, created).UTC()
	k.RevokedAt = fromNanos(revoked)
	k.LastUsed = fromNanos(used)
	return k, nil
}

func nanos(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixNano()
}

func fromNanos(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := time.Unix(0, n.Int64).UTC()
	return &t
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
