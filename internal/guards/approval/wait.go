package approval

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/store"
)

// Watcher is a store that says when approvals are settled, so that a held call is
// released at once rather than at its next look (store/postgres: LISTEN/NOTIFY, which
// also carries settlements by other replicas and by the command line).
type Watcher interface {
	// WatchApprovals returns a channel that receives the id of every approval settled
	// from now until ctx ends (best effort: a held call still looks now and then).
	WatchApprovals(ctx context.Context) (<-chan string, error)
}

// hub carries settlements made in this process (signed links, the dashboard) to the
// calls waiting for them.
var hub = &localHub{subs: map[chan string]struct{}{}}

type localHub struct {
	mu   sync.Mutex
	subs map[chan string]struct{}
}

func (h *localHub) subscribe() (chan string, func()) {
	ch := make(chan string, 8)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.subs, ch)
		h.mu.Unlock()
	}
}

// Settled tells the calls held in this process that approval id was settled. Whatever
// settles approvals in the gateway's process (the links, the dashboard) calls it after
// settling in the store; settlements elsewhere are seen through the store.
func Settled(id string) {
	hub.mu.Lock()
	defer hub.mu.Unlock()
	for ch := range hub.subs {
		select {
		case ch <- id:
		default: // a slow waiter looks at the store on its next tick anyway
		}
	}
}

// waitSettled waits until approval id is no longer pending and returns it: it looks in
// the store every poll interval, and at once when the store's watcher, the process's
// hub or wake say something was settled. It returns ctx's error when ctx ends first.
func waitSettled(ctx context.Context, st store.Store, id string, poll time.Duration, wake <-chan struct{}) (store.Approval, error) {
	local, unsub := hub.subscribe()
	defer unsub()
	var remote <-chan string
	if w, ok := st.(Watcher); ok {
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		if ch, err := w.WatchApprovals(wctx); err == nil {
			remote = ch
		}
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		a, err := st.GetApproval(ctx, id)
		if err != nil && ctx.Err() == nil {
			return store.Approval{}, err
		}
		if err == nil && a.Status != store.ApprovalPending {
			return a, nil
		}
	again:
		select {
		case <-ctx.Done():
			return store.Approval{}, ctx.Err()
		case <-t.C:
		case <-wake:
			wake = nil
		case got, ok := <-remote:
			if !ok {
				remote = nil // the watcher gave up; polling goes on
				goto again
			}
			if got != id {
				goto again
			}
		case got := <-local:
			if got != id {
				goto again
			}
		}
	}
}

var errNoStore = errors.New("no store")
