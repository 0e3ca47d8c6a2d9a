package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
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
type Broker struct {
	opts   Options
	in     chan *pending
	done   chan struct{}
	closed atomic.Bool
	quit   chan struct{}
	sendMu sync.RWMutex // held (read) while sending to in; Close takes it to close in
	stop   sync.Once
	mu     sync.Mutex // guards sinks and stats for Stats/SetSinks
	sinks  []*sinkState
	swap   chan []Sink

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

type pending struct {
	e    *Event
	done chan error
}

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
	b := &Broker{opts: o, in: make(chan *pending, 4096), done: make(chan struct{}), quit: make(chan struct{}), swap: make(chan []Sink)}
	var pos Position
	for _, s := range sinks {
		b.sinks = append(b.sinks, &sinkState{sink: s, stats: SinkStats{Name: s.Name()}})
		if r, ok := s.(Resumer); ok {
			if p, ok := r.Last(); ok && p.Seq > pos.Seq {
				pos = p
			}
		}
	}
	go b.loop(pos)
	if err := b.Record(context.Background(), &Event{Code: CodeStarted, Kind: KindSystem, Message: "audit trail started"}); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// NewID returns a fresh event id.
func NewID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Record seals e into the chain and writes it to every sink. It returns nil once at least
// one sink has recorded it, and an error wrapping ErrAuditUnavailable when none did (or
// none did in time). The caller's cancellation does not stop the write. Record fills a
// missing ID and Time.
func (b *Broker) Record(ctx context.Context, e *Event) error {
	if e.ID == "" {
		e.ID = NewID()
	}
	if e.Time.IsZero() {
		e.Time = b.opts.Now()
	}
	if b.closed.Load() {
		return fmt.Errorf("%w: the broker is closed", ErrAuditUnavailable)
	}
	p := pendingPool.Get().(*pending)
	p.e = e
	wait := 2*b.opts.Timeout + time.Second
	t := time.NewTimer(wait)
	defer t.Stop()
	b.sendMu.RLock()
	if b.closed.Load() {
		b.sendMu.RUnlock()
		return fmt.Errorf("%w: the broker is closed", ErrAuditUnavailable)
	}
	select {
	case b.in <- p:
		b.sendMu.RUnlock()
	case <-t.C:
		b.sendMu.RUnlock()
		b.refused.Add(1)
		return fmt.Errorf("%w: the audit queue is full", ErrAuditUnavailable)
	case <-b.quit:
		b.sendMu.RUnlock()
		return fmt.Errorf("%w: the broker is closed", ErrAuditUnavailable)
	}
	select {
	case err := <-p.done:
		p.e = nil
		pendingPool.Put(p)
		return err
	case <-t.C:
		// p stays with the writer (it will send to its buffered channel); not reused.
		b.refused.Add(1)
		return fmt.Errorf("%w: no sink recorded the event within %s", ErrAuditUnavailable, wait)
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
	select {
	case b.swap <- sinks:
	case <-b.done:
	}
}

// Close stops the broker after the events already queued are written, and closes the
// sinks.
func (b *Broker) Close() error {
	b.stop.Do(func() {
		b.closed.Store(true)
		close(b.quit)
		b.sendMu.Lock()
		close(b.in)
		b.sendMu.Unlock()
	})
	<-b.done
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

func (b *Broker) loop(pos Position) {
	defer close(b.done)
	batch := make([]*pending, 0, b.opts.MaxBatch)
	events := make([]*Event, 0, b.opts.MaxBatch)
	var buf []byte
	concurrent := false
	for {
		var first *pending
		var ok bool
		select {
		case first, ok = <-b.in:
			if !ok {
				return
			}
		case ns := <-b.swap:
			b.setSinks(ns)
			continue
		}
		batch = append(batch[:0], first)
		if concurrent {
			// Callers just acknowledged are about to send their next events: let them, so
			// that one sync covers them all (group commit).
			runtime.Gosched()
		}
	fill:
		for len(batch) < b.opts.MaxBatch {
			select {
			case p, ok := <-b.in:
				if !ok {
					break fill
				}
				batch = append(batch, p)
			default:
				break fill
			}
		}
		concurrent = len(batch) > 1
		start := pos
		events = events[:0]
		refusedBefore := b.refusedSince.Load()
		if refusedBefore > 0 {
			// The first batch recorded after refusals says so, before its own events.
			rec := &Event{ID: NewID(), Time: b.opts.Now(), Code: CodeRecovered, Kind: KindSystem,
				Message: fmt.Sprintf("recording works again; %d events could not be recorded and their calls were refused", refusedBefore)}
			pos, buf = Seal(rec, pos, buf)
			events = append(events, rec)
		}
		for _, p := range batch {
			pos, buf = Seal(p.e, pos, buf)
			events = append(events, p.e)
		}
		err := b.write(events)
		if err != nil {
			pos = start // nothing recorded: the events were never part of the trail
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
		for _, p := range batch {
			p.done <- err
		}
	}
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

// write sends events to every sink; it fails when none recorded them.
func (b *Broker) write(events []*Event) error {
	b.mu.Lock()
	sinks := b.sinks
	b.mu.Unlock()
	if len(sinks) == 0 {
		return fmt.Errorf("%w: no sinks", ErrAuditUnavailable)
	}
	errs := make([]error, len(sinks))
	do := func(i int) {
		s := sinks[i]
		out := events
		if len(s.backlog) > 0 {
			out = append(s.backlog[:len(s.backlog):len(s.backlog)], events...)
		}
		ctx, cancel := context.WithTimeout(context.Background(), b.opts.Timeout)
		errs[i] = s.sink.Write(ctx, out)
		cancel()
	}
	if len(sinks) == 1 {
		do(0)
	} else {
		var wg sync.WaitGroup
		for i := range sinks {
			wg.Add(1)
			go func() { defer wg.Done(); do(i) }()
		}
		wg.Wait()
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
