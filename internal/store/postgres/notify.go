package postgres

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// approvalChannel is the LISTEN/NOTIFY channel on which SettleApproval announces the id of
// every approval it settles (in the settling transaction, so the notice is delivered on
// commit). Channels are database-wide: several installations in one database (one schema
// each) hear each other's ids, which only costs a waiter one look at its own approval.
const approvalChannel = "portcullis_approvals"

// watchers fans the notices of one listening connection out to the calls waiting in this
// process. The connection is opened on the first WatchApprovals and kept until Close;
// when it fails it is reopened after a pause (waiters keep polling meanwhile).
type watchers struct {
	mu      sync.Mutex
	subs    map[chan string]struct{}
	started bool
	stop    context.CancelFunc
	done    chan struct{}
}

// WatchApprovals returns a channel that receives the id of every approval settled by any
// process using this database (another replica, the command line), until ctx ends.
func (s *Store) WatchApprovals(ctx context.Context) (<-chan string, error) {
	ch := make(chan string, 16)
	w := &s.watch
	w.mu.Lock()
	if w.subs == nil {
		w.subs = map[chan string]struct{}{}
	}
	w.subs[ch] = struct{}{}
	if !w.started {
		w.started = true
		lctx, cancel := context.WithCancel(context.Background())
		w.stop, w.done = cancel, make(chan struct{})
		go s.listen(lctx, w.done)
	}
	w.mu.Unlock()
	go func() {
		<-ctx.Done()
		w.mu.Lock()
		delete(w.subs, ch)
		w.mu.Unlock()
	}()
	return ch, nil
}

func (s *Store) listen(ctx context.Context, done chan struct{}) {
	defer close(done)
	for ctx.Err() == nil {
		err := s.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		_ = err // waiters poll until the connection is back
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (s *Store) listenOnce(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+approvalChannel); err != nil {
		return err
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		s.watch.mu.Lock()
		for ch := range s.watch.subs {
			select {
			case ch <- n.Payload:
			default: // a busy waiter looks at the store on its next tick anyway
			}
		}
		s.watch.mu.Unlock()
	}
}

// closeWatch stops the listening connection.
func (s *Store) closeWatch() {
	w := &s.watch
	w.mu.Lock()
	stop, done := w.stop, w.done
	w.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}
