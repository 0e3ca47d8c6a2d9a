package audit

import "sync/atomic"

// A subscriber receives copies of the events the broker recorded, in chain order.
type subscriber struct {
	ch      chan Event
	dropped atomic.Uint64
}

// Subscription is a live view of the trail (the dashboard's feed): every event recorded
// by this process after Subscribe, in chain order. A subscriber that does not keep up
// loses events rather than slowing the trail down; Dropped counts them.
type Subscription struct {
	C      <-chan Event
	b      *Broker
	s      *subscriber
	closed atomic.Bool
}

// Subscribe returns a subscription with a buffer of n events (at least 1).
func (b *Broker) Subscribe(n int) *Subscription {
	if n < 1 {
		n = 1
	}
	s := &subscriber{ch: make(chan Event, n)}
	b.subMu.Lock()
	if b.subs == nil {
		b.subs = map[*subscriber]struct{}{}
	}
	b.subs[s] = struct{}{}
	b.nsubs.Store(int32(len(b.subs)))
	b.subMu.Unlock()
	return &Subscription{C: s.ch, b: b, s: s}
}

// Dropped is how many events the subscription lost because its buffer was full.
func (s *Subscription) Dropped() uint64 { return s.s.dropped.Load() }

// Close ends the subscription; C is not closed (a pending receive simply never gets more).
func (s *Subscription) Close() {
	if s.closed.Swap(true) {
		return
	}
	s.b.subMu.Lock()
	delete(s.b.subs, s.s)
	s.b.nsubs.Store(int32(len(s.b.subs)))
	s.b.subMu.Unlock()
}

// publish hands copies of recorded events to the subscribers, never blocking.
func (b *Broker) publish(events []*Event) {
	if b.nsubs.Load() == 0 { // nobody watching: no lock on the trail's path
		return
	}
	b.subMu.Lock()
	defer b.subMu.Unlock()
	if len(b.subs) == 0 {
		return
	}
	for _, e := range events {
		for s := range b.subs {
			select {
			case s.ch <- *e:
			default:
				s.dropped.Add(1)
			}
		}
	}
}
