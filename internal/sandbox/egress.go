package sandbox

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/detect/ssrf"
)

// ProxyOptions configure a server's egress proxy.
type ProxyOptions struct {
	Server string
	// Hosts the server may reach: "host" (ports 80 and 443), "host:port", or ".example.com"
	// for every subdomain.
	Hosts []string
	// AllowPrefixes are address ranges allowed although not public (an internal API).
	AllowPrefixes []netip.Prefix
	Resolver      *net.Resolver
	DialTimeout   time.Duration
	Logger        *slog.Logger
	Audit         func() Recorder
}

// Proxy is the gateway's egress proxy for one server: an HTTP CONNECT proxy on a unix
// socket that the server's launcher forwards a loopback port to. It connects only to the
// allowed hosts, resolves them itself and refuses non-public addresses (the SSRF rules of
// internal/detect/ssrf), then dials the very address it checked, so that DNS rebinding
// gains nothing. Every connection, allowed or refused, is audited.
type Proxy struct {
	o    ProxyOptions
	dir  string
	ln   net.Listener
	ssrf *ssrf.Checker
}

var (
	proxiesMu sync.Mutex
	proxies   = map[string]*Proxy{}
)

// SharedProxy returns the process's proxy for these options, started on first use, so
// that restarts and reloads of a server reuse one socket.
func SharedProxy(o ProxyOptions) (*Proxy, error) {
	key := fmt.Sprint(o.Server, o.Hosts, o.AllowPrefixes)
	proxiesMu.Lock()
	defer proxiesMu.Unlock()
	if p := proxies[key]; p != nil {
		return p, nil
	}
	p, err := NewProxy(o)
	if err != nil {
		return nil, err
	}
	proxies[key] = p
	return p, nil
}

// NewProxy starts a proxy on a new unix socket.
func NewProxy(o ProxyOptions) (*Proxy, error) {
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	dir, err := os.MkdirTemp("", "portcullis-egress-")
	if err != nil {
		return nil, fmt.Errorf("egress proxy: %w", err)
	}
	ln, err := net.Listen("unix", filepath.Join(dir, "proxy.sock"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("egress proxy: %w", err)
	}
	// The launcher connects as root of its user namespace, which may be another uid.
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Join(dir, "proxy.sock"), 0o777)
	p := &Proxy{o: o, dir: dir, ln: ln, ssrf: ssrf.New(ssrf.Options{AllowPrefixes: o.AllowPrefixes})}
	go p.serve()
	return p, nil
}

// Path is the proxy's unix socket.
func (p *Proxy) Path() string { return p.ln.Addr().String() }

// Close stops the proxy.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	os.RemoveAll(p.dir)
	return err
}

func (p *Proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *Proxy) handle(c net.Conn) {
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReaderSize(io.LimitReader(c, 64<<10), 4096)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	c.SetReadDeadline(time.Time{})
	target := req.Host
	if req.Method != http.MethodConnect {
		p.refuse(c, http.StatusMethodNotAllowed, target, "only CONNECT is served (HTTPS through HTTPS_PROXY)")
		return
	}
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		p.refuse(c, http.StatusBadRequest, target, "the target is not host:port")
		return
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if !p.allowed(host, port) {
		p.refuse(c, http.StatusForbidden, target, "the host is not in the server's sandbox.egress list")
		return
	}
	addr, why := p.vet(host)
	if why != "" {
		p.refuse(c, http.StatusForbidden, target, why)
		return
	}
	up, err := net.DialTimeout("tcp", net.JoinHostPort(addr.String(), port), p.o.DialTimeout)
	if err != nil {
		p.refuse(c, http.StatusBadGateway, target, "connecting failed: "+err.Error())
		return
	}
	defer up.Close()
	p.record(audit.CodeEgressAllowed, audit.Allowed, target, "connected to "+addr.String())
	io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	done := make(chan struct{}, 2)
	go func() {
		if n := br.Buffered(); n > 0 {
			b, _ := br.Peek(n)
			up.Write(b)
		}
		io.Copy(up, c)
		if tc, ok := up.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		done <- struct{}{}
	}()
	go func() {
		io.Copy(c, up)
		if uc, ok := c.(*net.UnixConn); ok {
			uc.CloseWrite()
		}
		done <- struct{}{}
	}()
	<-done
	<-done
}

// allowed reports whether host:port is on the server's list.
func (p *Proxy) allowed(host, port string) bool {
	for _, h := range p.o.Hosts {
		h = strings.ToLower(h)
		hp, pp := h, ""
		if hh, ppp, err := net.SplitHostPort(h); err == nil {
			hp, pp = hh, ppp
		}
		if pp == "" && port != "443" && port != "80" || pp != "" && pp != port {
			continue
		}
		if hp == host || strings.HasPrefix(hp, ".") && strings.HasSuffix(host, hp) || strings.HasPrefix(hp, "*.") && strings.HasSuffix(host, hp[1:]) {
			return true
		}
	}
	return false
}

// vet resolves host and returns the address to dial, or why none may be.
func (p *Proxy) vet(host string) (netip.Addr, string) {
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		as, err := p.o.Resolver.LookupNetIP(ctx, "ip", host)
		if err != nil || len(as) == 0 {
			return netip.Addr{}, "the host name did not resolve"
		}
		addrs = as
	}
	// Every address must be public: a name that resolves to one private address among
	// public ones is refused whole.
	for _, a := range addrs {
		a = a.Unmap()
		if fs := p.ssrf.Check(context.Background(), a.String(), "", true); len(fs) > 0 {
			if host == a.String() {
				return netip.Addr{}, fs[0].Message
			}
			return netip.Addr{}, fmt.Sprintf("%s resolves to %s: %s", host, a, fs[0].Message)
		}
	}
	return addrs[0].Unmap(), ""
}

func (p *Proxy) refuse(c net.Conn, status int, target, why string) {
	p.o.Logger.Warn("egress refused", "upstream", p.o.Server, "target", target, "reason", why)
	p.record(audit.CodeEgressDenied, audit.Denied, target, why)
	fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		status, http.StatusText(status), len(why)+1, why+"\n")
}

func (p *Proxy) record(code, decision, target, msg string) {
	if p.o.Audit == nil {
		return
	}
	r := p.o.Audit()
	if r == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Record(ctx, &audit.Event{Code: code, Kind: audit.KindSystem, Server: p.o.Server, Method: "egress/connect",
		Tool: target, Decision: decision, Message: msg}); err != nil {
		p.o.Logger.Error("egress event not recorded", "upstream", p.o.Server, "err", err)
	}
}
