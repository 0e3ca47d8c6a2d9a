package postgres

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/guards/approval"
	"github.com/portcullis-mcp/portcullis/internal/identity"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
	"github.com/portcullis-mcp/portcullis/internal/store"
	"github.com/portcullis-mcp/portcullis/internal/store/postgres/pgtest"
)

// A settlement through one store (another replica, the command line) is announced to the
// watchers of another.
func TestWatchApprovals(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn := pgtest.Schema(t)
	a, b := open(t, dsn), open(t, dsn)
	defer a.Close()
	defer b.Close()
	ch, err := a.WatchApprovals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitListening(ctx, t, b)
	now := time.Now()
	ap := store.Approval{ID: "ap1", Status: store.ApprovalPending, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := b.CreateApproval(ctx, ap); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SettleApproval(ctx, "ap1", store.ApprovalDecision{Status: store.ApprovalDenied, Approver: "bob", Via: "cli", At: now}); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-ch:
		if id != "ap1" {
			t.Fatalf("notice %q, want ap1", id)
		}
	case <-ctx.Done():
		t.Fatal("no notice of a settlement through another store")
	}
}

// waitListening waits until a connection of the database is listening for settlements
// (idle after its LISTEN), so that a notice sent now reaches it.
func waitListening(ctx context.Context, t *testing.T, s *Store) {
	t.Helper()
	for {
		var n int
		if err := s.pool.QueryRow(ctx, "SELECT COUNT(*) FROM pg_stat_activity WHERE state = 'idle' AND query = 'LISTEN "+approvalChannel+"'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type upstream struct{ calls int }

func (u *upstream) Handle(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
	if err := guard.Unheld(c); err != nil {
		return nil, err
	}
	u.calls++
	return jsonrpc.NewResult(c.Msg.ID, map[string]any{}), nil
}

// A call held on one replica is released when another settles its approval, by the
// notice: the held call's own polling is an hour apart, so only the notice can release it.
func TestApprovalReleasedAcrossReplicas(t *testing.T) {
	dsn := pgtest.Schema(t)
	r1, r2 := open(t, dsn), open(t, dsn)
	defer r1.Close()
	defer r2.Close()
	g, err := approval.Compile(approval.Config{Timeout: 10 * time.Minute, PollInterval: time.Hour}, approval.Options{Store: r1})
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{}
	h := g.Middleware()(u)
	c := &guard.Call{Msg: &jsonrpc.Message{ID: jsonrpc.IntID(1), Method: "tools/call", Params: json.RawMessage(`{"name":"deploy","arguments":{"env":"prod"}}`)},
		Direction: guard.Inbound, Session: "s", Principal: identity.Principal{ID: "alice", Method: "apikey"}, Server: "ci", Name: "deploy", Era: "legacy",
		Holds: []guard.Hold{{Guard: "authz", Reason: "r", Approvers: []string{"ops"}}}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := h.Handle(ctx, c); done <- err }()
	var id string
	for id == "" {
		as, err := r2.ListApprovals(ctx, store.ApprovalPending, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(as) == 1 {
			id = as[0].ID
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
	// The held call's watcher subscribes right after creating the approval; the notice
	// reaches it once the listening connection is up.
	waitListening(ctx, t, r2)
	if _, err := approval.Settle(ctx, r2, id, approval.Decision{Approve: true, Approver: "bob", Via: "cli"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil || u.calls != 1 {
		t.Fatalf("held call: %v, upstream calls %d", err, u.calls)
	}
}
