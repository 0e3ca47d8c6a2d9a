package store

import (
	"context"
	"errors"
	"time"
)

// AuditLog keeps the audit trail: hash-chained events, one chain per writing process (a
// gateway, or each replica of a fleet), stored as the exact canonical lines that were
// hashed, so that verification reads back what was sealed.
type AuditLog interface {
	// AppendAudit stores records at the end of their chain, all or nothing. The first
	// record must follow the chain's last one (its Prev is the last Hash), unless the
	// chain is empty: ErrChainConflict otherwise (another process writes the same chain).
	AppendAudit(ctx context.Context, records []AuditRecord) error
	// LastAudit returns the last record of chain; ErrNotFound when the chain is empty.
	LastAudit(ctx context.Context, chain string) (AuditRecord, error)
	// AuditChains names every chain, sorted.
	AuditChains(ctx context.Context) ([]string, error)
	// ScanAudit calls fn with the records of chain in the order they were stored (Row
	// ascending), from the first with Row > after; it stops early when fn returns false
	// or an error (which is returned).
	ScanAudit(ctx context.Context, chain string, after int64, fn func(AuditRecord) (bool, error)) error
	// SearchAudit returns the records q selects, newest first, at most q.Limit of them.
	SearchAudit(ctx context.Context, q AuditQuery) ([]AuditRecord, error)
}

// AuditRecord is one stored event. Line is authoritative; the other fields are copies
// kept for searching.
type AuditRecord struct {
	Row       int64 // assigned by the store, increasing in storage order
	Chain     string
	Seq       uint64
	Time      time.Time
	Code      string
	Principal string
	Server    string
	Method    string
	Tool      string
	Decision  string
	Prev      string
	Hash      string
	Line      []byte // the canonical JSON encoding of the event, hash included
}

// AuditQuery selects records. Zero fields select everything.
type AuditQuery struct {
	Chain        string
	Since, Until time.Time // Time >= Since, Time < Until
	Principal    string
	Server       string
	Tool         string
	Method       string
	Decision     string
	Code         string
	Limit        int // default 100, at most 10000
}

// ErrChainConflict is returned when appended records do not follow their chain's end.
var ErrChainConflict = errors.New("store: audit chain conflict")
