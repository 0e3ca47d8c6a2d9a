package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/store"
)

func testPins(t *testing.T, s store.Store) {
	ctx := context.Background()
	v0, err := s.PinsVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	k := store.PinKey{Server: "files", Kind: "tool", Name: "read"}
	first := store.Pin{PinKey: k, Hash: "sha256:aa", Definition: []byte(`{"name":"read"}`), PinnedAt: t0, PinnedBy: "tofu"}
	got, created, err := s.PinFirst(ctx, first)
	if err != nil || !created {
		t.Fatalf("PinFirst = %v, %v; want created", created, err)
	}
	if got.Hash != "sha256:aa" || string(got.Definition) != `{"name":"read"}` || got.PinnedBy != "tofu" || !sameTime(&got.PinnedAt, &first.PinnedAt) || got.Pending != nil {
		t.Errorf("PinFirst = %+v", got)
	}
	v1, _ := s.PinsVersion(ctx)
	if v1 == v0 {
		t.Errorf("version did not move on insert (%d)", v1)
	}
	// A second PinFirst keeps the first pin.
	other := first
	other.Hash = "sha256:bb"
	if got, created, err = s.PinFirst(ctx, other); err != nil || created || got.Hash != "sha256:aa" {
		t.Errorf("second PinFirst = %+v, %v, %v; want the first pin kept", got, created, err)
	}
	// A change waits as pending.
	cand := store.PinCandidate{Hash: "sha256:cc", Definition: []byte(`{"name":"read","description":"x"}`), SeenAt: t0.Add(time.Minute)}
	if err := s.SetPinPending(ctx, k, cand); err != nil {
		t.Fatal(err)
	}
	v2, _ := s.PinsVersion(ctx)
	if v2 == v1 {
		t.Errorf("version did not move on SetPinPending")
	}
	if err := s.SetPinPending(ctx, store.PinKey{Server: "files", Kind: "tool", Name: "nope"}, cand); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetPinPending(missing) = %v, want ErrNotFound", err)
	}
	ps, err := s.ListPins(ctx)
	if err != nil || len(ps) != 1 || ps[0].Pending == nil || ps[0].Pending.Hash != "sha256:cc" || ps[0].Hash != "sha256:aa" {
		t.Fatalf("ListPins = %+v, %v", ps, err)
	}
	if !sameTime(&ps[0].Pending.SeenAt, &cand.SeenAt) || string(ps[0].Pending.Definition) != string(cand.Definition) {
		t.Errorf("pending = %+v, want %+v", ps[0].Pending, cand)
	}
	// Approving something else than what is pending is a conflict.
	if _, err := s.ApprovePin(ctx, k, "sha256:dd", "alice", t0); !errors.Is(err, store.ErrConflict) {
		t.Errorf("ApprovePin(wrong hash) = %v, want ErrConflict", err)
	}
	at := t0.Add(time.Hour)
	p, err := s.ApprovePin(ctx, k, "sha256:cc", "alice", at)
	if err != nil {
		t.Fatal(err)
	}
	if p.Hash != "sha256:cc" || p.Pending != nil || p.PinnedBy != "alice" {
		t.Errorf("ApprovePin = %+v", p)
	}
	ps, _ = s.ListPins(ctx)
	if len(ps) != 1 || ps[0].Hash != "sha256:cc" || ps[0].Pending != nil || string(ps[0].Definition) != string(cand.Definition) || !sameTime(&ps[0].PinnedAt, &at) {
		t.Errorf("after approve: %+v", ps)
	}
	if _, err := s.ApprovePin(ctx, k, "", "alice", at); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ApprovePin with nothing pending = %v, want ErrNotFound", err)
	}
	if _, err := s.ApprovePin(ctx, store.PinKey{Server: "x", Kind: "tool", Name: "y"}, "", "alice", at); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ApprovePin(missing) = %v, want ErrNotFound", err)
	}
	// A new definition under review: no approved hash, pending set.
	rk := store.PinKey{Server: "files", Kind: "prompt", Name: "summarize"}
	got, _, err = s.PinFirst(ctx, store.Pin{PinKey: rk, PinnedAt: t0, Pending: &store.PinCandidate{Hash: "sha256:ee", Definition: []byte(`{}`), SeenAt: t0}})
	if err != nil || got.Hash != "" || got.Pending == nil || got.Pending.Hash != "sha256:ee" {
		t.Errorf("PinFirst under review = %+v, %v", got, err)
	}
	for _, n := range []string{"a", "b"} {
		if _, _, err := s.PinFirst(ctx, store.Pin{PinKey: store.PinKey{Server: "web", Kind: "tool", Name: n}, Hash: "sha256:" + n, PinnedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	ps, _ = s.ListPins(ctx)
	var order []string
	for _, p := range ps {
		order = append(order, p.Server+"/"+p.Kind+"/"+p.Name)
	}
	if fmt.Sprint(order) != "[files/prompt/summarize files/tool/read web/tool/a web/tool/b]" {
		t.Errorf("ListPins order = %v", order)
	}
	if n, err := s.DeletePins(ctx, "web", "tool", "a"); err != nil || n != 1 {
		t.Errorf("DeletePins(web a) = %d, %v", n, err)
	}
	if n, err := s.DeletePins(ctx, "files", "", ""); err != nil || n != 2 {
		t.Errorf("DeletePins(files) = %d, %v", n, err)
	}
	ps, _ = s.ListPins(ctx)
	if len(ps) != 1 || ps[0].Name != "b" {
		t.Errorf("after deletes: %+v", ps)
	}
	v3, _ := s.PinsVersion(ctx)
	if v3 <= v2 {
		t.Errorf("version %d after deletes, was %d", v3, v2)
	}
}

func testPinsConcurrentFirst(t *testing.T, s store.Store) {
	ctx := context.Background()
	k := store.PinKey{Server: "s", Kind: "tool", Name: "t"}
	var wg sync.WaitGroup
	hashes := make([]string, 8)
	errs := make([]error, 8)
	created := make([]bool, 8)
	for i := range hashes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, c, err := s.PinFirst(ctx, store.Pin{PinKey: k, Hash: fmt.Sprintf("sha256:%d", i), PinnedAt: t0})
			hashes[i], created[i], errs[i] = p.Hash, c, err
		}()
	}
	wg.Wait()
	n := 0
	for _, c := range created {
		if c {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d concurrent PinFirst calls created the pin, want 1", n)
	}
	for i := range hashes {
		if errs[i] != nil {
			t.Fatalf("PinFirst %d: %v", i, errs[i])
		}
		if hashes[i] != hashes[0] {
			t.Errorf("concurrent PinFirst disagree: %v", hashes)
			break
		}
	}
}
