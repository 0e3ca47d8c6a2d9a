package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/store"
)

// JournalOptions make a StoreSink write ahead: Write appends the events to a local
// journal file (that append is the acknowledgement, the same promise the SQLite store
// makes with WAL and synchronous=NORMAL: the events survive a crash of the gateway, not
// necessarily a power loss), and a goroutine moves them into the store in large
// transactions. A SQLite transaction costs about as much CPU as seven inserts, and the
// calls of a gateway arrive one or two events at a time: batching them off the call's path
// is what keeps the audit trail's cost per call small. After a crash, OpenStore moves what
// the journal holds and the store does not into the store before the gateway goes on.
type JournalOptions struct {
	// Path is the journal; Path+".1" holds the batch being moved into the store when the
	// journal was rotated (past RotateBytes, default 4 MiB). Events the store already
	// holds stay in the journal until then: replay skips them.
	Path        string
	RotateBytes int64
	// Interval is the longest an event waits in the journal before it is moved (default
	// 200 ms); MaxBatch moves earlier when that many wait (default 4096). Larger
	// transactions cost less per row: each one rewrites the index pages it touches and the
	// last page of the table, so 400 rows in one cost about a quarter less CPU per row than
	// 100 (a gateway at 1000 calls/s writes 2000 events/s).
	Interval time.Duration
	MaxBatch int
	Logger   *slog.Logger
}

// ErrJournalInUse is returned by OpenStoreJournal when another process writes the
// journal (and so the chain).
var ErrJournalInUse = errors.New("in use by another process")

// errLocked is returned by lockFile when another process holds the lock.
var errLocked = ErrJournalInUse

// journal is the write-ahead part of a StoreSink.
type journal struct {
	o    JournalOptions
	f    *jfile
	lock *os.File
	// rotated: the in-flight events are in Path.1, deleted once they are in the store
	// (mover only).
	rotated bool
	// crashed makes the mover stop without moving (tests of a crash).
	crashed bool
	kick    chan struct{}
	quit    chan struct{}
	done    chan struct{}
	once    sync.Once
}

func (s *StoreSink) startJournal(ctx context.Context, o JournalOptions) error {
	if o.Interval <= 0 {
		o.Interval = 200 * time.Millisecond
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 4096
	}
	if o.RotateBytes <= 0 {
		o.RotateBytes = 4 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	// One process per journal: a second gateway writing the same chain would move (and
	// truncate) the first one's acknowledged events.
	lock, err := os.OpenFile(o.Path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("audit store journal: %w", err)
	}
	if err := lockFile(lock); err != nil {
		lock.Close()
		if errors.Is(err, errLocked) {
			return fmt.Errorf("audit store journal %s: %w writing chain %q: give each gateway its own chain (guards.audit.store.chain)", o.Path, ErrJournalInUse, s.chain)
		}
		return fmt.Errorf("audit store journal: %w", err)
	}
	// What an earlier process acknowledged and did not move yet goes in first.
	for _, p := range []string{o.Path + ".1", o.Path} {
		if err := s.replay(ctx, p); err != nil {
			lock.Close()
			return fmt.Errorf("audit store journal %s: %w (the events it holds are not lost: fix the store and start again)", p, err)
		}
	}
	os.Remove(o.Path + ".1")
	f, err := openJFile(o.Path)
	if err != nil {
		lock.Close()
		return fmt.Errorf("audit store journal: %w", err)
	}
	s.j = &journal{o: o, f: f, lock: lock, kick: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	go s.mover()
	return nil
}

// replay moves the events of a journal file that the store does not hold into it.
func (s *StoreSink) replay(ctx context.Context, path string) error {
	var batch []store.AuditRecord
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := s.st.AppendAudit(ctx, batch); err != nil {
			return err
		}
		last := batch[len(batch)-1]
		s.last, s.has = Position{Seq: last.Seq, Hash: last.Hash}, true
		batch = batch[:0]
		return nil
	}
	err := readJournal(path, func(line []byte, _ int) error {
		e, perr := ParseLine(line)
		if perr != nil {
			return fmt.Errorf("a line of the journal is not an event: %w", perr)
		}
		if s.has && e.Seq <= s.last.Seq {
			return nil // already in the store
		}
		batch = append(batch, record(s.chain, e, bytes.Clone(line)))
		if len(batch) >= 1024 {
			return flush()
		}
		return nil
	})
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return flush()
}

func record(chain string, e *Event, line []byte) store.AuditRecord {
	return store.AuditRecord{Chain: chain, Seq: e.Seq, Time: e.Time, Code: e.Code, Principal: e.Principal, Server: e.Server,
		Method: e.Method, Tool: e.Tool, Decision: e.Decision, Prev: e.Prev, Hash: e.Hash, Line: line}
}

// writeJournal appends the batch to the journal (s.mu held).
func (s *StoreSink) writeJournal(batch []*Event) error {
	j := s.j
	buf := s.buf[:0]
	start := len(s.queued)
	for _, e := range batch {
		// The record shares the sealed line, which nobody changes.
		line := e.canonical()
		buf = append(buf, line...)
		buf = append(buf, '\n')
		s.queued = append(s.queued, record(s.chain, e, line))
	}
	s.buf = buf
	if err := j.f.append(buf); err != nil {
		s.queued = s.queued[:start]
		return fmt.Errorf("audit store journal: %w", err)
	}
	e := batch[len(batch)-1]
	s.last, s.has = Position{Seq: e.Seq, Hash: e.Hash}, true
	if len(s.queued) >= j.o.MaxBatch {
		select {
		case j.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// mover moves the journal into the store: it turns the journal into the in-flight file
// (Path.1), starts a new journal, stores the in-flight events in one transaction, and then
// deletes the in-flight file. A failed transaction is retried (with backoff) before anything
// newer is moved.
func (s *StoreSink) mover() {
	j := s.j
	defer close(j.done)
	t := time.NewTicker(j.o.Interval)
	defer t.Stop()
	var inflight []store.AuditRecord
	backoff := time.Duration(0)
	for {
		select {
		case <-j.quit:
			if j.crashed {
				return
			}
			// Move what is left; what cannot be moved stays in the files for the next start.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for range 2 { // what is in flight, then what is queued
				if len(inflight) == 0 {
					inflight = s.takeQueued()
				}
				if len(inflight) == 0 {
					break
				}
				if err := s.st.AppendAudit(ctx, inflight); err != nil {
					j.o.Logger.Error("audit events stay in the journal until the next start", "journal", j.o.Path, "events", len(inflight), "err", err)
					return
				}
				s.moved(inflight)
				inflight = nil
			}
			return
		case <-t.C:
		case <-j.kick:
		}
		if backoff > 0 {
			time.Sleep(backoff)
		}
		if len(inflight) == 0 {
			inflight = s.takeQueued()
			if len(inflight) == 0 {
				continue
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := s.st.AppendAudit(ctx, inflight)
		cancel()
		s.mu.Lock()
		s.moveErr = err
		s.mu.Unlock()
		if err != nil {
			if backoff == 0 {
				j.o.Logger.Error("audit events cannot be moved from the journal into the store; they wait in the journal", "journal", j.o.Path, "events", len(inflight), "err", err)
			}
			backoff = min(max(2*backoff, 100*time.Millisecond), 5*time.Second)
			continue
		}
		if backoff > 0 {
			j.o.Logger.Info("audit events move into the store again", "journal", j.o.Path)
		}
		backoff = 0
		s.moved(inflight)
		inflight = nil
	}
}

// moved notes that the events in flight are in the store: the in-flight file goes, and
// so does what the journal holds when nothing newer was appended meanwhile. The slice
// that held them is kept for the next events.
func (s *StoreSink) moved(inflight []store.AuditRecord) {
	j := s.j
	if j.rotated {
		os.Remove(j.o.Path + ".1")
		j.rotated = false
	}
	clear(inflight) // the lines belong to the events
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.spare == nil {
		s.spare = inflight[:0]
	}
	s.moving = 0
	if len(s.queued) == 0 && j.f.size > 0 {
		j.f.reset()
	}
}

// takeQueued returns the events not yet in the store (nil when there are none). When the
// journal has grown past RotateBytes, it becomes the in-flight file (deleted once its
// events are in the store) and a new journal starts; otherwise the journal stays, and the
// events the store already holds in it are skipped by a replay.
func (s *StoreSink) takeQueued() []store.AuditRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.j
	if len(s.queued) == 0 {
		return nil
	}
	if j.f.size < j.o.RotateBytes {
		out := s.queued
		s.queued, s.spare = s.spare, nil
		s.moving = len(out)
		return out
	}
	if err := os.Rename(j.o.Path, j.o.Path+".1"); err != nil {
		j.o.Logger.Error("audit store journal: cannot start a new journal", "err", err)
		return nil
	}
	f, err := openJFile(j.o.Path)
	if err != nil {
		// Keep appending to the renamed file; it is moved with the next round.
		os.Rename(j.o.Path+".1", j.o.Path)
		j.o.Logger.Error("audit store journal: cannot start a new journal", "err", err)
		return nil
	}
	j.f.close()
	j.f = f
	j.rotated = true
	out := s.queued
	s.queued, s.spare = s.spare, nil
	s.moving = len(out)
	return out
}

// Flush moves what the journal holds into the store now (tests, and commands that read
// the store right after).
func (s *StoreSink) Flush(ctx context.Context) error {
	if s.j == nil {
		return nil
	}
	for {
		s.mu.Lock()
		n, err := len(s.queued)+s.moving, s.moveErr
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case s.j.kick <- struct{}{}:
		default:
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (s *StoreSink) closeJournal() error {
	j := s.j
	j.once.Do(func() { close(j.quit) })
	<-j.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(j.f.close(), j.lock.Close())
}

// JournalPath is where the journal of chain in the SQLite database at db is kept.
func JournalPath(db, chain string) string {
	b := []byte(chain)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	return db + "-audit-" + string(b) + ".journal"
}

// JournalTail returns the events a chain's journal holds after position after (the end
// of the chain in the store), in order: acknowledged events that a running gateway has
// not moved into the store yet, or that a stopped one left. A torn last line is skipped.
func JournalTail(path string, after Position) ([]Entry, error) {
	var out []Entry
	for _, p := range []string{path + ".1", path} {
		data, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if i := bytes.IndexByte(data, 0); i >= 0 {
			data = data[:i] // the end of the events: what follows was allocated ahead
		}
		n := 0
		for len(data) > 0 {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				break
			}
			line := data[:i]
			data = data[i+1:]
			n++
			e, err := ParseLine(line)
			if err != nil || e.Seq <= after.Seq {
				continue
			}
			after.Seq = e.Seq
			out = append(out, Entry{File: p, Line: n, Raw: line})
		}
	}
	return out, nil
}
