// Package postgres is the fleet store: state shared by every gateway replica in one
// PostgreSQL database (github.com/jackc/pgx/v5, a connection pool per process). It is
// selected in the configuration with
//
//	store: {driver: postgres, dsn: "postgres://portcullis:${PGPASSWORD}@db:5432/portcullis?sslmode=verify-full"}
//
// The schema evolves by numbered migrations recorded in schema_migrations, applied under a
// transaction-scoped advisory lock so that replicas starting together apply each one once.
// A database whose schema is newer than the binary is refused. The tables live in the
// DSN's search_path (the user's default schema unless the DSN sets search_path), so one
// database can hold several independent installations, one schema each.
//
// # Testing against a local PostgreSQL
//
// The store suite (storetest) and the fleet end-to-end tests run when
// PORTCULLIS_TEST_POSTGRES holds a DSN of a database where the user may create schemas;
// each test gets a schema of its own and drops it at the end:
//
//	PORTCULLIS_TEST_POSTGRES='postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable' \
//	    go test -race ./internal/store/postgres/
//
// Without it they are skipped, except under CI (CI set in the environment), where a missing
// PostgreSQL is a failure: test/pg.sh starts a throwaway server on loopback and sets the
// variable (make test and .ci/run use it; `bash test/pg.sh go test ./internal/store/...`
// does the same by hand).
package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/portcullis-mcp/portcullis/internal/store"
)

// migrations are applied in order; migrations[i] brings the schema to version i+1. Never
// edit one that has shipped: append a new one. They need not match SQLite's numbering.
var migrations = []string{
	// 1: API keys.
	`CREATE TABLE api_keys (
		id         TEXT PRIMARY KEY,
		name       TEXT NOT NULL,
		groups     TEXT[] NOT NULL DEFAULT '{}',
		hash       BYTEA NOT NULL,
		created_at TIMESTAMPTZ NOT NULL,
		revoked_at TIMESTAMPTZ,
		last_used  TIMESTAMPTZ
	)`,
	// 2: the audit trail (audit.go).
	migrationAudit,
	// 3: pins of tool, prompt and resource template definitions (pins.go).
	migrationPins,
	// 4: approvals of held calls (approvals.go).
	migrationApprovals,
	// 5: daily quota and budget counters (quotas.go).
	migrationQuotas,
}

// migrationLock is the advisory lock key under which migrations run (any constant shared
// by every portcullis; "pcullis" in ASCII).
const migrationLock = 0x7063756c6c6973

// Store is a store.Store in a PostgreSQL database.
type Store struct {
	pool  *pgxpool.Pool
	watch watchers // LISTEN/NOTIFY of settled approvals (notify.go)
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at dsn (a postgres:// URL or key=value string; see the
// libpq documentation) and brings its schema up to date.
func Open(ctx context.Context, dsn string) (*Store, error) {
	if dsn == "" {
		return nil, errors.New("store/postgres: no dsn")
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors quote the DSN, and with it perhaps a password: say only that.
		return nil, errors.New("store/postgres: the dsn does not parse: want postgres://user:password@host:port/database?sslmode=verify-full or key=value pairs")
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "portcullis"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store/postgres: %w", err)
	}
	s := &Store{pool: pool}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store/postgres: %s: %w", where(cfg), err)
	}
	return s, nil
}

// where names the database for errors, without credentials.
func where(cfg *pgxpool.Config) string {
	return fmt.Sprintf("%s@%s:%d/%s", cfg.ConnConfig.User, cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
}

// migrate applies the missing migrations in one transaction under an advisory lock (two
// replicas starting at once: the second waits, then finds nothing to do).
func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(migrationLock)); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
	)`); err != nil {
		return err
	}
	var v int
	if err := tx.QueryRow(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&v); err != nil {
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("the database has schema version %d, newer than this portcullis knows (%d): use a newer portcullis", v, len(migrations))
	}
	for ; v < len(migrations); v++ {
		if _, err := tx.Exec(ctx, migrations[v]); err != nil {
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version) VALUES ($1)", v+1); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// Version returns the schema version of the database.
func (s *Store) Version(ctx context.Context) (int, error) {
	var v int
	err := s.pool.QueryRow(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&v)
	return v, err
}

// Ping checks that the database answers (readiness).
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// Close closes every connection.
func (s *Store) Close() error {
	s.closeWatch()
	s.pool.Close()
	return nil
}

// isUnique reports whether err is a unique-constraint violation.
func isUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

func (s *Store) CreateKey(ctx context.Context, k store.Key) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO api_keys (id, name, groups, hash, created_at, revoked_at, last_used)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, k.ID, k.Name, nonNil(k.Groups), k.Hash, k.CreatedAt, k.RevokedAt, k.LastUsed)
	if isUnique(err) {
		return fmt.Errorf("key %q: %w", k.ID, store.ErrExists)
	}
	return err
}

const keyColumns = "id, name, groups, hash, created_at, revoked_at, last_used"

func (s *Store) LookupKey(ctx context.Context, id string) (store.Key, error) {
	k, err := scanKey(s.pool.QueryRow(ctx, "SELECT "+keyColumns+" FROM api_keys WHERE id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Key{}, fmt.Errorf("key %q: %w", id, store.ErrNotFound)
	}
	return k, err
}

func (s *Store) ListKeys(ctx context.Context) ([]store.Key, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+keyColumns+" FROM api_keys ORDER BY created_at, id")
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
	tag, err := s.pool.Exec(ctx, "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2", at, id)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("key %q: %w", id, store.ErrNotFound)
	}
	return nil
}

func (s *Store) TouchKey(ctx context.Context, id string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, "UPDATE api_keys SET last_used = GREATEST(last_used, $1) WHERE id = $2", at, id)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("key %q: %w", id, store.ErrNotFound)
	}
	return nil
}

func scanKey(row pgx.Row) (store.Key, error) {
	var k store.Key
	if err := row.Scan(&k.ID, &k.Name, &k.Groups, &k.Hash, &k.CreatedAt, &k.RevokedAt, &k.LastUsed); err != nil {
		return store.Key{}, err
	}
	if len(k.Groups) == 0 {
		k.Groups = nil
	}
	k.CreatedAt = k.CreatedAt.UTC()
	k.RevokedAt = utc(k.RevokedAt)
	k.LastUsed = utc(k.LastUsed)
	return k, nil
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
