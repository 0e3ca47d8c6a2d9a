// Package storetest is the behaviour every store.Store implementation must have. An
// implementation's tests call Run with a function that opens a fresh, empty store.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/store"
)

// Open returns a new, empty store; the suite closes it.
type Open func(t *testing.T) store.Store

// Run runs the suite.
func Run(t *testing.T, open Open) {
	for _, tc := range append([]struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"CreateLookup", testCreateLookup},
		{"CreateDuplicate", testCreateDuplicate},
		{"LookupMissing", testLookupMissing},
		{"List", testList},
		{"Revoke", testRevoke},
		{"Touch", testTouch},
		{"Concurrent", testConcurrent},
		{"AuditAppendScan", testAuditAppendScan},
		{"AuditConflict", testAuditConflict},
		{"AuditLargeBatch", testAuditLargeBatch},
		{"AuditSearch", testAuditSearch},
		{"Pins", testPins},
		{"PinsConcurrentFirst", testPinsConcurrentFirst},
	}, append(approvalCases, quotaCases...)...) {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			defer func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			}()
			tc.fn(t, s)
		})
	}
}

// Stores keep times to the microsecond at least (PostgreSQL's precision); the suite
// compares them truncated to the microsecond.
var t0 = time.Date(2026, 7, 28, 12, 0, 0, 123456000, time.UTC)

func key(id, name string, groups ...string) store.Key {
	return store.Key{ID: id, Name: name, Groups: groups, Hash: []byte("hash-of-" + id), CreatedAt: t0}
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Truncate(time.Microsecond).Equal(b.Truncate(time.Microsecond))
}

// checkKey compares two keys, times by instant at microsecond precision.
func checkKey(t *testing.T, got, want store.Key) {
	t.Helper()
	if got.ID != want.ID || got.Name != want.Name || !reflect.DeepEqual(got.Groups, want.Groups) || string(got.Hash) != string(want.Hash) {
		t.Errorf("key = %+v, want %+v", got, want)
	}
	if !sameTime(&got.CreatedAt, &want.CreatedAt) || !sameTime(got.RevokedAt, want.RevokedAt) || !sameTime(got.LastUsed, want.LastUsed) {
		t.Errorf("key times = created %v revoked %v used %v, want %v %v %v", got.CreatedAt, got.RevokedAt, got.LastUsed, want.CreatedAt, want.RevokedAt, want.LastUsed)
	}
}

func testCreateLookup(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, k := range []store.Key{key("k1", "ci-bot", "ci", "deploy"), key("k2", "alice")} {
		if err := s.CreateKey(ctx, k); err != nil {
			t.Fatalf("CreateKey(%s): %v", k.ID, err)
		}
		got, err := s.LookupKey(ctx, k.ID)
		if err != nil {
			t.Fatalf("LookupKey(%s): %v", k.ID, err)
		}
		checkKey(t, got, k)
		if got.Revoked() {
			t.Errorf("new key %s is revoked", k.ID)
		}
	}
}

func testCreateDuplicate(t *testing.T, s store.Store) {
	ctx := context.Background()
	if err := s.CreateKey(ctx, key("k1", "a")); err != nil {
		t.Fatal(err)
	}
	err := s.CreateKey(ctx, key("k1", "b"))
	if !errors.Is(err, store.ErrExists) {
		t.Fatalf("second CreateKey(k1) = %v, want ErrExists", err)
	}
	got, _ := s.LookupKey(ctx, "k1")
	if got.Name != "a" {
		t.Errorf("the duplicate replaced the key: %+v", got)
	}
}

func testLookupMissing(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.LookupKey(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LookupKey(nope) = %v, want ErrNotFound", err)
	}
	if err := s.RevokeKey(ctx, "nope", t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RevokeKey(nope) = %v, want ErrNotFound", err)
	}
	if err := s.TouchKey(ctx, "nope", t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TouchKey(nope) = %v, want ErrNotFound", err)
	}
}

func testList(t *testing.T, s store.Store) {
	ctx := context.Background()
	keys, err := s.ListKeys(ctx)
	if err != nil || len(keys) != 0 {
		t.Fatalf("ListKeys of an empty store = %v, %v", keys, err)
	}
	var want []store.Key
	for i, id := range []string{"c", "a", "b"} {
		k := key(id, "n-"+id)
		k.CreatedAt = t0.Add(time.Duration(i) * time.Second) // c, a, b: oldest first
		want = append(want, k)
		if err := s.CreateKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RevokeKey(ctx, "a", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	revoked := t0.Add(time.Hour)
	want[1].RevokedAt = &revoked
	keys, err = s.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != len(want) {
		t.Fatalf("ListKeys = %d keys, want %d", len(keys), len(want))
	}
	for i := range want {
		checkKey(t, keys[i], want[i])
	}
}

func testRevoke(t *testing.T, s store.Store) {
	ctx := context.Background()
	if err := s.CreateKey(ctx, key("k1", "a")); err != nil {
		t.Fatal(err)
	}
	at := t0.Add(time.Minute)
	if err := s.RevokeKey(ctx, "k1", at); err != nil {
		t.Fatal(err)
	}
	// Revoking again is fine and keeps the first time.
	if err := s.RevokeKey(ctx, "k1", at.Add(time.Hour)); err != nil {
		t.Errorf("second RevokeKey: %v", err)
	}
	got, err := s.LookupKey(ctx, "k1")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Revoked() || !sameTime(got.RevokedAt, &at) {
		t.Errorf("revoked_at = %v, want %v", got.RevokedAt, at)
	}
}

func testTouch(t *testing.T, s store.Store) {
	ctx := context.Background()
	if err := s.CreateKey(ctx, key("k1", "a")); err != nil {
		t.Fatal(err)
	}
	later, earlier := t0.Add(2*time.Minute), t0.Add(time.Minute)
	if err := s.TouchKey(ctx, "k1", later); err != nil {
		t.Fatal(err)
	}
	if err := s.TouchKey(ctx, "k1", earlier); err != nil { // a late writer does not move it back
		t.Fatal(err)
	}
	got, _ := s.LookupKey(ctx, "k1")
	if !sameTime(got.LastUsed, &later) {
		t.Errorf("last_used = %v, want %v", got.LastUsed, later)
	}
	if got.Revoked() {
		t.Error("TouchKey revoked the key")
	}
}

func testConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("k%02d", i)
			if err := s.CreateKey(ctx, key(id, "n")); err != nil {
				errs <- err
				return
			}
			for range 5 {
				if _, err := s.LookupKey(ctx, id); err != nil {
					errs <- err
				}
				if err := s.TouchKey(ctx, id, time.Now()); err != nil {
					errs <- err
				}
			}
			if err := s.RevokeKey(ctx, id, time.Now()); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	keys, err := s.ListKeys(ctx)
	if err != nil || len(keys) != 16 {
		t.Fatalf("ListKeys = %d keys, %v; want 16", len(keys), err)
	}
	for _, k := range keys {
		if !k.Revoked() || k.LastUsed == nil {
			t.Errorf("key %s: revoked %v, last used %v", k.ID, k.RevokedAt, k.LastUsed)
		}
	}
}
