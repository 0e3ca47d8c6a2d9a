//go:build linux

package rawsock

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// pair returns a wrapped client connection and the server's end of it.
func pair(t *testing.T) (*Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	w, ok := Wrap(c).(*Conn)
	if !ok {
		t.Fatal("a *net.TCPConn was not wrapped")
	}
	t.Cleanup(func() { w.Close(); s.Close() })
	return w, s
}

func TestConn(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, c *Conn, peer net.Conn)
	}{
		{"round trip", func(t *testing.T, c *Conn, peer net.Conn) {
			go func() {
				b := make([]byte, 5)
				io.ReadFull(peer, b)
				peer.Write(bytes.ToUpper(b))
			}()
			if n, err := c.Write([]byte("hello")); n != 5 || err != nil {
				t.Fatalf("Write = %d, %v", n, err)
			}
			b := make([]byte, 5)
			if _, err := io.ReadFull(c, b); err != nil || string(b) != "HELLO" {
				t.Fatalf("read %q, %v", b, err)
			}
		}},
		{"large write waits for the reader", func(t *testing.T, c *Conn, peer net.Conn) {
			data := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB: more than the socket buffers
			got := make(chan []byte, 1)
			go func() {
				b, _ := io.ReadAll(io.LimitReader(peer, int64(len(data))))
				got <- b
			}()
			if n, err := c.Write(data); n != len(data) || err != nil {
				t.Fatalf("Write = %d, %v", n, err)
			}
			if b := <-got; !bytes.Equal(b, data) {
				t.Fatalf("peer got %d bytes, not the %d written", len(b), len(data))
			}
		}},
		{"end of stream", func(t *testing.T, c *Conn, peer net.Conn) {
			peer.Write([]byte("x"))
			peer.Close()
			b, err := io.ReadAll(c)
			if err != nil || string(b) != "x" {
				t.Fatalf("ReadAll = %q, %v", b, err)
			}
			if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Fatalf("Read after the end = %d, %v; want io.EOF", n, err)
			}
		}},
		{"read deadline", func(t *testing.T, c *Conn, peer net.Conn) {
			c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
			_, err := c.Read(make([]byte, 1))
			var ne net.Error
			if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("Read past the deadline = %v; want a timeout", err)
			}
			c.SetReadDeadline(time.Time{})
			peer.Write([]byte("y"))
			if b := make([]byte, 1); func() error { _, err := c.Read(b); return err }() != nil || b[0] != 'y' {
				t.Fatal("Read after clearing the deadline failed")
			}
		}},
		{"write deadline on block", func(t *testing.T, c *Conn, peer net.Conn) {
			// A write the socket takes at once is not bound by the deadline, even a past one.
			c.SetWriteDeadlineOnBlock(time.Now().Add(-time.Second))
			if _, err := c.Write([]byte("a")); err != nil {
				t.Fatalf("small Write with a past deadline = %v; want it written", err)
			}
			// One that blocks (the peer does not read) ends at the deadline.
			c.SetWriteDeadlineOnBlock(time.Now().Add(20 * time.Millisecond))
			big := make([]byte, 16<<20)
			n, err := c.Write(big)
			if !errors.Is(err, os.ErrDeadlineExceeded) || n >= len(big) {
				t.Fatalf("blocked Write = %d, %v; want a timeout before %d bytes", n, err, len(big))
			}
			// Cleared, a blocked write waits for the reader again.
			c.SetWriteDeadlineOnBlock(time.Time{})
			total := int64(1 + n + len(big))
			got := make(chan int64, 1)
			go func() {
				m, _ := io.Copy(io.Discard, io.LimitReader(peer, total))
				got <- m
			}()
			if m, err := c.Write(big); m != len(big) || err != nil {
				t.Fatalf("Write after clearing the deadline = %d, %v", m, err)
			}
			if m := <-got; m != total {
				t.Fatalf("peer read %d bytes; want %d", m, total)
			}
		}},
		{"close ends a blocked read", func(t *testing.T, c *Conn, peer net.Conn) {
			done := make(chan error, 1)
			go func() {
				_, err := c.Read(make([]byte, 1))
				done <- err
			}()
			time.Sleep(10 * time.Millisecond)
			c.Close()
			if err := <-done; !errors.Is(err, net.ErrClosed) {
				t.Fatalf("blocked Read after Close = %v; want net.ErrClosed", err)
			}
		}},
		{"write to a reset peer", func(t *testing.T, c *Conn, peer net.Conn) {
			peer.(*net.TCPConn).SetLinger(0)
			peer.Close() // RST
			time.Sleep(10 * time.Millisecond)
			var err error
			for i := 0; i < 100 && err == nil; i++ {
				_, err = c.Write([]byte("z"))
			}
			if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
				t.Fatalf("Write to a reset peer = %v; want ECONNRESET or EPIPE", err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, peer := pair(t)
			tc.run(t, c, peer)
		})
	}
}

func TestWrapLeavesOtherConns(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if Wrap(a) != a {
		t.Fatal("a net.Pipe conn was wrapped")
	}
}

func TestListenerWraps(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wl := Listener(ln)
	defer wl.Close()
	go func() {
		if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			c.Write([]byte("ping"))
			c.Close()
		}
	}()
	c, err := wl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(*Conn); !ok {
		t.Fatalf("Accept returned %T, want *rawsock.Conn", c)
	}
	if b, err := io.ReadAll(c); err != nil || string(b) != "ping" {
		t.Fatalf("read %q, %v", b, err)
	}
}
