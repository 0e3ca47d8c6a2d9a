package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/store"
	"github.com/portcullis-mcp/portcullis/internal/store/storetest"
)

func TestSuite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(context.Background(), filepath.Join(t.TempDir(), "portcullis.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestSuiteInMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(context.Background(), ":memory:")
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestOpenCreatesDirWALAndPrivateFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state", "portcullis", "portcullis.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var mode string
	if err := s.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	var page int
	if err := s.db.QueryRowContext(ctx, "PRAGMA page_size").Scan(&page); err != nil || page != 16384 {
		t.Errorf("page_size = %d, %v; want 16384 for a new database", page, err)
	}
	var busy int
	if err := s.db.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&busy); err != nil || busy != int(BusyTimeout.Milliseconds()) {
		t.Errorf("busy_timeout = %d, %v; want %d", busy, err, BusyTimeout.Milliseconds())
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("database mode %v, want 0600", fi.Mode().Perm())
	}
	if v, err := s.Version(ctx); err != nil || v != len(migrations) {
		t.Errorf("Version = %d, %v; want %d", v, err, len(migrations))
	}
}

func TestReopenKeepsDataAndMigratesOnce(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "p.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateKey(ctx, store.Key{ID: "k1", Name: "a", Hash: []byte{1}, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.LookupKey(ctx, "k1"); err != nil {
		t.Errorf("key lost on reopen: %v", err)
	}
	var n int
	s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_migrations").Scan(&n)
	if n != len(migrations) {
		t.Errorf("schema_migrations has %d rows, want %d", n, len(migrations))
	}
}

// Several processes (serve, keys create) open the same file at once: every open succeeds
// and each migration is applied once.
func TestConcurrentOpen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "p.db")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(ctx, path)
			if err != nil {
				errs <- err
				return
			}
			s.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var n int
	s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_migrations").Scan(&n)
	if n != len(migrations) {
		t.Errorf("schema_migrations has %d rows, want %d", n, len(migrations))
	}
}

// A writer in one handle and a reader in another (serve reading, keys revoke writing).
func TestTwoHandles(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "p.db")
	a, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := a.CreateKey(ctx, store.Key{ID: "k1", Name: "a", Hash: []byte{1}, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := b.RevokeKey(ctx, "k1", time.Now()); err != nil {
		t.Fatal(err)
	}
	k, err := a.LookupKey(ctx, "k1")
	if err != nil || !k.Revoked() {
		t.Errorf("revocation through another handle not seen: %+v, %v", k, err)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "p.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.ExecContext(ctx, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)", len(migrations)+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = Open(ctx, path)
	if err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open of a newer schema = %v, want an error saying it is newer", err)
	}
}

func TestNotADatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	os.WriteFile(path, []byte(strings.Repeat("not sqlite ", 100)), 0o600)
	if _, err := Open(context.Background(), path); err == nil {
		t.Fatal("Open of a garbage file succeeded")
	}
}

// Two stores on one file (serve and another process) share daily quotas without
// over-admission.
func TestTwoStoresShareQuota(t *testing.T) {
	path := filepath.Join(t.TempDir(), "portcullis.db")
	var stores []store.Store
	for range 2 {
		s, err := Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores = append(stores, s)
	}
	storetest.RaceQuota(t, stores, 64, 20)
}

// TestCloseWaitsForQueriesInFlight: a query that began before Close holds its connection
// until it ends; Close returns only then, with the database's files closed, so that the
// caller may remove the directory (a background prune of quota counters once raced a
// test's cleanup this way).
func TestCloseWaitsForQueriesInFlight(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "portcullis.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.AddQuotas(context.Background(), "2026-12-03", []store.QuotaAdd{{Key: "k", N: 1}}); err != nil {
		t.Fatal(err)
	}
	rows, err := s.db.QueryContext(context.Background(), "SELECT key FROM quotas")
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a query still held a connection", err)
	case <-time.After(50 * time.Millisecond):
	}
	rows.Close()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + "-wal"); !os.IsNotExist(err) {
		t.Errorf("the write-ahead log is still there after Close: %v", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Errorf("removing the directory after Close: %v", err)
	}
}
