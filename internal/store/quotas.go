package store

import "context"

// Quotas are daily counters shared by every process that uses the store: the limits
// guard's daily call quotas and cost budgets. An add is atomic and never takes a counter
// past its cap, however many gateways add at once: the store, not a replica's memory,
// decides.
type Quotas interface {
	// AddQuotas adds each N to its counter of day unless one of the sums would pass its
	// Cap: all of them or none. ok reports whether they were added; values are the
	// counters after the adds or, when refused, as they are (so the caller can tell which
	// cap and by how much). N may be negative (a refund; counters never go below 0, and a
	// refund is never refused). Cap < 0 means no cap.
	AddQuotas(ctx context.Context, day string, adds []QuotaAdd) (values []int64, ok bool, err error)
	// ListQuotas returns the counters of day, ordered by key.
	ListQuotas(ctx context.Context, day string) ([]QuotaCount, error)
	// PruneQuotas removes the counters of the days before day (days compare as strings,
	// so they are written "2006-01-02") and returns how many were removed.
	PruneQuotas(ctx context.Context, before string) (int, error)
}

// QuotaAdd asks to add N to the counter Key unless the sum would pass Cap.
type QuotaAdd struct {
	Key string
	N   int64
	Cap int64 // < 0: no cap
}

// QuotaCount is one counter of one day.
type QuotaCount struct {
	Key string
	N   int64
}
