// Package h1server serves one hot endpoint (POST /mcp) over plain HTTP/1.1 keep-alive
// connections without net/http's per-request goroutine, and hands every other request to
// a net/http server on the same listener.
//
// Each connection is served by one goroutine that parses the request head itself. A
// request the fast path does not fully understand (another method or path, chunked or
// absent Content-Length, Expect, Upgrade, HTTP/1.0, a malformed or large head) is handed,
// with the bytes already read, to the net/http server, which serves the rest of that
// connection. net/http learns that a client went away from a read it keeps pending during
// every request; here that read starts only when a call has run for WatchDelay, so short
// calls cost no extra goroutine or wake-up, and a long call is still cancelled when its
// client disconnects.
package h1server

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Server serves POST Target with Handler and everything else with Fallback.
type Server struct {
	Handler  http.Handler
	Fallback *http.Server // gets the connections the fast path does not serve
	Target   string       // request target served here, e.g. "/mcp"

	HeaderTimeout time.Duration // request head, from its first byte (default 10 s)
	ReadTimeout   time.Duration // request head and body (default 60 s)
	IdleTimeout   time.Duration // between requests (default 2 min)
	WatchDelay    time.Duration // how long a call runs before its connection is watched (default 250 ms)
	ErrorLog      func(msg string, args ...any)

	shutting atomic.Bool
	mu       sync.Mutex
	conns    map[*conn]struct{}
	handoff  *handoffListener
}

// maxHead is the largest request head the fast path parses; larger ones go to net/http,
// which applies its own limit.
const maxHead = 8 << 10

// Serve accepts connections on ln until it is closed (by Shutdown or Fallback.Shutdown)
// and returns http.ErrServerClosed then.
func (s *Server) Serve(ln net.Listener) error {
	if s.Target == "" || s.Handler == nil || s.Fallback == nil {
		return errors.New("h1server: Handler, Fallback and Target must be set")
	}
	s.mu.Lock()
	s.conns = make(map[*conn]struct{})
	s.handoff = newHandoffListener(ln)
	s.mu.Unlock()
	fallbackErr := make(chan error, 1)
	go func() { fallbackErr <- s.Fallback.Serve(s.handoff) }()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.shutting.Load() || s.handoff.isClosed() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, errTemporary) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			select {
			case ferr := <-fallbackErr:
				return ferr
			default:
			}
			return err
		}
		backoff = 0
		c := s.newConn(nc)
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		go c.serve()
	}
}

var errTemporary = errors.New("temporary")

// Shutdown stops accepting (closing the listener), closes idle connections, and waits
// until every request in flight on a fast-path connection has been answered. Call it
// with Fallback.Shutdown, which does the same for the connections net/http serves.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutting.Store(true)
	s.mu.Lock()
	if s.handoff != nil {
		s.handoff.Close()
	}
	s.mu.Unlock()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		s.mu.Lock()
		n := len(s.conns)
		for c := range s.conns {
			if c.idle.Load() { // wake its read; it sees shutting and closes
				c.nc.SetReadDeadline(aLongTimeAgo)
			}
		}
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Close closes the listener and every fast-path connection at once.
func (s *Server) Close() {
	s.shutting.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.handoff != nil {
		s.handoff.Close()
	}
	for c := range s.conns {
		c.nc.Close()
	}
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *Server) logf(msg string, args ...any) {
	if s.ErrorLog != nil {
		s.ErrorLog(msg, args...)
	}
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

var aLongTimeAgo = time.Unix(1, 0)

// handoffListener gives net/http the connections the fast path hands over.
type handoffListener struct {
	net.Listener
	ch     chan net.Conn
	done   chan struct{}
	once   sync.Once
	closed atomic.Bool
}

func newHandoffListener(ln net.Listener) *handoffListener {
	return &handoffListener{Listener: ln, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close closes the real listener too, so that both servers stop accepting.
func (l *handoffListener) Close() error {
	var err error
	l.once.Do(func() {
		l.closed.Store(true)
		close(l.done)
		err = l.Listener.Close()
	})
	return err
}

func (l *handoffListener) isClosed() bool { return l.closed.Load() }

// give hands c to net/http; it reports false when the listener is closed.
func (l *handoffListener) give(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

// prefixConn replays bytes the fast path read before handing its connection over.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
