package audit

import (
	"context"
	"sync"
)

// Notes collect what guards inside the audit guard want recorded with a call: findings of
// detectors (which the audit guard writes with the call's outcome, and uses to keep
// secrets out of the trail).
type Notes struct {
	mu       sync.Mutex
	findings []Finding
}

type notesKey struct{}

// WithNotes returns ctx carrying n.
func WithNotes(ctx context.Context, n *Notes) context.Context {
	return context.WithValue(ctx, notesKey{}, n)
}

// Report adds findings to the call in ctx (a no-op when audit is off). in says where the
// pointers point: "arguments" or "result".
func Report(ctx context.Context, fs ...Finding) {
	n, _ := ctx.Value(notesKey{}).(*Notes)
	if n == nil || len(fs) == 0 {
		return
	}
	n.mu.Lock()
	n.findings = append(n.findings, fs...)
	n.mu.Unlock()
}

// Findings returns what was reported.
func (n *Notes) Findings() []Finding {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Finding(nil), n.findings...)
}
