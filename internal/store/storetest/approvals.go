package storetest

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/store"
)

// approvalCases are the suite's cases for store.Approvals.
var approvalCases = []struct {
	name string
	fn   func(*testing.T, store.Store)
}{
	{"ApprovalCreateGet", testApprovalCreateGet},
	{"ApprovalList", testApprovalList},
	{"ApprovalSettle", testApprovalSettle},
	{"ApprovalSettleLate", testApprovalSettleLate},
	{"ApprovalSettleConcurrent", testApprovalSettleConcurrent},
	{"ApprovalGrants", testApprovalGrants},
}

func binding(principal, args string) store.ApprovalBinding {
	return store.ApprovalBinding{Principal: principal, PrincipalMethod: "apikey", Server: "github", Method: "tools/call", Tool: "merge_pr", ArgsHash: "hash-" + args}
}

func approval(id string, b store.ApprovalBinding, created time.Time) store.Approval {
	return store.Approval{ID: id, ApprovalBinding: b, Session: "s1", Arguments: []byte(`{"pr":1}`), Reason: `authz: rule "merge"`,
		Approvers: []string{"secops"}, Status: store.ApprovalPending, CreatedAt: created, ExpiresAt: created.Add(5 * time.Minute)}
}

func checkApproval(t *testing.T, got, want store.Approval) {
	t.Helper()
	if got.ID != want.ID || got.ApprovalBinding != want.ApprovalBinding || got.Session != want.Session || string(got.Arguments) != string(want.Arguments) ||
		got.Reason != want.Reason || !reflect.DeepEqual(got.Approvers, want.Approvers) || got.Status != want.Status || got.Scope != want.Scope ||
		got.Approver != want.Approver || got.Via != want.Via || got.Note != want.Note {
		t.Errorf("approval = %+v, want %+v", got, want)
	}
	if !sameTime(&got.CreatedAt, &want.CreatedAt) || !sameTime(&got.ExpiresAt, &want.ExpiresAt) || !sameTime(got.GrantUntil, want.GrantUntil) || !sameTime(got.DecidedAt, want.DecidedAt) {
		t.Errorf("approval times = %v %v %v %v, want %v %v %v %v", got.CreatedAt, got.ExpiresAt, got.GrantUntil, got.DecidedAt, want.CreatedAt, want.ExpiresAt, want.GrantUntil, want.DecidedAt)
	}
}

func testApprovalCreateGet(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := approval("ap1", binding("alice", "a"), t0)
	if err := s.CreateApproval(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetApproval(ctx, "ap1")
	if err != nil {
		t.Fatal(err)
	}
	checkApproval(t, got, a)
	if err := s.CreateApproval(ctx, a); !errors.Is(err, store.ErrExists) {
		t.Errorf("CreateApproval of an existing id: %v, want ErrExists", err)
	}
	if _, err := s.GetApproval(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetApproval(nope): %v, want ErrNotFound", err)
	}
	b := approval("ap2", binding("bob", "b"), t0)
	b.Approvers, b.Arguments = nil, nil
	if err := s.CreateApproval(ctx, b); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetApproval(ctx, "ap2")
	if err != nil {
		t.Fatal(err)
	}
	checkApproval(t, got, b)
}

func testApprovalList(t *testing.T, s store.Store) {
	ctx := context.Background()
	for i, id := range []string{"ap1", "ap2", "ap3"} {
		if err := s.CreateApproval(ctx, approval(id, binding("alice", id), t0.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.SettleApproval(ctx, "ap2", store.ApprovalDecision{Status: store.ApprovalDenied, Approver: "carol", Via: "cli", At: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	ids := func(as []store.Approval) []string {
		var out []string
		for _, a := range as {
			out = append(out, a.ID)
		}
		return out
	}
	all, err := s.ListApprovals(ctx, "", 0)
	if err != nil || !reflect.DeepEqual(ids(all), []string{"ap3", "ap2", "ap1"}) {
		t.Errorf("ListApprovals(all) = %v, %v; want newest first", ids(all), err)
	}
	pending, err := s.ListApprovals(ctx, store.ApprovalPending, 0)
	if err != nil || !reflect.DeepEqual(ids(pending), []string{"ap3", "ap1"}) {
		t.Errorf("ListApprovals(pending) = %v, %v", ids(pending), err)
	}
	one, err := s.ListApprovals(ctx, "", 1)
	if err != nil || !reflect.DeepEqual(ids(one), []string{"ap3"}) {
		t.Errorf("ListApprovals(limit 1) = %v, %v", ids(one), err)
	}
}

func testApprovalSettle(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := approval("ap1", binding("alice", "a"), t0)
	if err := s.CreateApproval(ctx, a); err != nil {
		t.Fatal(err)
	}
	at := t0.Add(time.Minute)
	until := at.Add(10 * time.Minute)
	got, err := s.SettleApproval(ctx, "ap1", store.ApprovalDecision{Status: store.ApprovalApproved, Scope: store.ScopeDuration, GrantUntil: &until,
		Approver: "carol", Via: "dashboard", Note: "ok", At: at})
	if err != nil {
		t.Fatal(err)
	}
	a.Status, a.Scope, a.GrantUntil, a.Approver, a.Via, a.Note, a.DecidedAt = store.ApprovalApproved, store.ScopeDuration, &until, "carol", "dashboard", "ok", &at
	checkApproval(t, got, a)
	stored, _ := s.GetApproval(ctx, "ap1")
	checkApproval(t, stored, a)
	// Settled once: never again, and it stays as it was.
	again, err := s.SettleApproval(ctx, "ap1", store.ApprovalDecision{Status: store.ApprovalDenied, Approver: "mallory", Via: "cli", At: at})
	if !errors.Is(err, store.ErrNotPending) {
		t.Fatalf("second SettleApproval: %v, want ErrNotPending", err)
	}
	checkApproval(t, again, a)
	if _, err := s.SettleApproval(ctx, "nope", store.ApprovalDecision{Status: store.ApprovalDenied, At: at}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SettleApproval(nope): %v, want ErrNotFound", err)
	}
	if _, err := s.SettleApproval(ctx, "ap1", store.ApprovalDecision{Status: "maybe", At: at}); err == nil || errors.Is(err, store.ErrNotPending) {
		t.Errorf("SettleApproval with status maybe: %v, want an error", err)
	}
}

func testApprovalSettleLate(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := approval("ap1", binding("alice", "a"), t0)
	if err := s.CreateApproval(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, err := s.SettleApproval(ctx, "ap1", store.ApprovalDecision{Status: store.ApprovalApproved, Scope: store.ScopeOnce, Approver: "carol", Via: "cli", At: a.ExpiresAt.Add(time.Second)})
	if !errors.Is(err, store.ErrNotPending) || got.Status != store.ApprovalExpired {
		t.Fatalf("approving after the deadline: %v, status %q; want ErrNotPending and expired", err, got.Status)
	}
	stored, _ := s.GetApproval(ctx, "ap1")
	if stored.Status != store.ApprovalExpired || stored.Approver != "" {
		t.Errorf("stored after a late approval: %+v, want expired with no approver", stored)
	}
}

func testApprovalSettleConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	if err := s.CreateApproval(ctx, approval("ap1", binding("alice", "a"), t0)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status := store.ApprovalApproved
			if i%2 == 1 {
				status = store.ApprovalDenied
			}
			_, err := s.SettleApproval(ctx, "ap1", store.ApprovalDecision{Status: status, Scope: store.ScopeOnce, Approver: "carol", Via: "cli", At: t0.Add(time.Second)})
			if err == nil {
				mu.Lock()
				won++
				mu.Unlock()
			} else if !errors.Is(err, store.ErrNotPending) {
				t.Errorf("SettleApproval: %v", err)
			}
		}()
	}
	wg.Wait()
	if won != 1 {
		t.Errorf("%d concurrent settlements succeeded, want exactly 1", won)
	}
}

func testApprovalGrants(t *testing.T, s store.Store) {
	ctx := context.Background()
	at := t0.Add(time.Minute)
	until := at.Add(10 * time.Minute)
	settle := func(a store.Approval, d store.ApprovalDecision) {
		t.Helper()
		if err := s.CreateApproval(ctx, a); err != nil {
			t.Fatal(err)
		}
		if d.Status != "" {
			if _, err := s.SettleApproval(ctx, a.ID, d); err != nil {
				t.Fatal(err)
			}
		}
	}
	settle(approval("once", binding("alice", "once"), t0), store.ApprovalDecision{Status: store.ApprovalApproved, Scope: store.ScopeOnce, Approver: "c", Via: "cli", At: at})
	settle(approval("sess", binding("alice", "sess"), t0), store.ApprovalDecision{Status: store.ApprovalApproved, Scope: store.ScopeSession, Approver: "c", Via: "cli", At: at})
	settle(approval("dur", binding("alice", "dur"), t0), store.ApprovalDecision{Status: store.ApprovalApproved, Scope: store.ScopeDuration, GrantUntil: &until, Approver: "c", Via: "cli", At: at})
	settle(approval("denied", binding("alice", "denied"), t0), store.ApprovalDecision{Status: store.ApprovalDenied, Approver: "c", Via: "cli", At: at})
	settle(approval("pending", binding("alice", "pending"), t0), store.ApprovalDecision{})
	other := binding("alice", "dur")
	other.PrincipalMethod = "oidc"
	for _, tc := range []struct {
		name    string
		b       store.ApprovalBinding
		session string
		now     time.Time
		want    string // "" for none
	}{
		{"once never grants", binding("alice", "once"), "s1", at, ""},
		{"session in its session", binding("alice", "sess"), "s1", at.Add(time.Hour), "sess"},
		{"session in another session", binding("alice", "sess"), "s2", at, ""},
		{"session without a session", binding("alice", "sess"), "", at, ""},
		{"duration within", binding("alice", "dur"), "s9", until.Add(-time.Second), "dur"},
		{"duration after", binding("alice", "dur"), "s1", until.Add(time.Second), ""},
		{"other principal", binding("bob", "dur"), "s1", at, ""},
		{"same name, other authentication", other, "s1", at, ""},
		{"other arguments", binding("alice", "other"), "s1", at, ""},
		{"denied", binding("alice", "denied"), "s1", at, ""},
		{"pending", binding("alice", "pending"), "s1", at, ""},
	} {
		got, err := s.FindGrant(ctx, tc.b, tc.session, tc.now)
		switch {
		case tc.want == "" && !errors.Is(err, store.ErrNotFound):
			t.Errorf("%s: FindGrant = %q, %v; want ErrNotFound", tc.name, got.ID, err)
		case tc.want != "" && (err != nil || got.ID != tc.want):
			t.Errorf("%s: FindGrant = %q, %v; want %q", tc.name, got.ID, err, tc.want)
		}
	}
}
