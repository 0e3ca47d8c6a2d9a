// Package discover finds the MCP servers of a machine: every server configured in a known
// client (which client, which scope, its command or URL and the names of its environment
// variables), whether each is in the registry (the gateway configuration's servers, or
// wrapped to run through portcullis) or is Shadow MCP, and MCP endpoints listening on
// loopback that no configuration mentions.
package discover

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/clientconfig"
	"github.com/portcullis-mcp/portcullis/internal/config"
	"github.com/portcullis-mcp/portcullis/internal/wrap"
)

// Server is one configured server.
type Server struct {
	Client     string   `json:"client"`
	Scope      string   `json:"scope"`
	File       string   `json:"file"`
	Line       int      `json:"line,omitempty"`
	Name       string   `json:"name"`
	Transport  string   `json:"transport"`
	Command    []string `json:"command,omitempty"`
	URL        string   `json:"url,omitempty"`
	EnvNames   []string `json:"env,omitempty"`
	Disabled   bool     `json:"disabled,omitempty"`
	Registered bool     `json:"registered"`
	Registry   string   `json:"registry_name,omitempty"` // its name in the registry
	Wrapped    bool     `json:"wrapped,omitempty"`       // runs through portcullis

	Entry clientconfig.Entry `json:"-"`
}

// Shadow reports whether the server is Shadow MCP: configured, but not in the registry.
func (s Server) Shadow() bool { return !s.Registered }

// Endpoint is an MCP endpoint listening on loopback.
type Endpoint struct {
	URL        string `json:"url"`
	Transport  string `json:"transport"` // http or sse
	ServerInfo string `json:"server_info,omitempty"`
	Auth       bool   `json:"auth_required,omitempty"`
	Mentioned  bool   `json:"configured"` // some configuration names it
	PID        int    `json:"pid,omitempty"`
	Process    string `json:"process,omitempty"`
}

// Problem is a configuration file that could not be read.
type Problem struct {
	File string `json:"file"`
	Err  string `json:"error"`
}

// Result is what discovery found.
type Result struct {
	Servers   []Server   `json:"servers"`
	Endpoints []Endpoint `json:"endpoints"`
	Problems  []Problem  `json:"problems,omitempty"`
}

// Registry is the list of known servers: the gateway configuration's servers.
type Registry struct {
	Servers []config.Server
	files   map[string][]config.Server // other configurations named by wrapped entries
	bases   []gateway                  // the loaded configurations' gateways
}

// gateway is where a loaded configuration's gateway serves its servers.
type gateway struct {
	file, base string
	servers    []config.Server
}

// LoadRegistry reads the servers of gateway configurations (missing files are skipped).
func LoadRegistry(paths ...string) (*Registry, error) {
	r := &Registry{files: map[string][]config.Server{}}
	for _, p := range paths {
		if p == "" {
			continue
		}
		cfg, err := config.Load(p)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, err
		}
		r.Servers = append(r.Servers, cfg.Servers...)
		abs, _ := filepath.Abs(p)
		r.files[abs] = cfg.Servers
		r.bases = append(r.bases, gateway{file: abs, base: cfg.BaseURL(), servers: cfg.Servers})
		// wrap may have pointed entries at another address of the same gateway (--gateway:
		// a reverse proxy, a name); its state beside the configuration remembers them.
		if st, err := wrap.LoadState(wrap.Options{Config: abs}.StateFile()); err == nil {
			for _, base := range st.Gateways {
				r.bases = append(r.bases, gateway{file: abs, base: base, servers: cfg.Servers})
			}
		}
	}
	return r, nil
}

func normURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return s
	}
	u.Host = strings.ToLower(u.Host)
	u.Path = strings.TrimSuffix(u.Path, "/")
	return u.String()
}

// ViaGateway returns the configuration and the server name of an HTTP entry that points at
// the endpoint of one server of a loaded configuration's gateway (BaseURL/mcp/<name>, as
// `portcullis wrap` writes it).
func (r *Registry) ViaGateway(e clientconfig.Entry) (file, name string, ok bool) {
	if r == nil || e.Transport == clientconfig.Stdio {
		return "", "", false
	}
	for _, g := range r.bases {
		n, found := strings.CutPrefix(normURL(e.URL), normURL(g.base)+"/mcp/")
		if !found {
			continue
		}
		for _, s := range g.servers {
			if s.Name == n {
				return g.file, n, true
			}
		}
	}
	return "", "", false
}

// Wrapped reports whether an entry runs through portcullis: `portcullis run`, or an
// endpoint of a loaded configuration's gateway.
func (r *Registry) Wrapped(e clientconfig.Entry) bool {
	_, _, via := r.ViaGateway(e)
	return isWrapped(e) || via
}

// Lookup returns the registry name of an entry.
func (r *Registry) Lookup(e clientconfig.Entry) (string, bool) {
	if r == nil {
		return "", false
	}
	if _, name, ok := r.ViaGateway(e); ok {
		return name, true
	}
	if isWrapped(e) && len(e.Args) >= 4 && e.Args[1] == "--config" {
		servers, ok := r.files[e.Args[2]]
		if !ok {
			if cfg, err := config.Load(e.Args[2]); err == nil {
				servers = cfg.Servers
				r.files[e.Args[2]] = servers
			}
		}
		for _, s := range servers {
			if s.Name == e.Args[3] {
				return s.Name, true
			}
		}
		return "", false
	}
	for _, s := range r.Servers {
		switch {
		case e.Transport == clientconfig.Stdio && s.Command != "" && s.Command == e.Command && strings.Join(s.Args, "\x00") == strings.Join(e.Args, "\x00"):
			return s.Name, true
		case e.Transport != clientconfig.Stdio && s.URL != "" && normURL(s.URL) == normURL(e.URL):
			return s.Name, true
		}
	}
	return "", false
}

// isWrapped says whether an entry runs a server through `portcullis run --config C NAME`.
func isWrapped(e clientconfig.Entry) bool {
	b := filepath.Base(e.Command)
	a := e.Args
	return (b == "portcullis" || b == "portcullis.exe" || len(a) == 4 && a[1] == "--config") && len(a) > 0 && a[0] == "run"
}

// Options tune discovery.
type Options struct {
	Env      clientconfig.Env
	Projects []string // project directories whose project files are read too
	Files    []string // more client configuration files
	Registry *Registry
	Probe    bool  // probe loopback ports for MCP endpoints
	Ports    []int // ports to probe (default: every listening loopback TCP port)
	// ProbeTimeout bounds each HTTP probe (default 2s).
	ProbeTimeout time.Duration
}

// Run discovers.
func Run(ctx context.Context, opts Options) (*Result, error) {
	res := &Result{Servers: []Server{}, Endpoints: []Endpoint{}}
	seen := map[string]bool{}
	var locs []clientconfig.Location
	locs = append(locs, clientconfig.Locations(opts.Env, "")...)
	for _, p := range opts.Projects {
		for _, l := range clientconfig.Locations(opts.Env, p) {
			if l.Scope == "project" {
				locs = append(locs, l)
			}
		}
	}
	for _, f := range opts.Files {
		c := clientconfig.Detect(f)
		if c == nil {
			res.Problems = append(res.Problems, Problem{File: f, Err: clientconfig.ErrUnknownFormat.Error()})
			continue
		}
		locs = append(locs, clientconfig.Location{Client: c, Path: f})
	}
	for _, l := range locs {
		if seen[l.Path] {
			continue
		}
		seen[l.Path] = true
		if _, err := os.Stat(l.Path); err != nil {
			continue
		}
		f, err := clientconfig.Read(l.Client, l.Path)
		if err != nil {
			res.Problems = append(res.Problems, Problem{File: l.Path, Err: err.Error()})
			continue
		}
		for _, e := range f.Entries {
			s := Server{Client: l.Client.ID, Scope: e.Scope, File: l.Path, Line: e.Line, Name: e.Name, Transport: e.Transport,
				URL: e.URL, EnvNames: e.EnvNames(), Disabled: e.Disabled, Wrapped: opts.Registry.Wrapped(e), Entry: e}
			if e.Transport == clientconfig.Stdio {
				s.Command = append([]string{e.Command}, e.Args...)
			}
			s.Registry, s.Registered = opts.Registry.Lookup(e)
			res.Servers = append(res.Servers, s)
		}
	}
	if opts.Probe {
		eps, err := probe(ctx, opts)
		if err != nil {
			res.Problems = append(res.Problems, Problem{File: "/proc/net/tcp", Err: err.Error()})
		}
		mentioned := map[int]bool{}
		for _, s := range res.Servers {
			if u, err := url.Parse(s.URL); err == nil && loopbackHost(u.Hostname()) {
				mentioned[portOf(u)] = true
			}
		}
		if opts.Registry != nil {
			for _, s := range opts.Registry.Servers {
				if u, err := url.Parse(s.URL); err == nil && loopbackHost(u.Hostname()) {
					mentioned[portOf(u)] = true
				}
			}
		}
		for i := range eps {
			u, _ := url.Parse(eps[i].URL)
			eps[i].Mentioned = mentioned[portOf(u)]
		}
		res.Endpoints = eps
	}
	return res, nil
}

func portOf(u *url.URL) int {
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		if u.Scheme == "https" {
			return 443
		}
		return 80
	}
	return p
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// listener is a listening loopback socket.
type listener struct {
	addr  string // host:port to connect to
	port  int
	inode string
}

// loopbackListeners reads the listening TCP sockets bound to loopback or any address.
func loopbackListeners() ([]listener, error) {
	if runtime.GOOS != "linux" {
		return nil, errors.New("listing listening sockets needs Linux /proc; name ports with --ports")
	}
	var out []listener
	seen := map[int]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Scan() // header
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) < 10 || fs[3] != "0A" { // LISTEN
				continue
			}
			host, port, ok := strings.Cut(fs[1], ":")
			if !ok {
				continue
			}
			p, err := strconv.ParseInt(port, 16, 32)
			if err != nil {
				continue
			}
			ip := procIP(host)
			if ip == nil || !(ip.IsLoopback() || ip.IsUnspecified()) || seen[int(p)] {
				continue
			}
			seen[int(p)] = true
			connect := "127.0.0.1"
			if ip.To4() == nil && ip.IsLoopback() {
				connect = "[::1]"
			}
			out = append(out, listener{addr: fmt.Sprintf("%s:%d", connect, p), port: int(p), inode: fs[9]})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].port < out[j].port })
	return out, nil
}

// procIP decodes an address of /proc/net/tcp (little-endian 32-bit words).
func procIP(h string) net.IP {
	b, err := hex.DecodeString(h)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return nil
	}
	for i := 0; i+4 <= len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	return net.IP(b)
}

// owners maps socket inodes to the process that holds them.
func owners() map[string]struct {
	pid  int
	name string
} {
	out := map[string]struct {
		pid  int
		name string
	}{}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fds, err := os.ReadDir(filepath.Join("/proc", p.Name(), "fd"))
		if err != nil {
			continue
		}
		comm, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "comm"))
		for _, fd := range fds {
			l, err := os.Readlink(filepath.Join("/proc", p.Name(), "fd", fd.Name()))
			if err == nil && strings.HasPrefix(l, "socket:[") {
				out[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = struct {
					pid  int
					name string
				}{pid, strings.TrimSpace(string(comm))}
			}
		}
	}
	return out
}

const initBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"portcullis-discover","version":"1"}}}`

func probe(ctx context.Context, opts Options) ([]Endpoint, error) {
	var ls []listener
	var err error
	if len(opts.Ports) > 0 {
		for _, p := range opts.Ports {
			ls = append(ls, listener{addr: fmt.Sprintf("127.0.0.1:%d", p), port: p})
		}
	} else if ls, err = loopbackListeners(); err != nil {
		return nil, err
	}
	timeout := opts.ProbeTimeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	client := &http.Client{Timeout: timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true, DialContext: (&net.Dialer{Timeout: timeout}).DialContext}}
	var mu sync.Mutex
	var out []Endpoint
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Add(1)
		sem <- struct{}{}
		go func(l listener) {
			defer wg.Done()
			defer func() { <-sem }()
			for _, path := range []string{"/mcp", "/sse", "/"} {
				ep, ok := probeOne(ctx, client, "http://"+l.addr+path)
				if ok {
					mu.Lock()
					out = append(out, ep)
					mu.Unlock()
					return
				}
			}
		}(l)
	}
	wg.Wait()
	if len(out) > 0 && runtime.GOOS == "linux" {
		own := owners()
		for i := range out {
			for _, l := range ls {
				if u, _ := url.Parse(out[i].URL); u != nil && portOf(u) == l.port {
					if o, ok := own[l.inode]; ok {
						out[i].PID, out[i].Process = o.pid, o.name
					}
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].URL < out[j].URL })
	return out, nil
}

// probeOne asks url whether it is an MCP endpoint: initialize over Streamable HTTP, then
// a legacy SSE stream's endpoint event.
func probeOne(ctx context.Context, c *http.Client, u string) (Endpoint, bool) {
	ep := Endpoint{URL: u}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(initBody))
	if err != nil {
		return ep, false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := c.Do(req)
	if err != nil {
		return ep, false
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256<<10))
	resp.Body.Close()
	if sid := resp.Header.Get("Mcp-Session-Id"); sid != "" {
		if dr, err := http.NewRequestWithContext(ctx, http.MethodDelete, u, nil); err == nil {
			dr.Header.Set("Mcp-Session-Id", sid)
			if r, err := c.Do(dr); err == nil {
				r.Body.Close()
			}
		}
	}
	switch {
	case resp.StatusCode/100 == 2 && bytes.Contains(body, []byte(`"protocolVersion"`)):
		ep.Transport = clientconfig.HTTP
		ep.ServerInfo = serverInfo(body)
		return ep, true
	case resp.StatusCode == http.StatusUnauthorized && strings.Contains(resp.Header.Get("WWW-Authenticate"), "resource_metadata"):
		ep.Transport, ep.Auth = clientconfig.HTTP, true
		return ep, true
	}
	// Legacy SSE: GET opens a stream whose first event names the message endpoint.
	gctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	greq, err := http.NewRequestWithContext(gctx, http.MethodGet, u, nil)
	if err != nil {
		return ep, false
	}
	greq.Header.Set("Accept", "text/event-stream")
	gc := *c
	gc.Timeout = 0 // the stream stays open; gctx bounds it
	gresp, err := gc.Do(greq)
	if err != nil {
		return ep, false
	}
	defer gresp.Body.Close()
	if gresp.StatusCode/100 != 2 || !strings.HasPrefix(gresp.Header.Get("Content-Type"), "text/event-stream") {
		return ep, false
	}
	sc := bufio.NewScanner(io.LimitReader(gresp.Body, 16<<10))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "event: endpoint") || strings.HasPrefix(sc.Text(), "event:endpoint") {
			ep.Transport = clientconfig.SSE
			return ep, true
		}
	}
	return ep, false
}

func serverInfo(body []byte) string {
	i := bytes.Index(body, []byte(`{`))
	if i < 0 {
		return ""
	}
	// JSON or the data line of an SSE event.
	for _, line := range bytes.Split(body[i:], []byte("\n")) {
		line = bytes.TrimPrefix(bytes.TrimSpace(line), []byte("data:"))
		var m struct {
			Result struct {
				ServerInfo struct {
					Name    string `json:"name"`
					Version string `json:"version"`
				} `json:"serverInfo"`
			} `json:"result"`
		}
		if json.Unmarshal(bytes.TrimSpace(line), &m) == nil && m.Result.ServerInfo.Name != "" {
			return strings.TrimSpace(m.Result.ServerInfo.Name + " " + m.Result.ServerInfo.Version)
		}
	}
	return ""
}
