package pins

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/store"
)

// Modes.
const (
	// ModeTOFU pins a definition the first time it is seen (trust on first use).
	ModeTOFU = "tofu"
	// ModeReview holds a definition never seen before until a person approves it.
	ModeReview = "review"
)

// Verdict is what the Checker decided about an offered definition.
type Verdict int

const (
	// Approved: the definition is the approved one.
	Approved Verdict = iota
	// PinnedNow: first seen in tofu mode, and now pinned.
	PinnedNow
	// New: first seen in review mode; held until approved.
	New
	// Changed: differs from the approved definition (a rug pull); held until approved.
	Changed
)

// Allowed reports whether an item with this verdict may be listed and called.
func (v Verdict) Allowed() bool { return v == Approved || v == PinnedNow }

func (v Verdict) String() string {
	return [...]string{"approved", "pinned", "new, awaiting review", "changed, awaiting approval"}[v]
}

// Event is what the Checker reports when it pins a definition or holds one back, for
// the audit trail and the log. It is reported once per new hash, not on every listing.
type Event struct {
	Key     store.PinKey
	Verdict Verdict // PinnedNow, New or Changed
	Old     store.Pin
	Hash    string // the offered definition
	Canon   []byte
	Diff    string // for Changed and New: approved definition to offered one
	Fields  []string
}

// Checker decides on offered definitions against the store, with an in-memory copy of
// the pins that is re-read when the store's version counter moved.
type Checker struct {
	st     store.Pins
	mode   string
	report func(context.Context, Event)
	now    func() time.Time

	// slow serializes decisions that write to the store, so that two listings seeing the
	// same change at once report it once.
	slow    sync.Mutex
	mu      sync.RWMutex
	pins    map[store.PinKey]store.Pin
	version int64
	loaded  bool

	// Reads of the store (Refresh) run one at a time: reading holds sem, reads counts
	// those begun, and readOK is the number of the last one that succeeded. A Refresh
	// that waited while a read begun after its own start succeeded is done: sessions
	// that start together (each lists, so each refreshes) cost one or two reads, not
	// one connection to the store each.
	sem    chan struct{}
	reads  atomic.Uint64
	readOK uint64 // under sem
}

// NewChecker returns a checker in mode (ModeTOFU when empty). report, when not nil, is
// told of every pin and every definition held back.
func NewChecker(st store.Pins, mode string, report func(context.Context, Event)) (*Checker, error) {
	if st == nil {
		return nil, errors.New("pins need a store (set store: in the configuration)")
	}
	switch mode {
	case "":
		mode = ModeTOFU
	case ModeTOFU, ModeReview:
	default:
		return nil, fmt.Errorf("mode %q: want %s or %s", mode, ModeTOFU, ModeReview)
	}
	if report == nil {
		report = func(context.Context, Event) {}
	}
	return &Checker{st: st, mode: mode, report: report, now: time.Now, pins: map[store.PinKey]store.Pin{}, sem: make(chan struct{}, 1)}, nil
}

// Mode is the checker's mode.
func (c *Checker) Mode() string { return c.mode }

// Refresh re-reads the pins when the store changed since the last read. It returns after
// a read of the store that began after it was called.
func (c *Checker) Refresh(ctx context.Context) error {
	begun := c.reads.Load()
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("pins: reading the store: %w", context.Cause(ctx))
	}
	defer func() { <-c.sem }()
	if c.readOK > begun {
		return nil // a read that began after this call succeeded meanwhile
	}
	n := c.reads.Add(1)
	if err := c.read(ctx); err != nil {
		return err
	}
	c.readOK = n
	return nil
}

// read re-reads the pins when the store's version moved (under sem).
func (c *Checker) read(ctx context.Context) error {
	v, err := c.st.PinsVersion(ctx)
	if err != nil {
		return fmt.Errorf("pins: reading the store: %w", err)
	}
	c.mu.RLock()
	fresh := c.loaded && v == c.version
	c.mu.RUnlock()
	if fresh {
		return nil
	}
	ps, err := c.st.ListPins(ctx)
	if err != nil {
		return fmt.Errorf("pins: reading the store: %w", err)
	}
	m := make(map[store.PinKey]store.Pin, len(ps))
	for _, p := range ps {
		m[p.PinKey] = p
	}
	c.mu.Lock()
	c.pins, c.version, c.loaded = m, v, true
	c.mu.Unlock()
	return nil
}

// Lookup returns the pin of k as last read.
func (c *Checker) Lookup(k store.PinKey) (store.Pin, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	p, ok := c.pins[k]
	return p, ok
}

// Allowed reports, from memory, whether the definition with hash is the approved one for
// k. It is the hot path of a call; callers re-read (Refresh) before refusing.
func (c *Checker) Allowed(k store.PinKey, hash string) bool {
	p, ok := c.Lookup(k)
	return ok && p.Hash != "" && p.Hash == hash
}

// Observe decides on a definition a server offers: approved ones pass; a new one is
// pinned (tofu) or held (review); a changed one is held and reported. The caller should
// Refresh once per listing before observing its items. An error means the store could
// not be read or written: the caller must treat the item as not allowed.
func (c *Checker) Observe(ctx context.Context, k store.PinKey, canon []byte, hash string) (Verdict, error) {
	p, ok := c.Lookup(k)
	if ok && p.Hash == hash && hash != "" {
		return Approved, nil
	}
	c.slow.Lock()
	defer c.slow.Unlock()
	p, ok = c.Lookup(k) // decided meanwhile?
	if ok && p.Hash == hash && hash != "" {
		return Approved, nil
	}
	now := c.now().UTC()
	if !ok {
		np := store.Pin{PinKey: k, PinnedAt: now}
		if c.mode == ModeTOFU {
			np.Hash, np.Definition, np.PinnedBy = hash, canon, "tofu"
		} else {
			np.Pending = &store.PinCandidate{Hash: hash, Definition: canon, SeenAt: now}
		}
		stored, won, err := c.st.PinFirst(ctx, np)
		if err != nil {
			return Changed, err
		}
		c.remember(stored)
		switch {
		case stored.Hash == hash && hash != "":
			if won {
				c.report(ctx, Event{Key: k, Verdict: PinnedNow, Hash: hash, Canon: canon})
			}
			return PinnedNow, nil
		case stored.Hash == "" && stored.Pending != nil && stored.Pending.Hash == hash:
			if won {
				c.report(ctx, Event{Key: k, Verdict: New, Hash: hash, Canon: canon, Diff: Diff(nil, canon)})
			}
			return New, nil
		}
		p = stored // another process pinned something else first: decide against it
	}
	if p.Pending != nil && p.Pending.Hash == hash {
		if p.Hash == "" {
			return New, nil
		}
		return Changed, nil // already recorded and reported
	}
	cand := store.PinCandidate{Hash: hash, Definition: canon, SeenAt: now}
	if err := c.st.SetPinPending(ctx, k, cand); err != nil {
		return Changed, err
	}
	old := p
	p.Pending = &cand
	c.remember(p)
	v := Changed
	if old.Hash == "" {
		v = New
	}
	c.report(ctx, Event{Key: k, Verdict: v, Old: old, Hash: hash, Canon: canon, Diff: Diff(old.Definition, canon), Fields: ChangedFields(old.Definition, canon)})
	return v, nil
}

func (c *Checker) remember(p store.Pin) {
	c.mu.Lock()
	c.pins[p.PinKey] = p
	c.mu.Unlock()
}
