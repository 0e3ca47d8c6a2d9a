//go:build !linux

// Package rawsock gives the gateway's hot-path TCP connections a Read and Write that make
// their system calls without the Go scheduler's system call bookkeeping (Linux only).
package rawsock

import "net"

// Wrap returns c: raw system calls are used on Linux only.
func Wrap(c net.Conn) net.Conn { return c }

// Listener returns ln.
func Listener(ln net.Listener) net.Listener { return ln }
