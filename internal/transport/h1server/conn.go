package h1server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/rawsock"
)

// conn is one client connection served by the fast path.
type conn struct {
	s       *Server
	nc      net.Conn
	ctx     context.Context // values net/http handlers expect (local address, server)
	tmpl    http.Request
	idle    atomic.Bool
	buf     []byte // read buffer: buf[r:w] is unread
	r, w    int
	out     []byte // response head (and body) as written
	bodyBuf []byte // response body held back
	wdl     bool   // a write deadline was set during the last request
	broken  bool   // the watcher saw the client go away

	// The watcher: a read kept pending during a long call, as net/http does during every
	// request, to cancel the call when the client disconnects.
	timer    *time.Timer
	mu       sync.Mutex
	armed    bool
	watching bool
	watchEnd chan struct{}
	cancel   context.CancelFunc
	onGone   func()  // the handler's OnDisconnect
	extra    [1]byte // a byte the watcher read (the next request, pipelined)
	hasExtra bool
}

func (s *Server) newConn(nc net.Conn) *conn {
	nc = rawsock.Wrap(nc)
	c := &conn{s: s, nc: nc, buf: make([]byte, 4096)}
	ctx := context.WithValue(context.Background(), http.ServerContextKey, s.Fallback)
	c.ctx = context.WithValue(ctx, http.LocalAddrContextKey, nc.LocalAddr())
	c.tmpl = http.Request{Method: http.MethodPost, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		RemoteAddr: nc.RemoteAddr().String(), RequestURI: s.Target}
	return c
}

func (c *conn) serve() {
	handedOff := false
	defer func() {
		if p := recover(); p != nil && p != http.ErrAbortHandler {
			buf := make([]byte, 64<<10)
			buf = buf[:runtime.Stack(buf, false)]
			c.s.logf("h1server: panic serving request", "remote", c.tmpl.RemoteAddr, "panic", fmt.Sprint(p), "stack", string(buf))
		}
		if !handedOff {
			c.nc.Close()
		}
		if c.timer != nil {
			c.timer.Stop()
		}
		c.s.forget(c)
	}()
	idleTimeout := orDefault(c.s.IdleTimeout, 2*time.Minute)
	headerTimeout := orDefault(c.s.HeaderTimeout, 10*time.Second)
	readTimeout := orDefault(c.s.ReadTimeout, 60*time.Second)
	for {
		if c.r == c.w && !c.hasExtra {
			c.idle.Store(true)
			if c.s.shutting.Load() {
				return
			}
			c.nc.SetReadDeadline(time.Now().Add(idleTimeout))
			if err := c.fill(); err != nil {
				return
			}
			c.idle.Store(false)
		}
		// The header and body deadlines are put on the socket only when there is still
		// something to read: a request that came in one piece (the usual case) sets none,
		// and the idle deadline above, which bounds no read of this request, stays.
		var start time.Time
		end := bytes.Index(c.buf[c.r:c.w], crlfcrlf)
		if end >= 0 {
			end += c.r
		} else {
			start = time.Now()
			c.nc.SetReadDeadline(start.Add(headerTimeout))
			var err error
			if end, err = c.readHead(); err != nil {
				return // timeout or EOF in the head: net/http closes too
			}
		}
		var h head
		ok := end >= 0
		if ok {
			h, ok = parseHead(c.buf[c.r:end], c.s.Target)
		}
		if !ok {
			handedOff = c.handOff()
			return
		}
		c.r = end + 4
		if int64(c.w-c.r) < h.contentLength {
			if start.IsZero() {
				start = time.Now()
			}
			c.nc.SetReadDeadline(start.Add(max(readTimeout, headerTimeout)))
		}
		if !c.serveOne(h) {
			return
		}
	}
}

// fill reads more bytes into the buffer, compacting or growing it as needed.
func (c *conn) fill() error {
	if c.hasExtra {
		c.hasExtra = false
		if c.r == c.w {
			c.r, c.w = 0, 0
		}
		c.makeRoom()
		c.buf[c.w] = c.extra[0]
		c.w++
		return nil
	}
	if c.r == c.w {
		c.r, c.w = 0, 0
	}
	c.makeRoom()
	n, err := c.nc.Read(c.buf[c.w:])
	c.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

func (c *conn) makeRoom() {
	if c.w < len(c.buf) {
		return
	}
	if c.r > 0 {
		c.w = copy(c.buf, c.buf[c.r:c.w])
		c.r = 0
		return
	}
	nb := make([]byte, 2*len(c.buf))
	copy(nb, c.buf[:c.w])
	c.buf = nb
}

// readHead reads until the buffer holds a whole request head and returns the offset of
// its final CRLFCRLF, or -1 when the head is larger than the fast path parses.
func (c *conn) readHead() (int, error) {
	from := c.r
	for {
		if i := bytes.Index(c.buf[from:c.w], crlfcrlf); i >= 0 {
			return from + i, nil
		}
		if c.w-c.r > maxHead {
			return -1, nil
		}
		from = max(c.r, c.w-3)
		off := from - c.r
		if err := c.fill(); err != nil {
			return 0, err
		}
		from = c.r + off
	}
}

var crlfcrlf = []byte("\r\n\r\n")

// handOff gives the connection, with the unread bytes, to net/http.
func (c *conn) handOff() bool {
	c.nc.SetReadDeadline(time.Time{})
	if c.wdl {
		c.setWriteDeadline(time.Time{})
	}
	pre := append([]byte(nil), c.buf[c.r:c.w]...)
	c.s.forget(c)
	return c.s.handoff.give(&prefixConn{Conn: c.nc, pre: pre})
}

// setWriteDeadline bounds the connection's writes by t. A raw socket keeps t off the
// socket until a write would block, so the usual response, which the socket's buffer
// takes at once, sets and clears no timer.
func (c *conn) setWriteDeadline(t time.Time) error {
	if d, ok := c.nc.(interface{ SetWriteDeadlineOnBlock(time.Time) error }); ok {
		return d.SetWriteDeadlineOnBlock(t)
	}
	return c.nc.SetWriteDeadline(t)
}

// serveOne runs the handler for one request whose head has been consumed; it reports
// whether the connection may serve another request.
func (c *conn) serveOne(h head) bool {
	if c.wdl {
		c.setWriteDeadline(time.Time{})
		c.wdl = false
	}
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	b := &body{c: c, n: h.contentLength}
	req := c.tmpl.WithContext(ctx)
	req.URL = &url.URL{Path: c.s.Target}
	req.Header = h.header
	req.Host = h.host
	req.ContentLength = h.contentLength
	req.Close = h.close
	req.Body = b
	w := &response{c: c, req: req, header: make(http.Header, 4), closeAfter: h.close}
	c.mu.Lock()
	c.cancel = cancel
	c.mu.Unlock()
	if h.contentLength == 0 {
		b.done = true
		c.arm()
	}
	c.s.Handler.ServeHTTP(w, req)
	c.disarm()
	c.mu.Lock()
	c.onGone = nil
	c.mu.Unlock()
	if !b.done && !c.broken && b.err == nil && b.n <= maxDiscard {
		b.noArm = true // the rest of a small unread body is skipped, as net/http does
		io.Copy(io.Discard, b)
	}
	if !b.done || c.broken { // an unread body cannot be skipped safely: close
		w.closeAfter = true
	}
	if c.s.shutting.Load() {
		w.closeAfter = true
	}
	if err := w.finish(); err != nil {
		return false
	}
	return !w.closeAfter
}

// arm starts the timer after which a running call's connection is watched.
func (c *conn) arm() {
	c.mu.Lock()
	c.armed = true
	c.mu.Unlock()
	d := orDefault(c.s.WatchDelay, 250*time.Millisecond)
	if c.timer == nil {
		c.timer = time.AfterFunc(d, c.watch)
	} else {
		c.timer.Reset(d)
	}
}

// watch keeps a read pending until the call ends; a closed connection cancels the call.
func (c *conn) watch() {
	c.mu.Lock()
	if !c.armed || c.watching {
		c.mu.Unlock()
		return
	}
	c.watching = true
	end := make(chan struct{})
	c.watchEnd = end
	cancel := c.cancel
	c.mu.Unlock()
	defer close(end)
	c.nc.SetReadDeadline(time.Time{}) // a held call may outlast the read timeout
	n, err := c.nc.Read(c.extra[:])
	if n == 1 {
		c.hasExtra = true // read by the connection's goroutine after disarm
		return
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return // disarm stopped the read
	}
	c.broken = true
	cancel()
	c.mu.Lock()
	gone := c.onGone
	c.mu.Unlock()
	if gone != nil {
		gone()
	}
}

// disarm stops the watcher and waits for its read to end.
func (c *conn) disarm() {
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Lock()
	c.armed = false
	watching, end := c.watching, c.watchEnd
	c.watching = false
	c.mu.Unlock()
	if watching {
		c.nc.SetReadDeadline(aLongTimeAgo)
		<-end
	}
}

// body is a request body of known length.
type body struct {
	c     *conn
	n     int64
	done  bool
	noArm bool
	err   error
}

// maxDiscard is the most of an unread body skipped to keep the connection.
const maxDiscard = 256 << 10

func (b *body) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.n == 0 {
		if !b.done {
			b.done = true
			if !b.noArm {
				b.c.arm()
			}
		}
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	c := b.c
	var n int
	if c.r < c.w {
		n = copy(p, c.buf[c.r:c.w])
		c.r += n
	} else if c.hasExtra {
		p[0] = c.extra[0]
		c.hasExtra = false
		n = 1
	} else {
		var err error
		n, err = c.nc.Read(p)
		if n == 0 && err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			b.err = err
			return 0, err
		}
	}
	b.n -= int64(n)
	if b.n == 0 && !b.done {
		b.done = true
		if !b.noArm {
			c.arm()
		}
	}
	return n, nil
}

func (b *body) Close() error { return nil }
