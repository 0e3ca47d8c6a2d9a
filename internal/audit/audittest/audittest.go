// Package audittest has audit sinks for tests: one that records, one that fails on demand
// and one that stalls.
package audittest

import (
	"context"
	"errors"
	"sync"

	"github.com/portcullis-mcp/portcullis/internal/audit"
)

// ErrFailing is what a failing Sink returns.
var ErrFailing = errors.New("audittest: sink failing")

// Sink records what it is given. Fail makes its writes (and probes) fail; Stall makes
// writes block until the context ends.
type Sink struct {
	N string

	mu     sync.Mutex
	events []audit.Event
	fail   bool
	stall  bool
	writes int
}

// New returns a recording sink named name.
func New(name string) *Sink { return &Sink{N: name} }

// Name implements audit.Sink.
func (s *Sink) Name() string { return s.N }

// Fail sets whether the sink fails.
func (s *Sink) Fail(v bool) { s.mu.Lock(); s.fail = v; s.mu.Unlock() }

// Stall sets whether the sink blocks.
func (s *Sink) Stall(v bool) { s.mu.Lock(); s.stall = v; s.mu.Unlock() }

// Write implements audit.Sink.
func (s *Sink) Write(ctx context.Context, batch []*audit.Event) error {
	s.mu.Lock()
	s.writes++
	stall, fail := s.stall, s.fail
	s.mu.Unlock()
	if stall {
		<-ctx.Done()
		return ctx.Err()
	}
	if fail {
		return ErrFailing
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range batch {
		s.events = append(s.events, *e)
	}
	return nil
}

// Probe implements audit.Sink.
func (s *Sink) Probe(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail || s.stall {
		return ErrFailing
	}
	return nil
}

// Close implements audit.Sink.
func (s *Sink) Close() error { return nil }

// Events returns a copy of what was recorded.
func (s *Sink) Events() []audit.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]audit.Event(nil), s.events...)
}

// Writes returns how many writes were attempted.
func (s *Sink) Writes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes
}

// Reset forgets what was recorded.
func (s *Sink) Reset() {
	s.mu.Lock()
	s.events = nil
	s.mu.Unlock()
}
