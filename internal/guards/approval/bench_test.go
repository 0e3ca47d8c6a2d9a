package approval

import (
	"context"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"

	"github.com/portcullis-mcp/portcullis/internal/store"
)

// BenchmarkPassUnheld is the cost on every call that nothing held.
func BenchmarkPassUnheld(b *testing.B) {
	_, _, g := newGuard(b, openStore(b), Config{})
	resp := jsonrpc.NewResult(jsonrpc.IntID(7), map[string]any{})
	h := g.Middleware()(guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) { return resp, nil }))
	c := call(`{"path":"/workspace/a.txt","n":1}`, nil)
	ctx := context.Background()
	for b.Loop() {
		c.Holds = nil
		if _, err := h.Handle(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGrant is a held call released by an earlier duration approval: canonical
// arguments, their hash and one indexed SQLite lookup.
func BenchmarkGrant(b *testing.B) {
	st := openStore(b)
	h, _, _ := newGuard(b, st, Config{})
	c := call(`{"path":"/workspace/a.txt","n":1}`, nil)
	args, _ := Arguments(c.Msg)
	now := time.Now()
	a := store.Approval{ID: "ap1", ApprovalBinding: Binding(c, args), Session: "s1", Arguments: args, Status: store.ApprovalPending, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := st.CreateApproval(context.Background(), a); err != nil {
		b.Fatal(err)
	}
	if _, err := Settle(context.Background(), st, "ap1", Decision{Approve: true, Scope: store.ScopeDuration, For: time.Hour, Approver: "bob", Via: "cli"}, now); err != nil {
		b.Fatal(err)
	}
	holds := c.Holds
	ctx := context.Background()
	for b.Loop() {
		c.Holds = holds
		if _, err := h.Handle(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
}
