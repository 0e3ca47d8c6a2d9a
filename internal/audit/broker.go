package audit

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ErrAuditUnavailable is returned by Record when no sink recorded the event.
var ErrAuditUnavailable = errors.New("audit unavailable: no sink recorded the event")

// Sink is where events go. The broker calls Write from one goroutine, with the events in
// chain order; a Sink need not be safe for concurrent Writes, but Probe and Close may come
// from other goroutines.
type Sink interface {
	// Name identifies the sink in logs and metrics ("file", "syslog", "webhook", "store").
	Name() string
	// Write records a batch of sealed events, all or nothing: when it returns nil every
	// event is as durable as the sink promises (a file: written and synced; a queued
	// remote sink: in its on-disk queue). On an error none of them counts as written, and
	// the broker hands the same events again, first, with the next batch.
	Write(ctx context.Context, batch []*Event) error
	// Probe checks that the sink can record (at startup: serve refuses to start when no
	// sink works).
	Probe(ctx context.Context) error
	// Close flushes and releases the sink.
	Close() error
}

// local is a sink whose Write does not wait on anything a deadline could end (it appends
// to a local file without syncing): the broker gives it no timeout.
type local interface{ local() bool }

// Resumer is a sink that can say where the trail it holds ends, so that a restarted
// gateway continues the chain.
type Resumer interface {
	Last() (Position, bool)
}

// Options parameterize a broker.
type Options struct {
	// Timeout bounds one write of a batch to one sink (default 5 s). Record also waits at
	// most this long (plus the time a batch ahead of it takes) before giving up.
	Timeout time.Duration
	// MaxBatch bounds how many events go to the sinks in one write (default 256).
	MaxBatch int
	// MaxBacklog bounds the events kept for one failing sink while others record them
	// (default 65536); past it the sink's copy of the trail has a gap, which is logged.
	MaxBacklog int
	Logger     *slog.Logger
	// Now is the clock (tests).
	Now func() time.Time
}

// SinkStats counts what happened to one sink.
type SinkStats struct {
	Name     string
	Written  uint64 // events written
	Failures uint64 // failed writes
	Backlog  int    // events waiting for the sink to come back
	Dropped  uint64 // events dropped from the backlog (a gap in this sink's copy)
	LastErr  string
}

// Broker seals events into one chain and writes them to every sink.
//
// Writes are group commits without a goroutine of their own: Record queues the event, and
// the first caller that finds no write in progress becomes the writer. It seals and writes
// the queue as one batch (its own event and every event queued meanwhile), acknowledges
// the batch, and, when more events were queued during its write, asks the first of their
// callers to write the next batch. A caller alone (one session) so writes its own event
// without waking any other goroutine; many callers share one write per batch.
type Broker struct {
	opts   Options
	closed atomic.Bool
	stop   sync.Once
	mu     sync.Mutex // guards sinks and stats for Stats/SetSinks
	sinks  []*sinkState

	qmu     sync.Mutex // guards queue, writing, leader, shut
	queue   []*pending // events waiting for the next batch, in arrival order
	writing bool       // a caller writes a batch, or has been asked to (leader)
	leader  *pending   // the waiting caller asked to write the next batch
	shut    bool       // Close was called: no more events
	idle    sync.Cond  // on qmu: writing became false

	wmu    sync.Mutex // held by the writer while it seals and writes a batch
	pos    Position   // the end of the chain (wmu)
	buf    []byte     // scratch for sealing (wmu)
	batch  []*pending // the batch being written (wmu)
	events []*Event   // its events (wmu)

	recorded, refused atomic.Uint64
	refusedSince      atomic.Uint64 // refusals since the last success (for PC1901W)

	subMu sync.Mutex
	subs  map[*subscriber]struct{}
	nsubs atomic.Int32
}

type sinkState struct {
	sink    Sink
	backlog []*Event
	stats   SinkStats
}

// pending is one event on its way through the broker. done receives the outcome, or
// errLead when its caller is asked to write the next batch.
type pending struct {
	e    *Event
	done chan error
}

// errLead tells a waiting caller to write the next batch.
var errLead = errors.New("audit: write the next batch")

var pendingPool = sync.Pool{New: func() any { return &pending{done: make(chan error, 1)} }}

// NewBroker starts a broker writing to sinks. The chain continues from the furthest
// position any Resumer sink reports. It records a PC1900I event (audit started); an error
// is returned when no sink can record it.
func NewBroker(sinks []Sink, o Options) (*Broker, error) {
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 256
	}
	if o.MaxBacklog <= 0 {
		o.MaxBacklog = 65536
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	b := &Broker{opts: o}
	b.idle.L = &b.qmu
	for _, s := range sinks {
		b.sinks = append(b.sinks, &sinkState{sink: s, stats: SinkStats{Name: s.Name()}})
		if r, ok := s.(Resumer); ok {
			if p, ok := r.Last(); ok && p.Seq > b.pos.Seq {
				b.pos = p
			}
		}
	}
	if err := b.Record(context.Background(), &Event{Code: CodeStarted, Kind: KindSystem, Message: "audit trail started"}); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// NewID returns a fresh random id (128 bits from crypto/rand).
func NewID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Event ids Record fills in: unique, not secret. 64 random bits drawn once per process
// and a 64-bit counter that starts at a random value: 32 hex digits, as NewID's, without
// a system call per event.
var (
	idPrefix  [8]byte
	idCounter atomic.Uint64
)

func init() {
	var b [16]byte
	rand.Read(b[:])
	copy(idPrefix[:], b[:8])
	idCounter.Store(binary.BigEndian.Uint64(b[8:]))
}

func eventID() string {
	var b [16]byte
	copy(b[:8], idPrefix[:])
	binary.BigEndian.PutUint64(b[8:], idCounter.Add(1))
	var out [32]byte
	hex.Encode(out[:], b[:])
	return string(out[:]) // one allocation (EncodeToString makes two)
}

// Record seals e into the chain and writes it to every sink. It returns nil once at least
// one sink has recorded it, and an error wrapping ErrAuditUnavailable when none did (or
// none did in time). The caller's cancellation does not stop the write. Record fills a
// missing ID and Time.
//
// A caller that writes a batch itself waits for the sinks, whose writes are bounded by
// Options.Timeout; a caller waiting for another's batch gives up after twice that, plus a
// second.
func (b *Broker) Record(ctx context.Context, e *Event) error {
	if e.ID == "" {
		e.ID = eventID()
	}
	if e.Time.IsZero() {
		e.Time = b.opts.Now()
	}
	if b.closed.Load() {
		return fmt.Errorf("%w: the broker is closed", ErrAuditUnavailable)
	}
	p := pendingPool.Get().(*pending)
	p.e = e
	b.qmu.Lock()
	if b.shut {
		b.qmu.Unlock()
		p.e = nil
		pendingPool.Put(p)
		return fmt.Errorf("%w: the broker is closed", ErrAuditUnavailable)
	}
	b.queue = append(b.queue, p)
	var err error
	if !b.writing {
		// No write in progress: the queue was empty, so this event is first in the batch.
		b.writing = true
		b.qmu.Unlock()
		b.lead()
		err = <-p.done
	} else {
		b.qmu.Unlock()
		var reuse bool
		if err, reuse = b.follow(p); !reuse {
			return err // p stays with the writer (it will send to its buffered channel)
		}
	}
	p.e = nil
	pendingPool.Put(p)
	return err
}

// follow waits for the batch that holds p to be written, writing it itself when asked.
// reuse is false when p may still be written (and acknowledged) after follow returned.
func (b *Broker) follow(p *pending) (err error, reuse bool) {
	wait := 2*b.opts.Timeout + time.Second
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case err := <-p.done:
			if err != errLead {
				return err, true
			}
			b.lead() // p is first in the queue: the batch holds it, and p.done its outcome
		case <-t.C:
			b.qmu.Lock()
			if b.leader == p {
				b.qmu.Unlock()
				continue // asked to write just now: errLead is in p.done
			}
			if i := slices.Index(b.queue, p); i >= 0 {
				b.queue = slices.Delete(b.queue, i, i+1)
				b.qmu.Unlock()
				b.refused.Add(1)
				return fmt.Errorf("%w: no sink recorded the event within %s (the audit trail is stalled)", ErrAuditUnavailable, wait), true
			}
			b.qmu.Unlock()
			b.refused.Add(1)
			return fmt.Errorf("%w: no sink recorded the event within %s", ErrAuditUnavailable, wait), false
		}
	}
}

// lead writes one batch from the head of the queue (the caller's writing is set), then
// either hands the writing to the first caller still waiting or clears writing.
func (b *Broker) lead() {
	b.wmu.Lock()
	b.qmu.Lock()
	n := min(len(b.queue), b.opts.MaxBatch)
	b.batch = append(b.batch[:0], b.queue[:n]...)
	rest := copy(b.queue, b.queue[n:])
	clear(b.queue[rest:])
	b.queue = b.queue[:rest]
	b.leader = nil
	b.qmu.Unlock()

	if len(b.batch) > 0 {
		b.writeBatch(b.batch)
	}
	clear(b.batch)
	b.wmu.Unlock()

	b.qmu.Lock()
	if len(b.queue) > 0 {
		next := b.queue[0]
		b.leader = next
		next.done <- errLead // empty: its caller waits for it
	} else {
		b.writing = false
		b.idle.Broadcast()
	}
	b.qmu.Unlock()
}

// writeBatch seals the batch into the chain, writes it to the sinks and acknowledges every
// event in it (b.wmu held).
func (b *Broker) writeBatch(batch []*pending) {
	start := b.pos
	events := b.events[:0]
	refusedBefore := b.refusedSince.Load()
	if refusedBefore > 0 {
		// The first batch recorded after refusals says so, before its own events.
		rec := &Event{ID: eventID(), Time: b.opts.Now(), Code: CodeRecovered, Kind: KindSystem,
			Message: fmt.Sprintf("recording works again; %d events could not be recorded and their calls were refused", refusedBefore)}
		b.pos, b.buf = Seal(rec, b.pos, b.buf)
		events = append(events, rec)
	}
	for _, p := range batch {
		b.pos, b.buf = Seal(p.e, b.pos, b.buf)
		events = append(events, p.e)
	}
	err := b.write(events)
	if err != nil {
		b.pos = start // nothing recorded: the events were never part of the trail
		b.refused.Add(uint64(len(batch)))
		b.refusedSince.Add(uint64(len(batch)))
	} else {
		b.publish(events)
		b.recorded.Add(uint64(len(batch)))
		if refusedBefore > 0 {
			b.refusedSince.Add(-refusedBefore)
			b.opts.Logger.Warn("audit recording works again", "refused_events", refusedBefore)
		}
	}
	clear(events)
	b.events = events[:0]
	for _, p := range batch {
		p.done <- err
	}
}

// Recorded and Refused count events recorded and refused since the broker started.
func (b *Broker) Recorded() uint64 { return b.recorded.Load() }
func (b *Broker) Refused() uint64  { return b.refused.Load() }

// Stats returns per-sink counters.
func (b *Broker) Stats() []SinkStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]SinkStats, len(b.sinks))
	for i, s := range b.sinks {
		out[i] = s.stats
		out[i].Backlog = len(s.backlog)
	}
	return out
}

// SetSinks replaces the sinks between two batches; the chain continues. Sinks that are no
// longer in the list are closed by the caller.
func (b *Broker) SetSinks(sinks []Sink) {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	b.setSinks(sinks)
}

// Close stops the broker after the events already queued are written, and closes the
// sinks.
func (b *Broker) Close() error {
	b.stop.Do(func() {
		b.closed.Store(true)
		b.qmu.Lock()
		b.shut = true
		for b.writing {
			b.idle.Wait()
		}
		b.qmu.Unlock()
	})
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	for _, s := range b.sinks {
		if err := s.sink.Close(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.sink.Name(), err))
		}
	}
	return errors.Join(errs...)
}

func (b *Broker) setSinks(ns []Sink) {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := map[Sink]*sinkState{}
	for _, s := range b.sinks {
		old[s.sink] = s
	}
	b.sinks = b.sinks[:0:0]
	for _, s := range ns {
		if st, ok := old[s]; ok {
			b.sinks = append(b.sinks, st)
		} else {
			b.sinks = append(b.sinks, &sinkState{sink: s, stats: SinkStats{Name: s.Name()}})
		}
	}
}

// writeSink writes events to one sink, after the events it missed.
func (b *Broker) writeSink(s *sinkState, events []*Event) error {
	out := events
	if len(s.backlog) > 0 {
		out = append(s.backlog[:len(s.backlog):len(s.backlog)], events...)
	}
	if l, ok := s.sink.(local); ok && l.local() {
		return s.sink.Write(context.Background(), out) // no timer per batch
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.Timeout)
	defer cancel()
	return s.sink.Write(ctx, out)
}

// write sends events to every sink; it fails when none recorded them.
func (b *Broker) write(events []*Event) error {
	b.mu.Lock()
	sinks := b.sinks
	b.mu.Unlock()
	if len(sinks) == 0 {
		return fmt.Errorf("%w: no sinks", ErrAuditUnavailable)
	}
	var one [1]error // one sink (the usual case): no allocation, no goroutine
	errs := one[:]
	if len(sinks) == 1 {
		errs[0] = b.writeSink(sinks[0], events)
	} else {
		many := make([]error, len(sinks))
		var wg sync.WaitGroup
		for i := range sinks {
			wg.Add(1)
			go func() { defer wg.Done(); many[i] = b.writeSink(sinks[i], events) }()
		}
		wg.Wait()
		errs = many
	}
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var failed []error
	for i, s := range sinks {
		if errs[i] == nil {
			s.stats.Written += uint64(len(s.backlog) + len(events))
			s.backlog = nil
			continue
		}
		s.stats.Failures++
		s.stats.LastErr = errs[i].Error()
		failed = append(failed, fmt.Errorf("%s: %w", s.sink.Name(), errs[i]))
		if ok == 0 {
			continue // the events are not part of the trail; nothing to catch up on
		}
		s.backlog = append(s.backlog, events...)
		if over := len(s.backlog) - b.opts.MaxBacklog; over > 0 {
			s.stats.Dropped += uint64(over)
			b.opts.Logger.Error("audit sink is too far behind: events dropped from its backlog; its copy of the trail has a gap",
				"sink", s.sink.Name(), "dropped", over, "from_seq", s.backlog[0].Seq)
			s.backlog = append([]*Event(nil), s.backlog[over:]...)
		}
	}
	if ok == 0 {
		err := fmt.Errorf("%w: %w", ErrAuditUnavailable, errors.Join(failed...))
		b.opts.Logger.Error("AUDIT UNAVAILABLE: no sink recorded the events; the calls are refused", "events", len(events), "err", err)
		return err
	}
	if len(failed) > 0 {
		b.opts.Logger.Warn("audit sink failed; the events are kept and sent again with the next batch",
			"err", errors.Join(failed...), "events", len(events))
	}
	return nil
}
