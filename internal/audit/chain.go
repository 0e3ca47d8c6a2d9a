package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// Position is where a trail stands: the sequence number and hash of its last event.
type Position struct {
	Seq  uint64
	Hash string
}

// Seal gives e the next place in the chain after p and returns the new position. buf is
// scratch space for the encoding; the grown buffer is returned.
func Seal(e *Event, p Position, buf []byte) (Position, []byte) {
	e.Seq = p.Seq + 1
	e.Prev = p.Hash
	if e.Prev == "" {
		e.Prev = Genesis
	}
	e.Hash = ""
	e.line = nil
	buf = e.AppendBody(buf[:0])
	sum := sha256.Sum256(buf)
	// The stored line is the body with the hash as its last member: built here once, it
	// is what every sink writes (AppendCanonical).
	line := make([]byte, 0, len(buf)+len(hashKey)+sha256.Size*2+1)
	line = append(line, buf[:len(buf)-1]...)
	line = append(line, hashKey...)
	line = hex.AppendEncode(line, sum[:])
	line = append(line, '"', '}')
	e.Hash = string(line[len(line)-2-sha256.Size*2 : len(line)-2])
	e.line = line
	return Position{Seq: e.Seq, Hash: e.Hash}, buf
}

var hashKey = []byte(`,"hash":"`)

// LineHash checks a stored line: it returns the hash the line claims and whether that is
// the SHA-256 of the line's body (the line without its hash member).
func LineHash(line []byte) (claimed string, ok bool) {
	line = bytes.TrimRight(line, "\r\n")
	// The hash is the last member: ,"hash":"<64 hex>"}
	const tail = len(`,"hash":"`) + 64 + len(`"}`)
	if len(line) < tail+2 {
		return "", false
	}
	start := len(line) - tail
	if !bytes.Equal(line[start:start+len(hashKey)], hashKey) || !bytes.HasSuffix(line, []byte(`"}`)) {
		return "", false
	}
	claimed = string(line[start+len(hashKey) : len(line)-2])
	body := make([]byte, 0, start+1)
	body = append(body, line[:start]...)
	body = append(body, '}')
	sum := sha256.Sum256(body)
	return claimed, hex.EncodeToString(sum[:]) == claimed
}

// Problem is the first place where a trail does not verify.
type Problem struct {
	Kind string // "altered", "removed", "reordered", "unreadable"
	File string
	Line int
	Seq  uint64 // the event concerned (0 when the line is not an event)
	Msg  string
}

func (p *Problem) Error() string {
	where := fmt.Sprintf("%s:%d", p.File, p.Line)
	if p.Seq > 0 {
		return fmt.Sprintf("%s: event %d %s: %s", where, p.Seq, p.Kind, p.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", where, p.Kind, p.Msg)
}

// Entry is one stored line of a trail, where it was read.
type Entry struct {
	File string
	Line int
	Raw  []byte
}

// Verifier checks a trail event by event, in the order they are stored.
type Verifier struct {
	last      Position
	lastAt    Entry
	n         int
	First     uint64 // the seq of the first event seen
	FirstPrev string // and the hash it follows (Genesis for a complete trail)
	later     map[uint64]Entry
}

// NewVerifier returns a verifier. later maps the sequence numbers present in the whole
// trail to where they are (from a first pass), so that a gap can be told apart from a
// reordering; nil: every gap is reported as a removal.
func NewVerifier(later map[uint64]Entry) *Verifier { return &Verifier{later: later} }

// Count is the number of events verified so far.
func (v *Verifier) Count() int { return v.n }

// Last is the position of the last event verified.
func (v *Verifier) Last() Position { return v.last }

// Add checks the next stored line.
func (v *Verifier) Add(en Entry) *Problem {
	claimed, ok := LineHash(en.Raw)
	if claimed == "" {
		return &Problem{Kind: "unreadable", File: en.File, Line: en.Line, Msg: "the line is not an audit event (no hash)"}
	}
	e, err := ParseLine(en.Raw)
	if err != nil {
		return &Problem{Kind: "altered", File: en.File, Line: en.Line, Msg: err.Error()}
	}
	if !ok {
		return &Problem{Kind: "altered", File: en.File, Line: en.Line, Seq: e.Seq,
			Msg: "its content does not match its hash (the event was edited)"}
	}
	if v.n == 0 {
		v.First, v.FirstPrev = e.Seq, e.Prev
	} else {
		want := v.last.Seq + 1
		switch {
		case e.Seq > want:
			if at, ok := v.later[want]; ok {
				return &Problem{Kind: "reordered", File: en.File, Line: en.Line, Seq: e.Seq,
					Msg: fmt.Sprintf("it follows event %d (%s:%d), but event %d is later, at %s:%d", v.last.Seq, v.lastAt.File, v.lastAt.Line, want, at.File, at.Line)}
			}
			miss := fmt.Sprintf("event %d is", want)
			if e.Seq-want > 1 {
				miss = fmt.Sprintf("events %d to %d are", want, e.Seq-1)
			}
			return &Problem{Kind: "removed", File: en.File, Line: en.Line, Seq: want,
				Msg: fmt.Sprintf("%s missing between event %d (%s:%d) and event %d", miss, v.last.Seq, v.lastAt.File, v.lastAt.Line, e.Seq)}
		case e.Seq < want:
			return &Problem{Kind: "reordered", File: en.File, Line: en.Line, Seq: e.Seq,
				Msg: fmt.Sprintf("it comes after event %d (%s:%d)", v.last.Seq, v.lastAt.File, v.lastAt.Line)}
		case e.Prev != v.last.Hash:
			return &Problem{Kind: "altered", File: v.lastAt.File, Line: v.lastAt.Line, Seq: v.last.Seq,
				Msg: fmt.Sprintf("its hash is not the one event %d (%s:%d) was chained to: event %d was rewritten or replaced", e.Seq, en.File, en.Line, v.last.Seq)}
		}
	}
	v.last = Position{Seq: e.Seq, Hash: e.Hash}
	v.lastAt = en
	v.n++
	return nil
}
