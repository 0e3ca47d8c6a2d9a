package limits

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

// Loop detection: the last calls of each distinct call (principal, server, method, tool,
// arguments) are remembered by time; when the calls-th identical call comes within the
// window, that call is refused and the call stays refused for the cool-down.

// maxLoopEntries bounds the distinct calls remembered, and maxLoopSlots the times they
// hold together (8 bytes each: 16 MiB at most). Past the bound, entries that are not
// cooling down are forgotten (their history starts again).
const (
	maxLoopEntries = 1 << 16
	maxLoopSlots   = 1 << 21
)

type loopEntry struct {
	times     []int64 // ring of the last calls' times (Unix nanoseconds)
	n, next   int     // how many are recorded; where the next goes
	coolUntil int64
}

type loops struct {
	cfg       *loopConfig
	max       int // entries kept at most
	seed      maphash.Seed
	mu        sync.Mutex
	m         map[uint64]*loopEntry
	lastSweep int64
}

func newLoops(cfg *loopConfig) *loops {
	return &loops{cfg: cfg, max: min(maxLoopEntries, maxLoopSlots/(cfg.calls-1)), seed: maphash.MakeSeed(), m: map[uint64]*loopEntry{}}
}

// loopOutcome says what the detector made of one call.
type loopOutcome int

const (
	loopPass     loopOutcome = iota
	loopDetected             // this call completed a loop: it starts the cool-down
	loopCooling              // the call is cooling down after a loop
)

// key hashes what makes two calls the same. Arguments are compared as JSON text without
// insignificant whitespace.
func (l *loops) key(c *guard.Call) uint64 {
	var h maphash.Hash
	h.SetSeed(l.seed)
	for _, s := range [...]string{c.Principal.Method, c.Principal.ID, c.Server, c.Msg.Method, c.Name} {
		h.WriteString(s)
		h.WriteByte(0)
	}
	args := c.Msg.Params
	if a, ok := jsonrpc.Lookup(c.Msg.Params, "arguments"); ok {
		args = a
	} else if c.Msg.Method == "tools/call" || c.Msg.Method == "prompts/get" {
		args = nil
	}
	writeCompact(&h, args)
	return h.Sum64()
}

// writeCompact writes JSON text to h without the whitespace outside strings.
func writeCompact(h *maphash.Hash, b []byte) {
	inString, escaped := false, false
	start := 0
	for i, c := range b {
		switch {
		case inString:
			if escaped {
				escaped = false
			} else if c == '\\' {
				escaped = true
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			h.Write(b[start:i])
			start = i + 1
		}
	}
	h.Write(b[start:])
}

// observe records a call at now and says whether it passes.
func (l *loops) observe(now int64, key uint64) (loopOutcome, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now-l.lastSweep > int64(l.cfg.window) {
		l.sweep(now)
	}
	e := l.m[key]
	if e != nil && now < e.coolUntil {
		return loopCooling, time.Duration(e.coolUntil - now)
	}
	if e == nil {
		if len(l.m) >= l.max {
			l.sweep(now)
			l.evict(now)
		}
		e = &loopEntry{times: make([]int64, l.cfg.calls-1)}
		l.m[key] = e
	}
	// The ring holds the calls-1 calls before this one: when the oldest of them is
	// within the window, this call is the calls-th.
	if e.n == len(e.times) && now-e.times[e.next] <= int64(l.cfg.window) {
		e.coolUntil = now + int64(l.cfg.cooldown)
		e.n, e.next = 0, 0
		return loopDetected, l.cfg.cooldown
	}
	e.times[e.next] = now
	e.next = (e.next + 1) % len(e.times)
	if e.n < len(e.times) {
		e.n++
	}
	return loopPass, 0
}

// sweep forgets calls whose history has left the window and that are not cooling down.
func (l *loops) sweep(now int64) {
	l.lastSweep = now
	for k, e := range l.m {
		if now < e.coolUntil {
			continue
		}
		last := e.times[(e.next+len(e.times)-1)%len(e.times)]
		if e.n == 0 || now-last > int64(l.cfg.window) {
			delete(l.m, k)
		}
	}
}

// evict forgets calls that are not cooling down until a tenth of the room is free.
func (l *loops) evict(now int64) {
	for k, e := range l.m {
		if len(l.m) < l.max*9/10 {
			return
		}
		if now >= e.coolUntil {
			delete(l.m, k)
		}
	}
}
