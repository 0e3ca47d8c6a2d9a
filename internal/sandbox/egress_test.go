package sandbox

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/portcullis-mcp/portcullis/internal/audit"
)

type recorder struct {
	mu     sync.Mutex
	events []*audit.Event
}

func (r *recorder) Record(_ context.Context, e *audit.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	return nil
}

func (r *recorder) codes() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		out = append(out, e.Code+" "+e.Tool+" "+e.Message)
	}
	return strings.Join(out, "\n")
}

func TestProxyAllowed(t *testing.T) {
	p := &Proxy{o: ProxyOptions{Hosts: []string{"api.example.com", "svc.example.com:8443", ".example.org", "*.example.net"}}}
	for _, c := range []struct {
		host, port string
		ok         bool
	}{
		{"api.example.com", "443", true},
		{"api.example.com", "80", true},
		{"api.example.com", "22", false},
		{"svc.example.com", "8443", true},
		{"svc.example.com", "443", false},
		{"a.b.example.org", "443", true},
		{"example.org", "443", false},
		{"x.example.net", "443", true},
		{"evil-example.org", "443", false},
		{"api.example.com.evil", "443", false},
	} {
		if got := p.allowed(c.host, c.port); got != c.ok {
			t.Errorf("allowed(%s, %s) = %v, want %v", c.host, c.port, got, c.ok)
		}
	}
}

// connect asks the proxy to CONNECT to target and returns the status code.
func connect(t *testing.T, p *Proxy, target string) (int, io.ReadCloser) {
	t.Helper()
	c, err := net.Dial("unix", p.Path())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, struct {
		io.Reader
		io.Closer
	}{br, c}
}

func TestProxyConnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "pong")
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	rec := &recorder{}
	p, err := NewProxy(ProxyOptions{Server: "s", Hosts: []string{"127.0.0.1:" + port, "localhost:" + port, "10.1.2.3:" + port},
		AllowPrefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, Audit: func() Recorder { return rec }})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	code, c := connect(t, p, "127.0.0.1:"+port)
	if code != 200 {
		t.Fatalf("allowed target: status %d", code)
	}
	b, _ := io.ReadAll(c)
	c.Close()
	if string(b) != "pong" {
		t.Errorf("relayed %q", b)
	}
	// A second proxy without the allowance: loopback, even by name, is refused.
	strict, err := NewProxy(ProxyOptions{Server: "s", Hosts: []string{"localhost:" + port, "127.0.0.1:" + port, "169.254.169.254:80"}, Audit: func() Recorder { return rec }})
	if err != nil {
		t.Fatal(err)
	}
	defer strict.Close()
	for _, target := range []string{"localhost:" + port, "127.0.0.1:" + port, "169.254.169.254:80"} {
		if code, c := connect(t, strict, target); code != http.StatusForbidden {
			t.Errorf("%s through the strict proxy: status %d, want 403", target, code)
		} else {
			c.Close()
		}
	}
	if code, c := connect(t, p, "example.com:443"); code != http.StatusForbidden {
		t.Errorf("unlisted host: status %d", code)
	} else {
		c.Close()
	}
	got := rec.codes()
	for _, want := range []string{audit.CodeEgressAllowed + " 127.0.0.1:" + port, audit.CodeEgressDenied + " localhost:" + port,
		"metadata", audit.CodeEgressDenied + " example.com:443 the host is not in"} {
		if !strings.Contains(got, want) {
			t.Errorf("audit events lack %q:\n%s", want, got)
		}
	}
}

func TestInstallRoots(t *testing.T) {
	env := []string{"HOME=/home/u"}
	got := strings.Join(installRoots("/opt/node/bin/node", []string{"/home/u/proj/node_modules/pkg/dist/index.js", "/home/u"}, env), " ")
	// The node_modules tree of the script (which does not exist here, so only when it
	// is a file) and npm's cache; never the home directory.
	if !strings.Contains(got, "/opt/node/bin") || !strings.Contains(got, "/home/u/.npm") {
		t.Errorf("roots %q", got)
	}
	for _, r := range installRoots("/home/u/server", nil, env) {
		if r == "/home/u" || r == "/home" || r == "/" {
			t.Errorf("a binary in the home directory granted %s", r)
		}
	}
}

func TestSeccompFilterAssembles(t *testing.T) {
	f := filter()
	if _, err := f.Policy.Assemble(); err != nil {
		t.Fatal(err)
	}
}
