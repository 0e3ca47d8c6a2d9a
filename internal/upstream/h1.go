package upstream

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/rawsock"
)

// H1Transport is an HTTP/1.1 http.RoundTripper for the gateway's hot path to HTTP servers.
// Unlike net/http's Transport it runs each exchange in the caller's goroutine (no read and
// write loops to hand off to), which halves the scheduling work of a proxied call. It keeps
// idle keep-alive connections per host, and closes a connection whose response was not read
// to the end.
type H1Transport struct {
	// TLS is used for https URLs; nil means the default configuration.
	TLS *tls.Config
	// MaxIdlePerHost bounds the idle connections kept per host (default 256).
	MaxIdlePerHost int
	// DialTimeout bounds connecting (default 10s).
	DialTimeout time.Duration

	mu   sync.Mutex
	idle map[hostKey][]*h1conn
	// lingers holds the hosts that kept an answered stream open past pendingWait.
	lingers map[hostKey]bool
}

func (t *H1Transport) lingering(key hostKey) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lingers[key]
}

func (t *H1Transport) setLingering(key hostKey) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lingers == nil {
		t.lingers = map[hostKey]bool{}
	}
	t.lingers[key] = true
}

type h1conn struct {
	net.Conn
	br     *bufio.Reader
	reused bool
	nread  int // bytes read from the network since the exchange began

	// With lazyWait set, the next read from the network first sets a read deadline
	// lazyWait from then (and sets lazySet): finishing a body arms no timer when its rest
	// is already buffered, which is the usual case.
	lazyWait time.Duration
	lazySet  bool

	// pending is the body of the previous exchange when DrainLater gave the connection
	// back before its end; the next user reads the rest first.
	pending *h1body
}

// counter counts what the connection's reader takes from the network.
type counter struct{ c *h1conn }

func (r counter) Read(p []byte) (int, error) {
	if r.c.lazyWait > 0 && !r.c.lazySet {
		r.c.Conn.SetReadDeadline(time.Now().Add(r.c.lazyWait))
		r.c.lazySet = true
	}
	n, err := r.c.Conn.Read(p)
	r.c.nread += n
	return n, err
}

var _ http.RoundTripper = (*H1Transport)(nil)

// hostKey names the server a connection goes to (no string is built per request).
type hostKey struct{ scheme, host string }

func (t *H1Transport) key(u *http.Request) hostKey { return hostKey{u.URL.Scheme, u.URL.Host} }

func (t *H1Transport) get(ctx context.Context, req *http.Request) (*h1conn, error) {
	key := t.key(req)
	for {
		t.mu.Lock()
		list := t.idle[key]
		if len(list) == 0 {
			t.mu.Unlock()
			break
		}
		c := list[len(list)-1]
		t.idle[key] = list[:len(list)-1]
		t.mu.Unlock()
		if c.pending != nil && !c.finishPending() {
			c.Close()
			t.setLingering(key)
			continue
		}
		c.active()
		c.reused = true
		return c, nil
	}
	host := req.URL.Host
	if req.URL.Port() == "" {
		if req.URL.Scheme == "https" {
			host = net.JoinHostPort(req.URL.Hostname(), "443")
		} else {
			host = net.JoinHostPort(req.URL.Hostname(), "80")
		}
	}
	timeout := t.DialTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	d := net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	conn = rawsock.Wrap(conn)
	if req.URL.Scheme == "https" {
		cfg := t.TLS.Clone()
		if cfg == nil {
			cfg = &tls.Config{}
		}
		if cfg.ServerName == "" {
			cfg.ServerName = req.URL.Hostname()
		}
		cfg.NextProtos = []string{"http/1.1"}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, err
		}
		conn = tc
	}
	// Small buffers: a connection is kept for each call in flight and for each session's
	// stream of server messages. Longer writes go past the writer's buffer, longer reads
	// of a body past the reader's; a longer response head is read beside it (longHead).
	c := &h1conn{Conn: conn}
	c.br = bufio.NewReaderSize(counter{c}, 4<<10)
	return c, nil
}

// Buffers shared by the connections: a writer serves one request's head and body, and an
// idle connection with nothing buffered gives its reader back. A long-lived stream keeps
// only its reader, and the idle pool keeps no buffers.
var (
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
)

// idle gives back the reader of a connection going into the idle pool when nothing is
// left in it (a connection whose answered stream's end is still to be read keeps it).
func (c *h1conn) idle() {
	if c.pending == nil && c.br != nil && c.br.Buffered() == 0 {
		c.br.Reset(nil)
		readers.Put(c.br)
		c.br = nil
	}
}

// active gives a connection taken from the idle pool a reader again.
func (c *h1conn) active() {
	if c.br == nil {
		c.br = readers.Get().(*bufio.Reader)
		c.br.Reset(counter{c})
	}
}

func (t *H1Transport) put(key hostKey, c *h1conn) {
	max := t.MaxIdlePerHost
	if max <= 0 {
		max = 256
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.idle == nil {
		t.idle = map[hostKey][]*h1conn{}
	}
	if len(t.idle[key]) >= max {
		c.Close()
		return
	}
	c.idle()
	t.idle[key] = append(t.idle[key], c)
}

// CloseIdleConnections closes the idle connections.
func (t *H1Transport) CloseIdleConnections() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, list := range t.idle {
		for _, c := range list {
			c.Close()
		}
		delete(t.idle, k)
	}
}

// RoundTrip implements http.RoundTripper.
func (t *H1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return nil, fmt.Errorf("unsupported scheme %q", req.URL.Scheme)
	}
	ctx := req.Context()
	// A reused connection may have been closed by the server while it was idle: the
	// request failed to be written, or the connection ended before any byte of an answer.
	// Then, and only then, the request is sent once more on a fresh connection.
	for attempt := 0; ; attempt++ {
		c, err := t.get(ctx, req)
		if err != nil {
			return nil, err
		}
		resp, err := t.exchange(ctx, c, req)
		if err == nil {
			return resp, nil
		}
		c.Close()
		if attempt > 0 || ctx.Err() != nil || !errors.Is(err, errStale) || (req.Body != nil && req.GetBody == nil) {
			return nil, errors.Unwrap(err)
		}
		if req.GetBody != nil {
			body, gerr := req.GetBody()
			if gerr != nil {
				return nil, gerr
			}
			req = req.Clone(ctx)
			req.Body = body
		}
	}
}

// errStale marks a failure before any byte of the response arrived.
var errStale = errors.New("connection failed before the response")

type staleErr struct{ err error }

func (e staleErr) Error() string        { return e.err.Error() }
func (e staleErr) Unwrap() error        { return e.err }
func (e staleErr) Is(target error) bool { return target == errStale }

func (t *H1Transport) exchange(ctx context.Context, c *h1conn, req *http.Request) (*http.Response, error) {
	// Cancellation closes the connection, which ends any blocked read or write.
	stop := context.AfterFunc(ctx, func() { c.Close() })
	c.nread = 0
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(c.Conn)
	err := writeRequest(bw, req)
	if errors.Is(err, errUnframed) {
		err = req.Write(bw)
	}
	if err == nil {
		err = bw.Flush()
	}
	bw.Reset(nil)
	writers.Put(bw)
	if err != nil {
		stop()
		if c.reused {
			return nil, staleErr{err}
		}
		return nil, fmt.Errorf("%w", err)
	}
	resp, err := readResponse(c.br, req)
	if err != nil {
		stop()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w", context.Cause(ctx))
		}
		if c.reused && c.nread == 0 && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)) {
			return nil, staleErr{err}
		}
		return nil, fmt.Errorf("%w", err)
	}
	resp.Body = &h1body{ReadCloser: resp.Body, t: t, c: c, key: t.key(req), stop: stop, reuse: !resp.Close}
	return resp, nil
}

// h1body returns its connection to the pool when the body was read to the end.
type h1body struct {
	io.ReadCloser
	t     *H1Transport
	c     *h1conn
	key   hostKey
	stop  func() bool
	reuse bool
	eof   bool
	once  sync.Once

	detached bool
}

func (b *h1body) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

// DrainLater closes the body and gives its connection back to the pool with the rest of
// the body unread: the next exchange on the connection reads that rest first (by then it
// has usually arrived, so nobody waits and no timer is armed). A server ends an answered
// stream at once, but under load the end comes a little after the answer, and the caller
// should not wait for it. It reports false, and does nothing, when the connection cannot
// be reused or the server is known to keep answered streams open; the caller then drains
// the body itself.
func (b *h1body) DrainLater() bool {
	if b.eof {
		b.Close()
		return true
	}
	if !b.reuse || b.t.lingering(b.key) {
		return false
	}
	b.once.Do(func() {
		if !b.detached && !b.stop() {
			b.c.Close() // the request's context ended: the connection is being closed
			return
		}
		b.c.pending = b
		b.t.put(b.key, b.c)
	})
	return true
}

// pendingWait bounds how long a reused connection waits for the end of the body that
// DrainLater left: a server that has not ended it by then keeps answered streams open.
const pendingWait = 100 * time.Millisecond

// finishPending reads the rest of the body DrainLater left on c, waiting at most
// pendingWait for the network. It reports whether the body ended.
func (c *h1conn) finishPending() bool {
	b := c.pending
	c.pending = nil
	c.lazyWait, c.lazySet = pendingWait, false
	var buf [512]byte
	for n := 0; n < 256<<10 && !b.eof; {
		m, err := b.Read(buf[:])
		n += m
		if err != nil {
			break
		}
	}
	if c.lazySet {
		c.SetReadDeadline(time.Time{})
	}
	c.lazyWait, c.lazySet = 0, false
	return b.eof
}

// Detach stops the request's context from closing the connection, for a reader that goes
// on reading the body after the request is over (it must bound its reading itself).
func (b *h1body) Detach() { b.detached = b.stop() }

func (b *h1body) Close() error {
	b.once.Do(func() {
		b.ReadCloser.Close()
		stopped := b.detached || b.stop()
		if stopped && b.eof && b.reuse {
			b.t.put(b.key, b.c)
			return
		}
		b.c.Close()
	})
	return nil
}
