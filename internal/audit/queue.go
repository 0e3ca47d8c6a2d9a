package audit

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Deliverer sends records to a remote receiver (syslog, a webhook). A QueuedSink calls it
// from one goroutine, in order.
type Deliverer interface {
	Name() string
	// Encode turns a sealed event into one record (one line, no newline).
	Encode(dst []byte, e *Event) []byte
	// Deliver sends one record; nil means the receiver has it.
	Deliver(ctx context.Context, id string, record []byte) error
	// Probe checks that the receiver can be reached.
	Probe(ctx context.Context) error
	Close() error
}

// QueueOptions parameterize a queued sink.
type QueueOptions struct {
	// Dir holds the queue (queue.log, the records) and its cursor (queue.offset).
	Dir string
	// MinBackoff and MaxBackoff bound the wait between failed deliveries (defaults 200 ms
	// and 30 s); the wait doubles after each failure, with jitter.
	MinBackoff, MaxBackoff time.Duration
	// Timeout bounds one delivery (default 10 s).
	Timeout time.Duration
	// NoSync skips fsync of the queue (see FileOptions.NoSync).
	NoSync bool
	Logger *slog.Logger
	// Filter, when set, chooses the events this receiver gets (for example only alerts);
	// the others count as written.
	Filter func(*Event) bool
}

// QueuedSink is a remote sink with a durable on-disk queue: Write appends the records to
// the queue and syncs it (that is the acknowledgement), and a goroutine delivers them in
// order, retrying with backoff while the receiver is down. Nothing acknowledged is dropped:
// the cursor moves past a record only after the receiver took it, and is synced, so a
// record is sent twice only when the gateway dies between the receiver's answer and the
// cursor's sync (each record carries its event id for deduplication).
type QueuedSink struct {
	d    Deliverer
	o    QueueOptions
	mu   sync.Mutex // guards f and compaction
	f    *os.File
	cur  *os.File
	buf  []byte
	kick chan struct{}
	quit chan struct{}
	done chan struct{}
	once sync.Once

	statMu    sync.Mutex
	delivered uint64
	lastErr   error
}

// NewQueued opens (or creates) the queue in o.Dir and starts delivering.
func NewQueued(d Deliverer, o QueueOptions) (*QueuedSink, error) {
	if o.Dir == "" {
		return nil, fmt.Errorf("audit %s: no queue directory", d.Name())
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 200 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit %s queue: %w", d.Name(), err)
	}
	q := &QueuedSink{d: d, o: o, kick: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	if err := q.openFiles(); err != nil {
		return nil, err
	}
	go q.deliverLoop()
	q.signal()
	return q, nil
}

func (q *QueuedSink) logPath() string    { return filepath.Join(q.o.Dir, "queue.log") }
func (q *QueuedSink) cursorPath() string { return filepath.Join(q.o.Dir, "queue.offset") }

func (q *QueuedSink) openFiles() error {
	f, err := os.OpenFile(q.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("audit %s queue: %w", q.d.Name(), err)
	}
	st, err := f.Stat()
	if err == nil && st.Size() > 0 {
		if good, rerr := repairTail(q.logPath(), st.Size()); rerr == nil && good != st.Size() {
			err = f.Truncate(good)
		}
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("audit %s queue: %w", q.d.Name(), err)
	}
	cur, err := os.OpenFile(q.cursorPath(), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		f.Close()
		return fmt.Errorf("audit %s queue: %w", q.d.Name(), err)
	}
	q.f, q.cur = f, cur
	return nil
}

// Name implements Sink.
func (q *QueuedSink) Name() string { return q.d.Name() }

// Deliverer returns the remote side.
func (q *QueuedSink) Deliverer() Deliverer { return q.d }

// Probe implements Sink: the queue can be written and synced. Whether the receiver is up
// is ProbeRemote's question: a down receiver does not lose events.
func (q *QueuedSink) Probe(ctx context.Context) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.f == nil {
		return fmt.Errorf("audit %s queue: closed", q.d.Name())
	}
	if err := q.f.Sync(); err != nil {
		return fmt.Errorf("audit %s queue: %w", q.d.Name(), err)
	}
	return nil
}

// ProbeRemote checks the receiver.
func (q *QueuedSink) ProbeRemote(ctx context.Context) error { return q.d.Probe(ctx) }

// Write implements Sink: append and sync.
func (q *QueuedSink) Write(ctx context.Context, batch []*Event) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.f == nil {
		return fmt.Errorf("audit %s queue: closed", q.d.Name())
	}
	buf := q.buf[:0]
	for _, e := range batch {
		if q.o.Filter != nil && !q.o.Filter(e) {
			continue
		}
		buf = append(buf, e.ID...)
		buf = append(buf, ' ')
		start := len(buf)
		buf = q.d.Encode(buf, e)
		for i := start; i < len(buf); i++ { // a record is one line
			if buf[i] == '\n' || buf[i] == '\r' {
				buf[i] = ' '
			}
		}
		buf = append(buf, '\n')
	}
	q.buf = buf
	if len(buf) == 0 {
		return nil
	}
	st, err := q.f.Stat()
	if err != nil {
		return fmt.Errorf("audit %s queue: %w", q.d.Name(), err)
	}
	n, err := q.f.Write(buf)
	if err == nil && !q.o.NoSync {
		err = q.f.Sync()
	}
	if err != nil {
		if n > 0 {
			q.f.Truncate(st.Size())
		}
		return fmt.Errorf("audit %s queue: %w", q.d.Name(), err)
	}
	q.signal()
	return nil
}

func (q *QueuedSink) signal() {
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// Pending returns how many bytes of records wait for delivery.
func (q *QueuedSink) Pending() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.f == nil {
		return 0
	}
	st, err := q.f.Stat()
	if err != nil {
		return 0
	}
	return st.Size() - q.readCursor()
}

// Delivered returns how many records were delivered, and the last delivery error.
func (q *QueuedSink) Delivered() (uint64, error) {
	q.statMu.Lock()
	defer q.statMu.Unlock()
	return q.delivered, q.lastErr
}

func (q *QueuedSink) readCursor() int64 {
	var b [24]byte
	n, _ := q.cur.ReadAt(b[:], 0)
	v, err := strconv.ParseInt(string(bytes.TrimSpace(b[:n])), 10, 64)
	if err != nil || v < 0 {
		return 0
	}
	return v
}

func (q *QueuedSink) writeCursor(off int64) error {
	b := fmt.Appendf(nil, "%-20d\n", off)
	if _, err := q.cur.WriteAt(b, 0); err != nil {
		return err
	}
	if q.o.NoSync {
		return nil
	}
	return q.cur.Sync()
}

func (q *QueuedSink) deliverLoop() {
	defer close(q.done)
	backoff := time.Duration(0)
	for {
		var wait <-chan time.Time
		if backoff > 0 {
			d := backoff/2 + rand.N(backoff/2+1)
			t := time.NewTimer(d)
			wait = t.C
			select {
			case <-q.quit:
				t.Stop()
				return
			case <-wait:
			}
		} else {
			select {
			case <-q.quit:
				return
			case <-q.kick:
			}
		}
		err := q.drain()
		q.statMu.Lock()
		q.lastErr = err
		q.statMu.Unlock()
		if err != nil {
			if backoff == 0 {
				backoff = q.o.MinBackoff
				q.o.Logger.Warn("audit receiver unavailable; events wait in the queue", "sink", q.d.Name(), "err", err)
			} else {
				backoff = min(2*backoff, q.o.MaxBackoff)
			}
			continue
		}
		if backoff > 0 {
			q.o.Logger.Info("audit receiver is back; the queue was delivered", "sink", q.d.Name())
		}
		backoff = 0
	}
}

var errQuit = errors.New("closing")

// drain delivers every record past the cursor, in order, and compacts the queue once all
// of it was delivered.
func (q *QueuedSink) drain() error {
	for {
		q.mu.Lock()
		if q.f == nil {
			q.mu.Unlock()
			return nil
		}
		off := q.readCursor()
		st, err := q.f.Stat()
		q.mu.Unlock()
		if err != nil {
			return err
		}
		if off > st.Size() { // the queue was compacted just before a crash
			off = 0
		}
		if off == st.Size() {
			return q.compact(off)
		}
		if err := q.deliverFrom(off, st.Size()); err != nil {
			return err
		}
	}
}

func (q *QueuedSink) deliverFrom(off, end int64) error {
	r, err := os.Open(q.logPath())
	if err != nil {
		return err
	}
	defer r.Close()
	br := bufio.NewReaderSize(io.NewSectionReader(r, off, end-off), 1<<16)
	for {
		select {
		case <-q.quit:
			return errQuit
		default:
		}
		line, err := br.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			return nil // a partial line is still being written
		}
		if err != nil {
			return err
		}
		rec := bytes.TrimRight(line, "\n")
		id, body, _ := bytes.Cut(rec, []byte{' '})
		ctx, cancel := context.WithTimeout(context.Background(), q.o.Timeout)
		err = q.d.Deliver(ctx, string(id), body)
		cancel()
		if err != nil {
			return err
		}
		off += int64(len(line))
		q.mu.Lock()
		err = q.writeCursor(off)
		q.mu.Unlock()
		if err != nil {
			return err
		}
		q.statMu.Lock()
		q.delivered++
		q.statMu.Unlock()
	}
}

// compact empties the queue when everything in it was delivered and it has grown.
func (q *QueuedSink) compact(off int64) error {
	if off < 1<<20 {
		return nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	st, err := q.f.Stat()
	if err != nil || st.Size() != off {
		return err // more was appended meanwhile: the next round delivers it
	}
	if err := q.f.Truncate(0); err != nil {
		return err
	}
	if !q.o.NoSync {
		q.f.Sync()
	}
	return q.writeCursor(0)
}

// Close stops delivering (what is queued stays for the next start) and closes the
// receiver's side.
func (q *QueuedSink) Close() error {
	q.once.Do(func() { close(q.quit) })
	<-q.done
	q.mu.Lock()
	defer q.mu.Unlock()
	var errs []error
	if q.f != nil {
		errs = append(errs, q.f.Close(), q.cur.Close())
		q.f = nil
	}
	errs = append(errs, q.d.Close())
	return errors.Join(errs...)
}

// Flush waits until the queue is delivered or ctx ends (tests, shutdown).
func (q *QueuedSink) Flush(ctx context.Context) error {
	for {
		if q.Pending() == 0 {
			return nil
		}
		q.signal()
		select {
		case <-ctx.Done():
			_, err := q.Delivered()
			return errors.Join(ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
