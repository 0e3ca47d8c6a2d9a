// Package store is the gateway's durable state, behind one interface with an embedded
// SQLite implementation (store/sqlite) and a PostgreSQL one for fleets of replicas
// (store/postgres). Several features share it (API keys, pins, approvals, audit, quotas),
// so the interface lives here rather than with each user; each feature adds a small group
// of methods, implemented in both stores.
//
// storetest holds the suite every implementation must pass (PostgreSQL's runs when
// PORTCULLIS_TEST_POSTGRES names a database: see store/postgres).
package store

import (
	"context"
	"errors"
	"time"
)

// Store is the gateway's durable state. Implementations are safe for concurrent use, and
// for use by several processes at once (serve, and the keys command).
type Store interface {
	// CreateKey records a new API key. Its ID must be new: ErrExists otherwise.
	CreateKey(ctx context.Context, k Key) error
	// LookupKey returns the key with id (revoked or not), or ErrNotFound.
	LookupKey(ctx context.Context, id string) (Key, error)
	// ListKeys returns every key, revoked ones included, oldest first.
	ListKeys(ctx context.Context) ([]Key, error)
	// RevokeKey marks the key revoked at at. ErrNotFound when there is no such key;
	// revoking a revoked key keeps the first time and is not an error.
	RevokeKey(ctx context.Context, id string, at time.Time) error
	// TouchKey records that the key was used at at (LastUsed only moves forward).
	TouchKey(ctx context.Context, id string, at time.Time) error

	AuditLog
	Pins // tool, prompt and resource template pins (pins.go)
	Approvals
	Quotas // daily counters of calls and cost units (quotas.go)

	// Close releases the store.
	Close() error
}

// Key is an API key as stored: never the secret, only its hash.
type Key struct {
	ID        string     // public identifier, part of the key itself (pc_<id>_<secret>)
	Name      string     // who or what holds it; the principal id of requests made with it
	Groups    []string   // the principal's groups
	Hash      []byte     // hash of the secret (see identity.HashSecret)
	CreatedAt time.Time  //
	RevokedAt *time.Time // nil while the key is valid
	LastUsed  *time.Time // nil when never used; updated coarsely, not on every request
}

// Revoked reports whether the key was revoked.
func (k Key) Revoked() bool { return k.RevokedAt != nil }

var (
	// ErrNotFound is returned when a record does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrExists is returned when a record to create already exists.
	ErrExists = errors.New("store: already exists")
)
