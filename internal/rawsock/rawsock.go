//go:build linux

// Package rawsock gives the gateway's hot-path TCP connections a Read and Write that make
// their system calls without the Go scheduler's system call bookkeeping.
//
// A socket from the net package is non-blocking: read(2) and write(2) on it return at
// once, with data or EAGAIN. The net package still enters each one as a possibly blocking
// system call: it releases its P, and wakes the runtime's monitor thread (sysmon) when the
// process had gone idle, which then polls every 20 µs for the next millisecond in case it
// must take the P back. On a proxy that goes idle between short calls that polling is
// most of the runtime's own CPU: measured on the 2-core bench VM, sysmon was 18 % of the
// gateway's CPU at 1 session. Here the calls are raw (syscall.RawSyscall) inside
// syscall.RawConn's Read and Write, which keep the net package's waiting on the network
// poller, deadlines and Close.
package rawsock

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// Conn is a *net.TCPConn with raw Read and Write. Everything else is the TCPConn's.
type Conn struct {
	*net.TCPConn
	rc syscall.RawConn

	rmu    sync.Mutex // one Read at a time uses rbuf, rn, rerr
	rbuf   []byte
	rn     int
	rerr   syscall.Errno
	readFn func(uintptr) bool

	wmu     sync.Mutex
	wbuf    []byte
	wn      int
	werr    syscall.Errno
	writeFn func(uintptr) bool
	// A write deadline set with SetWriteDeadlineOnBlock: wdl is the deadline, wset says
	// whether it is on the socket (it is put there only when a write would block).
	wdl  time.Time
	wset bool
}

// Wrap returns c with raw Read and Write when it is a *net.TCPConn, else c itself.
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	r := &Conn{TCPConn: tc, rc: rc}
	r.readFn, r.writeFn = r.read, r.write
	return r
}

func (c *Conn) read(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&c.rbuf[0])), uintptr(len(c.rbuf)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // wait on the poller, then again
		}
		c.rn, c.rerr = int(n), e
		return true
	}
}

// Read implements net.Conn.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.rbuf, c.rn, c.rerr = p, 0, 0
	err := c.rc.Read(c.readFn)
	c.rbuf = nil
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case c.rerr != 0:
		return 0, c.opError("read", os.NewSyscallError("read", c.rerr))
	case c.rn == 0:
		return 0, io.EOF
	}
	return c.rn, nil
}

func (c *Conn) write(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		b := c.wbuf[c.wn:]
		// send(2) with MSG_NOSIGNAL: a peer that went away is an EPIPE error, not a signal.
		n, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), syscall.MSG_NOSIGNAL, 0, 0)
		switch e {
		case 0:
			c.wn += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			if !c.wdl.IsZero() && !c.wset {
				c.wset = true // the write waits: from here on the deadline bounds it
				c.TCPConn.SetWriteDeadline(c.wdl)
			}
			return false
		default:
			c.werr = e
			return true
		}
	}
	return true
}

// SetWriteDeadlineOnBlock bounds the writes that follow by t, as SetWriteDeadline does,
// but puts the deadline on the socket only when a write would block: a write that the
// socket's buffer takes at once sets no timer. The zero t removes it. Do not mix it with
// SetWriteDeadline.
func (c *Conn) SetWriteDeadlineOnBlock(t time.Time) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wdl = t
	if c.wset {
		c.wset = !t.IsZero()
		return c.TCPConn.SetWriteDeadline(t)
	}
	return nil
}

// Write implements net.Conn: it writes all of p unless an error stops it.
func (c *Conn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf, c.wn, c.werr = p, 0, 0
	err := c.rc.Write(c.writeFn)
	c.wbuf = nil
	switch {
	case err != nil:
		return c.wn, c.opError("write", err)
	case c.werr != 0:
		return c.wn, c.opError("write", os.NewSyscallError("write", c.werr))
	}
	return c.wn, nil
}

// opError reports err as the net package would, as a *net.OpError of op: errors.Is finds
// os.ErrDeadlineExceeded, net.ErrClosed and the errno in it.
func (c *Conn) opError(op string, err error) error {
	if oe, ok := err.(*net.OpError); ok {
		err = oe.Err // RawConn's own "raw-read"/"raw-write" error
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// Listener returns ln with its accepted TCP connections wrapped (for servers, such as
// net/http's TLS server, that take a listener rather than a connection).
func Listener(ln net.Listener) net.Listener { return listener{ln} }

type listener struct{ net.Listener }

func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Wrap(c), nil
}
