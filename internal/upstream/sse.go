package upstream

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
	"github.com/portcullis-mcp/portcullis/internal/rpc"
)

// This file holds the legacy HTTP+SSE transport of MCP 2024-11-05 and the Server-Sent
// Events parser both HTTP transports use.

// errEventTooLarge is returned by eventReader for an event (or a line) over the limit; the
// stream cannot go on after it.
var errEventTooLarge = errors.New("event exceeds the size limit")

// eventReader parses a text/event-stream as the HTML standard describes it: lines end with
// CRLF, LF or CR; a blank line dispatches the event; "data" lines are joined with LF;
// lines starting with a colon are comments. The last event id and the retry delay survive
// a reset, so that a reconnection can carry Last-Event-ID.
type eventReader struct {
	sc       *bufio.Scanner
	buf      *[]byte // the scanner's first buffer, from linePool
	max      int
	first    bool
	lastID   string
	retry    time.Duration
	hasRetry bool
	events   int // events with data (not blank) since the last reset
}

func newEventReader(r io.Reader, maxBytes int) *eventReader {
	er := &eventReader{max: maxBytes}
	er.reset(r)
	return er
}

// reset starts reading a new response body, keeping the last event id and retry delay.
func (er *eventReader) reset(r io.Reader) {
	sc := bufio.NewScanner(r)
	// A line is "data: " plus at most the whole message. The buffer starts small and the
	// scanner doubles it for a longer line.
	if er.buf == nil {
		er.buf = linePool.Get().(*[]byte)
	}
	sc.Buffer((*er.buf)[:0], er.max+1024)
	sc.Split(splitSSELines)
	er.sc, er.first, er.events = sc, true, 0
}

// release gives the line buffer back for the next call's answer. The reader must not be
// used after it; what next returned stays valid (it is copied out of the buffer).
func (er *eventReader) release() {
	if er.buf != nil {
		linePool.Put(er.buf)
		er.buf, er.sc = nil, nil
	}
}

// eventBufferStart is the initial size of an event stream's line buffer: the answer to a
// call is mostly one line of a few hundred bytes, and at 4 KiB this buffer was a quarter
// of the bytes the gateway allocated per call. Calls' answers share these buffers
// (linePool); a scanner that needs a longer one grows its own.
const eventBufferStart = 1 << 10

var linePool = sync.Pool{New: func() any { b := make([]byte, eventBufferStart); return &b }}

// splitSSELines splits at CRLF, LF or a lone CR.
func splitSSELines(data []byte, atEOF bool) (int, []byte, error) {
	i := bytes.IndexAny(data, "\r\n")
	switch {
	case i < 0:
		if atEOF && len(data) > 0 {
			return len(data), data, nil
		}
		return 0, nil, nil
	case data[i] == '\n':
		return i + 1, data[:i], nil
	case i+1 < len(data):
		if data[i+1] == '\n' {
			return i + 2, data[:i], nil
		}
		return i + 1, data[:i], nil
	case atEOF:
		return i + 1, data[:i], nil
	}
	return 0, nil, nil // a CR at the end of the buffer: an LF may follow
}

// next returns the next dispatched event: its type ("" when none was given) and its data,
// in a fresh slice. Events without data are not dispatched (but their id and retry count).
// At the end of the stream it returns io.EOF, dropping an unterminated event.
func (er *eventReader) next() (string, []byte, error) {
	var name string
	var data []byte
	for er.sc.Scan() {
		line := er.sc.Bytes()
		if er.first {
			er.first = false
			line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
		}
		if len(line) == 0 {
			if data == nil {
				name = ""
				continue
			}
			if len(bytes.TrimSpace(data)) > 0 {
				er.events++
			}
			return name, data[:len(data)-1], nil
		}
		if line[0] == ':' {
			continue
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "event":
			name = string(value)
		case "data":
			if len(data)+len(value) > er.max {
				return "", nil, fmt.Errorf("%w of %d bytes", errEventTooLarge, er.max)
			}
			if data == nil {
				data = make([]byte, 0, len(value)+1)
			}
			data = append(append(data, value...), '\n')
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				er.lastID = string(value)
			}
		case "retry":
			if n, err := strconv.ParseUint(string(value), 10, 32); err == nil {
				er.retry, er.hasRetry = time.Duration(n)*time.Millisecond, true
			}
		}
	}
	if err := er.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return "", nil, fmt.Errorf("%w of %d bytes", errEventTooLarge, er.max)
		}
		return "", nil, err
	}
	return "", nil, io.EOF
}

// SSE is the client side of the legacy HTTP+SSE transport (MCP 2024-11-05): server messages
// arrive on one long GET stream, whose first event names the URL to POST messages to.
// Server messages cannot be tied to a request, so Incoming gets a background context.
type SSE struct {
	name    string
	client  *http.Client
	header  http.Header
	limits  jsonrpc.Limits
	sseURL  *url.URL
	postURL *url.URL
	peer    *rpc.Peer
	ctx     context.Context // the transport's lifetime; cancelling it ends the GET
	cancel  context.CancelFunc
	done    chan struct{}
	ending  sync.Once
	mu      sync.Mutex
	err     error
}

// SSEConnectTimeout bounds how long NewSSE waits for the endpoint event.
const SSEConnectTimeout = 30 * time.Second

// NewSSE opens the SSE stream at endpoint and waits (bounded by ctx and SSEConnectTimeout)
// for the server's endpoint event. The message URL must have the same origin as endpoint.
// The stream lives until Close, not until ctx ends.
func NewSSE(ctx context.Context, endpoint string, opts HTTPOptions, in Incoming) (*SSE, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("upstream: invalid SSE endpoint %q: want an http or https URL", redactURL(endpoint))
	}
	t := &SSE{
		name:   serverName(opts.Name, u),
		client: opts.Client,
		header: opts.Header,
		limits: opts.Limits,
		sseURL: u,
		done:   make(chan struct{}),
	}
	if t.client == nil {
		t.client = http.DefaultClient
	}
	if in == nil {
		in = refuseIncoming
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())

	// The GET lives as long as the transport; only the wait for the endpoint event is
	// bounded by ctx and the connect timeout.
	cctx, ccancel := context.WithTimeoutCause(ctx, SSEConnectTimeout, fmt.Errorf("no endpoint event within %v", SSEConnectTimeout))
	defer ccancel()
	stop := context.AfterFunc(cctx, t.cancel)
	defer stop()
	fail := func(err error) (*SSE, error) {
		t.cancel()
		switch {
		case ctx.Err() != nil:
			err = context.Cause(ctx)
		case cctx.Err() != nil:
			err = context.Cause(cctx)
		}
		return nil, fmt.Errorf("%w: server %q: connecting: %w", ErrUnavailable, t.name, err)
	}

	req, err := http.NewRequestWithContext(t.ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fail(err)
	}
	copyHeader(req.Header, opts.Header)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	resp, err := t.client.Do(req)
	if err != nil {
		return fail(unwrapURLError(err))
	}
	if resp.StatusCode != http.StatusOK {
		serr := newStatusError(t.name, req.Method, readExcerpt(resp.Body, statusBodyExcerpt), resp.StatusCode, false)
		resp.Body.Close()
		return fail(serr)
	}
	if ct := mediaType(resp.Header); ct != "text/event-stream" {
		resp.Body.Close()
		return fail(fmt.Errorf("GET answered with content type %q, want text/event-stream", ct))
	}
	er := newEventReader(resp.Body, limitBytes(opts.Limits))
	for t.postURL == nil {
		name, data, err := er.next()
		if err != nil {
			resp.Body.Close()
			if errors.Is(err, io.EOF) {
				err = errors.New("the event stream ended before the endpoint event")
			}
			return fail(err)
		}
		if name != "endpoint" {
			continue // messages before the endpoint are not expected; skip them
		}
		base := u
		if resp.Request != nil && resp.Request.URL != nil {
			base = resp.Request.URL // after redirects
		}
		p, err := base.Parse(strings.TrimSpace(string(data)))
		if err != nil {
			resp.Body.Close()
			return fail(fmt.Errorf("invalid endpoint event %q: %v", truncateString(string(data), 200), err))
		}
		if origin(p) != origin(u) {
			resp.Body.Close()
			return fail(fmt.Errorf("the endpoint event names %s, another origin than %s: refused", origin(p), origin(u)))
		}
		t.postURL = p
	}
	if !stop() {
		// ctx ended just as the endpoint arrived: t.ctx is cancelled.
		resp.Body.Close()
		return fail(context.Cause(cctx))
	}

	s := &sseStream{t: t, er: er, body: resp.Body}
	t.peer = rpc.NewPeer(s, rpc.Handler(in))
	go func() {
		err := t.peer.Run(t.ctx)
		if err == nil || errors.Is(err, io.EOF) {
			err = errors.New("the event stream ended")
		}
		t.finish(fmt.Errorf("%w: server %q: %w", ErrUnavailable, t.name, err))
		resp.Body.Close()
	}()
	return t, nil
}

// finish records why the transport ended (the first reason wins) and closes Done.
func (t *SSE) finish(err error) {
	t.ending.Do(func() {
		t.mu.Lock()
		t.err = err
		t.mu.Unlock()
		t.cancel()
		close(t.done)
	})
}

// sseStream is the rpc.Stream of the legacy transport: it reads "message" events from the
// GET stream and POSTs every outgoing message to the endpoint URL.
type sseStream struct {
	t    *SSE
	er   *eventReader
	body io.Closer
}

func (s *sseStream) Read() (*jsonrpc.Message, error) {
	for {
		name, data, err := s.er.next()
		if err != nil {
			return nil, err
		}
		if name != "" && name != "message" {
			continue // a repeated endpoint event, or an extension
		}
		if len(bytes.TrimSpace(data)) == 0 {
			continue
		}
		m, err := jsonrpc.Decode(data, s.t.limits)
		if err != nil {
			return nil, err
		}
		return m, nil
	}
}

// sseWriteTimeout bounds one POST of the legacy transport.
const sseWriteTimeout = 30 * time.Second

func (s *sseStream) Write(m *jsonrpc.Message) error {
	t := s.t
	ctx, cancel := context.WithTimeout(t.ctx, sseWriteTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.postURL.String(), bytes.NewReader(m.Marshal()))
	if err != nil {
		return err
	}
	copyHeader(req.Header, t.header)
	req.Header.Set("Content-Type", "application/json")
	resp, err := t.client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: server %q: POST: %w", ErrUnavailable, t.name, unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return newStatusError(t.name, req.Method, readExcerpt(resp.Body, statusBodyExcerpt), resp.StatusCode, false)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return nil
}

func (s *sseStream) Close() error {
	s.t.cancel()
	return s.body.Close()
}

// Call implements Transport.
func (t *SSE) Call(ctx context.Context, req *jsonrpc.Message) (*jsonrpc.Message, error) {
	resp, err := t.peer.Call(ctx, req)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Cause(ctx)) {
			return nil, err
		}
		if errors.Is(err, rpc.ErrClosed) {
			<-t.done
			return nil, t.Err()
		}
		if !errors.Is(err, ErrUnavailable) {
			err = fmt.Errorf("%w: server %q: %w", ErrUnavailable, t.name, err)
		}
		return nil, err
	}
	return resp, nil
}

// Notify implements Transport.
func (t *SSE) Notify(ctx context.Context, n *jsonrpc.Message) error {
	if err := t.peer.Notify(n); err != nil {
		if errors.Is(err, rpc.ErrClosed) {
			<-t.done
			return t.Err()
		}
		if !errors.Is(err, ErrUnavailable) {
			err = fmt.Errorf("%w: server %q: %w", ErrUnavailable, t.name, err)
		}
		return err
	}
	return nil
}

// SetSession implements Transport; the legacy transport's session is its GET stream.
func (t *SSE) SetSession(string, string) {}

// Done implements Transport: it is closed when the event stream ends or on Close.
func (t *SSE) Done() <-chan struct{} { return t.done }

// Err implements Transport. It is nil while Done is open.
func (t *SSE) Err() error {
	select {
	case <-t.done:
	default:
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// Close ends the event stream, which ends the server's session.
func (t *SSE) Close() error {
	t.finish(fmt.Errorf("%w: server %q: %w", ErrUnavailable, t.name, rpc.ErrClosed))
	t.peer.Close()
	return nil
}

// origin is scheme://host:port with the default port made explicit.
func origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch strings.ToLower(u.Scheme) {
		case "http":
			port = "80"
		case "https":
			port = "443"
		}
	}
	return strings.ToLower(u.Scheme) + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}
