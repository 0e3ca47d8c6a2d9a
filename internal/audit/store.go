package audit

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/portcullis-mcp/portcullis/internal/store"
)

// StoreSink writes the trail into the gateway's store (SQLite by default, PostgreSQL in a
// fleet), one chain per writing process, named Chain. It is a Resumer: a restarted
// gateway continues its chain.
type StoreSink struct {
	st    store.AuditLog
	chain string

	mu   sync.Mutex
	last Position
	has  bool
	buf  []byte
	recs []store.AuditRecord

	j       *journal            // nil: every Write is a transaction
	queued  []store.AuditRecord // in the journal, not yet in the store
	spare   []store.AuditRecord // the slice of the last events moved, for the next ones
	moving  int                 // events the mover is putting into the store
	moveErr error               // the last failure to move them
}

// OpenStore returns a sink writing chain into st, positioned after the chain's last event.
func OpenStore(ctx context.Context, st store.AuditLog, chain string) (*StoreSink, error) {
	if chain == "" {
		return nil, errors.New("audit store: no chain name")
	}
	s := &StoreSink{st: st, chain: chain}
	r, err := st.LastAudit(ctx, chain)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("audit store: %w", err)
	default:
		s.last, s.has = Position{Seq: r.Seq, Hash: r.Hash}, true
	}
	return s, nil
}

// OpenStoreJournal is OpenStore with a write-ahead journal (see JournalOptions): first
// the events an earlier process left in the journal are moved into the store.
func OpenStoreJournal(ctx context.Context, st store.AuditLog, chain string, o JournalOptions) (*StoreSink, error) {
	s, err := OpenStore(ctx, st, chain)
	if err != nil {
		return nil, err
	}
	if err := s.startJournal(ctx, o); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *StoreSink) Name() string { return "store" }

// local: with a journal, Write appends to a local file without waiting for the store.
func (s *StoreSink) local() bool { return s.j != nil }

// Chain is the name of the chain this sink writes.
func (s *StoreSink) Chain() string { return s.chain }

func (s *StoreSink) Last() (Position, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, s.has
}

// Probe reads the chain's end: the store is reachable.
func (s *StoreSink) Probe(ctx context.Context) error {
	if _, err := s.st.LastAudit(ctx, s.chain); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("audit store: %w", err)
	}
	return nil
}

// Write stores the batch in one transaction.
func (s *StoreSink) Write(ctx context.Context, batch []*Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	if s.j != nil {
		return s.writeJournal(batch)
	}
	recs := s.recs[:0]
	for _, e := range batch {
		recs = append(recs, record(s.chain, e, e.canonical()))
	}
	s.recs = recs
	err := s.st.AppendAudit(ctx, recs)
	clear(recs) // the lines belong to the events
	if err != nil {
		return fmt.Errorf("audit store: %w", err)
	}
	e := batch[len(batch)-1]
	s.last, s.has = Position{Seq: e.Seq, Hash: e.Hash}, true
	return nil
}

// Close moves what the journal holds into the store; the store itself belongs to the
// gateway.
func (s *StoreSink) Close() error {
	if s.j == nil {
		return nil
	}
	return s.closeJournal()
}

// VerifyStore checks every chain in st (or only chain, when set) and returns the number
// of events verified per chain and the first problem (nil when every chain verifies).
// Problems name the chain as their File and the record's row as their Line.
func VerifyStore(ctx context.Context, st store.AuditLog, chain string) (map[string]int, *Problem, error) {
	counts, _, p, err := VerifyStoreEnds(ctx, st, chain)
	return counts, p, err
}

// VerifyStoreEnds is VerifyStore, and also returns where each chain verified ends: the
// last event its scan read (the chain may have grown since).
func VerifyStoreEnds(ctx context.Context, st store.AuditLog, chain string) (map[string]int, map[string]Position, *Problem, error) {
	chains := []string{chain}
	if chain == "" {
		var err error
		if chains, err = st.AuditChains(ctx); err != nil {
			return nil, nil, nil, err
		}
	}
	counts, ends := map[string]int{}, map[string]Position{}
	for _, c := range chains {
		where := "store:" + c
		// First pass: where each sequence number is, to tell a gap from a reordering.
		seqs := map[uint64]Entry{}
		err := st.ScanAudit(ctx, c, 0, func(r store.AuditRecord) (bool, error) {
			if e, err := ParseLine(r.Line); err == nil {
				if _, dup := seqs[e.Seq]; !dup {
					seqs[e.Seq] = Entry{File: where, Line: int(r.Row)}
				}
			}
			return true, nil
		})
		if err != nil {
			return nil, nil, nil, err
		}
		v := NewVerifier(seqs)
		var prob *Problem
		err = st.ScanAudit(ctx, c, 0, func(r store.AuditRecord) (bool, error) {
			if p := v.Add(Entry{File: where, Line: int(r.Row), Raw: r.Line}); p != nil {
				prob = p
				return false, nil
			}
			// The searchable columns are copies of the sealed line: an edit of one of them
			// would make searches lie, so it counts as an alteration.
			if e, err := ParseLine(r.Line); err == nil && (e.Seq != r.Seq || e.Hash != r.Hash || e.Prev != r.Prev ||
				e.Code != r.Code || e.Principal != r.Principal || e.Server != r.Server || e.Method != r.Method ||
				e.Tool != r.Tool || e.Decision != r.Decision || !e.Time.Equal(r.Time)) {
				prob = &Problem{Kind: "altered", File: where, Line: int(r.Row), Seq: e.Seq,
					Msg: "the stored search columns do not match the sealed event (the row was edited)"}
				return false, nil
			}
			return true, nil
		})
		if err != nil {
			return nil, nil, nil, err
		}
		counts[c], ends[c] = v.Count(), v.Last()
		if prob != nil {
			return counts, ends, prob, nil
		}
	}
	return counts, ends, nil, nil
}
