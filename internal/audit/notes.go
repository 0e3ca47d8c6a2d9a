package audit

import (
	"context"
	"sync"
)

// Notes collect what guards inside the audit guard want recorded with a call: findings of
// detectors (which the audit guard writes with the call's outcome, and uses to keep
// secrets out of the trail).
type Notes struct {
	mu        sync.Mutex
	findings  []Finding
	decisions []Event
	traceID   string
	spanID    string
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

// Decide adds a decision about the call in ctx (an approval: code, guard, approval id,
// approver, message), which the audit guard records as an event of kind "decision"
// before the call's response event. A no-op when audit is off.
func Decide(ctx context.Context, e Event) {
	n, _ := ctx.Value(notesKey{}).(*Notes)
	if n == nil {
		return
	}
	n.mu.Lock()
	n.decisions = append(n.decisions, e)
	n.mu.Unlock()
}

// Decisions returns the decisions reported.
func (n *Notes) Decisions() []Event {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Event(nil), n.decisions...)
}

// ReportSpan records the span that covers the call in ctx (the trace guard's), so that the
// call's outcome event names it (a no-op when audit is off).
func ReportSpan(ctx context.Context, traceID, spanID string) {
	n, _ := ctx.Value(notesKey{}).(*Notes)
	if n == nil {
		return
	}
	n.mu.Lock()
	n.traceID, n.spanID = traceID, spanID
	n.mu.Unlock()
}

// Span returns the reported span ("" when none).
func (n *Notes) Span() (traceID, spanID string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.traceID, n.spanID
}
