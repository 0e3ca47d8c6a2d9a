package postgres

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/store"
	"github.com/portcullis-mcp/portcullis/internal/store/postgres/pgtest"
	"github.com/portcullis-mcp/portcullis/internal/store/storetest"
)

func open(t *testing.T, dsn string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSuite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, pgtest.Schema(t)) })
}

func TestReopenKeepsDataAndMigratesOnce(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Schema(t)
	s := open(t, dsn)
	if err := s.CreateKey(ctx, store.Key{ID: "k1", Name: "a", Hash: []byte{1}, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, dsn)
	defer s.Close()
	if _, err := s.LookupKey(ctx, "k1"); err != nil {
		t.Errorf("key lost on reopen: %v", err)
	}
	var n int
	s.pool.QueryRow(ctx, "SELECT COUNT(*) FROM schema_migrations").Scan(&n)
	if n != len(migrations) {
		t.Errorf("schema_migrations has %d rows, want %d", n, len(migrations))
	}
	if v, err := s.Version(ctx); err != nil || v != len(migrations) {
		t.Errorf("Version = %d, %v; want %d", v, err, len(migrations))
	}
}

// Replicas start together: every open succeeds and each migration is applied once.
func TestConcurrentOpen(t *testing.T) {
	dsn := pgtest.Schema(t)
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(context.Background(), dsn)
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
	s := open(t, dsn)
	defer s.Close()
	var n int
	s.pool.QueryRow(context.Background(), "SELECT COUNT(*) FROM schema_migrations").Scan(&n)
	if n != len(migrations) {
		t.Errorf("schema_migrations has %d rows, want %d", n, len(migrations))
	}
}

// Two replicas: a revocation through one is seen by the other.
func TestTwoReplicas(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Schema(t)
	a, b := open(t, dsn), open(t, dsn)
	defer a.Close()
	defer b.Close()
	if err := a.CreateKey(ctx, store.Key{ID: "k1", Name: "a", Hash: []byte{1}, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := b.RevokeKey(ctx, "k1", time.Now()); err != nil {
		t.Fatal(err)
	}
	if k, err := a.LookupKey(ctx, "k1"); err != nil || !k.Revoked() {
		t.Errorf("revocation through another replica not seen: %+v, %v", k, err)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Schema(t)
	s := open(t, dsn)
	if _, err := s.pool.Exec(ctx, "INSERT INTO schema_migrations (version) VALUES ($1)", len(migrations)+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := Open(ctx, dsn)
	if err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open of a newer schema = %v, want an error saying it is newer", err)
	}
}

func TestBadDSN(t *testing.T) {
	for _, dsn := range []string{"", "postgres://u:s3cret@[::1/db", "host=127.0.0.1 port=1 user=x password=s3cret connect_timeout=2 sslmode=disable"} {
		_, err := Open(context.Background(), dsn)
		if err == nil {
			t.Errorf("Open(%q) succeeded", dsn)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open(%q) error shows the password: %v", dsn, err)
		}
	}
}

// Replicas share daily quotas: four stores (four gateways' pools) on one database race
// 64 callers for a cap of 20, and exactly 20 are admitted.
func TestReplicasShareQuota(t *testing.T) {
	dsn := pgtest.Schema(t)
	var stores []store.Store
	for range 4 {
		s := open(t, dsn)
		defer s.Close()
		stores = append(stores, s)
	}
	storetest.RaceQuota(t, stores, 64, 20)
}
