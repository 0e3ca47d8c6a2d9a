package streamablehttp

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/gateway"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

// maxEvents bounds the events a stream keeps for resumption.
const maxEvents = 1024

// writeTimeout bounds one write to a client: a client that does not read its stream is
// cut off rather than holding the gateway's memory and goroutines.
const writeTimeout = 30 * time.Second

// keepDelivered is how many streams a session keeps for resumption after the client
// received them whole (a stream the client did not receive whole is kept longer).
const keepDelivered = 8

type event struct {
	seq int
	msg *jsonrpc.Message
}

// stream is one SSE stream: the response stream of a request, or a session's standalone
// GET stream. Its events are kept (bounded) so a client can resume it with Last-Event-ID.
type stream struct {
	id                      string
	mu                      sync.Mutex
	events                  []event // the newest maxEvents
	next                    int     // seq of the next event
	cursor                  int     // seq of the next event to write to the client
	gen                     int     // pipe generation: a newer pipe takes the stream over
	wake                    chan struct{}
	done, first, wasResumed bool
	final                   *jsonrpc.Message

	// live is the response writer of the request this stream answers, while its handler
	// runs: events are written to it at once. Nil otherwise, or once the client is gone.
	live      http.ResponseWriter
	wroteHead bool
	plainOK   bool // a response with nothing before it may be written as plain JSON
	// owner forgets the stream once the client has received all of it (nil: a stream no
	// session keeps).
	owner *sessionState
}

// attach makes w the live writer of the stream.
func (s *stream) attach(w http.ResponseWriter, plainOK bool) {
	s.mu.Lock()
	s.live, s.plainOK = w, plainOK
	s.mu.Unlock()
}

// writeLiveLocked writes the events not yet written to the live writer. flush sends them
// now; otherwise they go out when the handler returns.
var (
	hdrEventStream = []string{"text/event-stream"}
	hdrNoCache     = []string{"no-cache"}
	hdrNo          = []string{"no"}
)

// eventBufs hold the events of one write to a live stream; the writer copies them (into
// its own buffer or onto the wire), so the buffer serves the next write.
var eventBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func putEventBuf(b *bytes.Buffer) {
	if b.Cap() <= 64<<10 { // one large answer does not pin its buffer
		eventBufs.Put(b)
	}
}

func (s *stream) writeLiveLocked(flush bool) {
	if s.live == nil || s.gen != 0 {
		return
	}
	b := eventBufs.Get().(*bytes.Buffer)
	defer putEventBuf(b)
	b.Reset()
	if !s.wroteHead {
		h := s.live.Header()
		// Shared, never modified value slices: no allocation per response.
		h["Content-Type"] = hdrEventStream
		h["Cache-Control"] = hdrNoCache
		h["X-Accel-Buffering"] = hdrNo
		s.live.WriteHeader(http.StatusOK)
		s.wroteHead = true
		b.WriteString("retry: 1000\n\n")
	}
	for _, ev := range s.events {
		if ev.seq >= s.cursor {
			writeEvent(b, s.id, ev.seq, ev.msg)
		}
	}
	s.cursor = s.next
	rc := http.NewResponseController(s.live)
	rc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := s.live.Write(b.Bytes()); err != nil {
		s.live = nil // the client is gone; events stay for a resumption
		return
	}
	if flush {
		if err := rc.Flush(); err != nil {
			s.live = nil
		}
	}
}

// finishLive ends a live stream with the response. It returns the response when it is to
// be written as plain JSON instead (nothing was sent before it and plain is allowed).
func (s *stream) finishLive(resp *jsonrpc.Message, plain bool) *jsonrpc.Message {
	s.mu.Lock()
	gone := false
	defer func() {
		s.live = nil
		s.mu.Unlock()
		s.finish()
		if gone && s.owner != nil {
			s.owner.delivered(s) // after s.mu: the session's lock is taken before a stream's
		}
	}()
	if plain && s.next == 0 && s.live != nil {
		s.final = resp
		gone = true
		return resp
	}
	if resp != nil && !s.done {
		s.events = append(s.events, event{seq: s.next, msg: resp})
		s.next++
		if len(s.events) > maxEvents {
			s.events = s.events[len(s.events)-maxEvents:]
		}
	}
	s.writeLiveLocked(false)
	if s.live != nil && s.cursor == s.next {
		gone = true
	}
	return nil
}

func (s *stream) wasResumedOrDone() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wasResumed || s.done
}

func newStream() *stream {
	return &stream{id: nextStreamID(), wake: make(chan struct{}, 1)}
}

func (s *stream) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// send queues m on the stream. It reports false when the stream has finished.
func (s *stream) send(m *jsonrpc.Message) bool {
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		return false
	}
	s.events = append(s.events, event{seq: s.next, msg: m})
	s.next++
	if len(s.events) > maxEvents {
		s.events = s.events[len(s.events)-maxEvents:]
	}
	s.first = true
	s.writeLiveLocked(true)
	s.mu.Unlock()
	s.signal()
	return true
}

func (s *stream) finish() {
	s.mu.Lock()
	if !s.done {
		s.done = true
	}
	s.mu.Unlock()
	s.signal()
}

// complete ends the stream with the response. When nothing was sent on the stream yet
// and plain is set, the response is kept aside (final) to be written as plain JSON.
func (s *stream) complete(resp *jsonrpc.Message, plain bool) {
	s.mu.Lock()
	if plain && s.next == 0 && !s.done {
		s.final = resp
		s.mu.Unlock()
		s.finish()
		return
	}
	s.mu.Unlock()
	if resp != nil {
		s.send(resp)
	}
	s.finish()
}

// plainResponse returns the response kept aside by complete.
func (s *stream) plainResponse() *jsonrpc.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.final
}

func (s *stream) resume(seq int) {
	s.mu.Lock()
	s.cursor = seq + 1
	if !s.wasResumed {
		s.wasResumed = true
	}
	s.mu.Unlock()
}

// pipe writes the stream's events to w until the stream finishes, the client goes away,
// or a newer pipe takes over.
func (s *stream) pipe(w http.ResponseWriter, ctx context.Context) {
	s.mu.Lock()
	s.gen++
	gen := s.gen
	s.mu.Unlock()
	s.signal() // wake an older pipe so it sees it was replaced
	flusher, _ := w.(http.Flusher)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	var buf bytes.Buffer
	buf.WriteString("retry: 1000\n\n")
	for {
		s.mu.Lock()
		if s.gen != gen {
			s.mu.Unlock()
			return
		}
		for _, ev := range s.events {
			if ev.seq >= s.cursor {
				writeEvent(&buf, s.id, ev.seq, ev.msg)
			}
		}
		if s.next > s.cursor {
			s.cursor = s.next
		}
		done := s.done
		s.mu.Unlock()
		if buf.Len() > 0 {
			http.NewResponseController(w).SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, err := w.Write(buf.Bytes()); err != nil {
				return
			}
			buf.Reset()
			// The last write is not flushed: returning from the handler sends it, in one
			// write with the headers when the whole stream was ready at once.
			if !done && flusher != nil {
				flusher.Flush()
			}
		}
		if done {
			return
		}
		select {
		case <-s.wake:
		case <-ctx.Done():
			return
		}
	}
}

// sessionState is the front side of one legacy session (or of one sessionless request):
// its streams and the server-to-client requests waiting for the client's answer.
type sessionState struct {
	h       *Handler
	sess    *gateway.Session
	mu      sync.Mutex
	streams map[string]*stream
	stand   *stream
	pending map[string]chan *jsonrpc.Message
	// received lists, oldest first, the streams received whole that are still kept.
	received []string
	seq      atomic.Int64
	closed   bool
}

func (st *sessionState) newStream() *stream {
	s := newStream()
	s.owner = st
	st.mu.Lock()
	st.streams[s.id] = s
	// Keep the number of finished streams kept for resumption bounded.
	if len(st.streams) > 256 {
		for id, old := range st.streams {
			old.mu.Lock()
			d := old.done
			old.mu.Unlock()
			if d && old != s {
				delete(st.streams, id)
			}
		}
	}
	st.mu.Unlock()
	return s
}

// delivered notes that the client received s whole: only the last few such streams stay
// resumable.
func (st *sessionState) delivered(s *stream) {
	st.mu.Lock()
	st.received = append(st.received, s.id)
	if len(st.received) > keepDelivered {
		delete(st.streams, st.received[0])
		n := copy(st.received, st.received[1:]) // in place: the slice never grows past keepDelivered+1
		st.received = st.received[:n]
	}
	st.mu.Unlock()
}

func (st *sessionState) standalone() *stream {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.stand == nil {
		st.stand = newStream()
		st.streams[st.stand.id] = st.stand
	}
	return st.stand
}

func (st *sessionState) find(lastEventID string) (*stream, int) {
	i := strings.LastIndexByte(lastEventID, '_')
	if i < 0 {
		return nil, 0
	}
	seq, err := strconv.Atoi(lastEventID[i+1:])
	if err != nil {
		return nil, 0
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.streams[lastEventID[:i]], seq
}

func (st *sessionState) close() {
	st.mu.Lock()
	st.closed = true
	for _, s := range st.streams {
		s.finish()
	}
	for id, ch := range st.pending {
		close(ch)
		delete(st.pending, id)
	}
	st.mu.Unlock()
}

type streamKey struct{}

func withStream(ctx context.Context, s *stream) context.Context {
	return context.WithValue(ctx, streamKey{}, s)
}

// target is where a server-initiated message goes: the response stream of the request it
// belongs to while that is open, otherwise the standalone stream.
func (st *sessionState) target(ctx context.Context) *stream {
	if s, ok := ctx.Value(streamKey{}).(*stream); ok {
		s.mu.Lock()
		open := !s.done
		s.mu.Unlock()
		if open {
			return s
		}
	}
	return st.standalone()
}

// Notify implements gateway.Client.
func (st *sessionState) Notify(ctx context.Context, m *jsonrpc.Message) error {
	if !st.target(ctx).send(m) {
		return fmt.Errorf("client stream closed")
	}
	return nil
}

// Request implements gateway.Client.
func (st *sessionState) Request(ctx context.Context, m *jsonrpc.Message) (*jsonrpc.Message, error) {
	id := jsonrpc.ID(strconv.Quote("pc-" + strconv.FormatInt(st.seq.Add(1), 10)))
	ch := make(chan *jsonrpc.Message, 1)
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return nil, fmt.Errorf("session closed")
	}
	st.pending[string(id)] = ch
	st.mu.Unlock()
	defer func() {
		st.mu.Lock()
		delete(st.pending, string(id))
		st.mu.Unlock()
	}()
	out := *m
	out.ID = id
	if !st.target(ctx).send(&out) {
		return nil, fmt.Errorf("client stream closed")
	}
	select {
	case resp, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("session closed")
		}
		r := *resp
		r.ID = m.ID
		return &r, nil
	case <-ctx.Done():
		st.Notify(context.Background(), jsonrpc.NewNotification("notifications/cancelled", map[string]any{"requestId": jsonRaw(id), "reason": "cancelled by the server"}))
		return nil, ctx.Err()
	}
}

// deliver hands a client's response to the request waiting for it.
func (st *sessionState) deliver(m *jsonrpc.Message) {
	st.mu.Lock()
	ch := st.pending[string(m.ID)]
	delete(st.pending, string(m.ID))
	st.mu.Unlock()
	if ch != nil {
		ch <- m
	}
}
