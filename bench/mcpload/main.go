// Command mcpload is a load generator for MCP servers speaking the Streamable
// HTTP transport. It opens N concurrent MCP sessions (one goroutine and one
// connection each), calls one tool in a closed loop on each for a fixed
// duration or number of calls, and reports throughput, latency percentiles and
// its own CPU cost per call, so that a direct connection to a server and a
// connection through a gateway can be compared.
//
// Usage:
//
//	mcpload -url http://127.0.0.1:3903/mcp -sessions 16 -duration 10s
//	mcpload -url http://127.0.0.1:8931/mcp -header 'Authorization: Bearer x' -json
//	mcpload -url http://127.0.0.1:3903/mcp -list   # print the server's tool names
//
// Only the standard library is used.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	defaultProtocol = "2025-11-25"
	maxBody         = 64 << 20 // largest response body read
	writeBufferSize = 64 << 10 // see bodyReader
)

type headerFlag []string

func (h *headerFlag) String() string { return strings.Join(*h, ", ") }
func (h *headerFlag) Set(v string) error {
	k, _, ok := strings.Cut(v, ":")
	if !ok || strings.TrimSpace(k) == "" {
		return fmt.Errorf("want Name: value, got %q", v)
	}
	*h = append(*h, v)
	return nil
}

type config struct {
	url      *url.URL
	sessions int
	duration time.Duration // 0: until calls is reached
	calls    int64         // 0: until duration is over
	warmup   time.Duration
	tool     string
	args     json.RawMessage
	headers  http.Header // extra headers sent on every request
	protocol string
	timeout  time.Duration
}

func main() {
	var (
		rawURL   = flag.String("url", "http://127.0.0.1:3903/mcp", "MCP endpoint (Streamable HTTP)")
		sessions = flag.Int("sessions", 1, "concurrent MCP sessions, each with its own goroutine and connection")
		duration = flag.Duration("duration", 0, "measured duration after warmup (default 10s when -calls is not set)")
		calls    = flag.Int64("calls", 0, "total measured tools/call requests across all sessions (0: no limit)")
		warmup   = flag.Duration("warmup", time.Second, "calls made during this time before measuring are not counted")
		tool     = flag.String("tool", "echo", "tool to call")
		args     = flag.String("args", `{"message":"hello"}`, "tool arguments, a JSON object")
		protocol = flag.String("protocol", defaultProtocol, "MCP protocol version to request")
		timeout  = flag.Duration("timeout", 10*time.Second, "time limit of one request, response body included")
		asJSON   = flag.Bool("json", false, "print the result as one JSON object")
		procs    = flag.Int("procs", 1, "GOMAXPROCS for mcpload (0: Go's default); when not given, a GOMAXPROCS environment variable wins")
		cpuprof  = flag.String("cpuprofile", "", "write mcpload's own CPU profile of the run to this `file`")
		list     = flag.Bool("list", false, "only initialize one session, print the names of the server's tools (one per line) and exit")
		headers  headerFlag
	)
	flag.Var(&headers, "header", "extra request header `Name: value` (repeatable), e.g. an Authorization header")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: mcpload -url URL [-sessions N] [-duration D | -calls N] [flags]\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		fatalf("unexpected arguments: %q", flag.Args())
	}

	u, err := url.Parse(*rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fatalf("-url: want an http(s) URL, got %q", *rawURL)
	}
	if *sessions < 1 {
		fatalf("-sessions must be at least 1")
	}
	if *calls < 0 || *duration < 0 || *warmup < 0 {
		fatalf("-calls, -duration and -warmup must not be negative")
	}
	if *timeout <= 0 {
		fatalf("-timeout must be positive")
	}
	trimmed := bytes.TrimSpace([]byte(*args))
	if !json.Valid(trimmed) || len(trimmed) == 0 || trimmed[0] != '{' {
		fatalf("-args must be a JSON object, got %s", *args)
	}
	cfg := config{
		url:      u,
		sessions: *sessions,
		duration: *duration,
		calls:    *calls,
		warmup:   *warmup,
		tool:     *tool,
		args:     json.RawMessage(trimmed),
		headers:  http.Header{},
		protocol: *protocol,
		timeout:  *timeout,
	}
	if cfg.duration == 0 && cfg.calls == 0 {
		cfg.duration = 10 * time.Second
	}
	seen := map[string]bool{}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		k = http.CanonicalHeaderKey(strings.TrimSpace(k))
		if !seen[k] { // a user header replaces a default one; repeating it adds values
			seen[k] = true
			cfg.headers.Del(k)
		}
		cfg.headers.Add(k, strings.TrimSpace(v))
	}

	procsSet := false
	flag.Visit(func(f *flag.Flag) { procsSet = procsSet || f.Name == "procs" })
	if *procs > 0 && (procsSet || os.Getenv("GOMAXPROCS") == "") {
		runtime.GOMAXPROCS(*procs)
	}

	client := newClient(cfg)
	if *list {
		if err := listTools(client, cfg); err != nil {
			fatalf("%v", err)
		}
		return
	}

	// The tool's heap is small; collecting less often keeps its CPU per call
	// down. GOGC in the environment still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		if err != nil {
			fatalf("%v", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fatalf("%v", err)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	rep, err := run(client, cfg)
	if err != nil {
		fatalf("%v", err)
	}
	if p := runtime.GOMAXPROCS(0); rep.CPUUtil > 0.9*float64(p) {
		fmt.Fprintf(os.Stderr, "mcpload: warning: mcpload used %.2f CPUs with GOMAXPROCS=%d: it may be the bottleneck\n", rep.CPUUtil, p)
	}
	if *asJSON {
		b, _ := json.Marshal(rep)
		fmt.Println(string(b))
	} else {
		rep.print(os.Stdout)
	}
}

func fatalf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "mcpload: "+format+"\n", a...)
	os.Exit(1)
}

// newClient returns one client shared by all sessions, with enough idle
// connections kept that every session keeps its own connection alive.
func newClient(cfg config) *http.Client {
	n := cfg.sessions + 4
	tr := &http.Transport{
		Proxy:                 nil, // never go through an HTTP proxy from the environment
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          n,
		MaxIdleConnsPerHost:   n,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: cfg.timeout,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		WriteBufferSize:       writeBufferSize,
		ReadBufferSize:        32 << 10,
	}
	// No Client.Timeout: it would clone every request and start a timer for it.
	// The transport's ResponseHeaderTimeout bounds the hot path instead.
	return &http.Client{Transport: tr}
}

// session is one MCP session. Its hot path (call) reuses one request, its
// body buffer and the response buffer, so that a call allocates little beyond
// what net/http itself needs.
type session struct {
	cfg    config
	client *http.Client
	sid    string // Mcp-Session-Id, "" if the server did not assign one
	proto  string // negotiated protocol version

	nextID int64
	prefix []byte // tools/call body up to the id
	body   []byte
	br     bytes.Reader
	rbody  io.ReadCloser // io.NopCloser(&br), made once
	req    http.Request
	buf    []byte // response body
	sse    []byte // scratch for multi-line SSE data
	resp   callResponse

	// The watchdog (see run) cancels ctx when a call has been in flight longer
	// than the timeout; the session then makes a new one.
	inflight atomic.Int64 // start of the call in flight, UnixNano; 0 if none
	timedOut atomic.Bool
	mu       sync.Mutex // guards cancel against the watchdog
	ctx      context.Context
	cancel   context.CancelFunc

	lat      []int64 // latencies of measured successful calls, ns
	calls    int64   // measured calls, including errors
	errs     int64   // measured calls that failed
	total    int64   // all tools/call requests, including warmup
	firstErr string  // first error of a measured call
	warmErrs int64   // failed warmup calls
	warmErr  string  // first of them
}

// The request body is reused across a session's sequential calls: one
// bytes.Reader over one buffer. That is safe because the transport copies a
// body smaller than its write buffer into that buffer, and closes it, before it
// flushes the request: the server cannot answer (and so the call cannot return)
// before the transport is done with the body. Larger bodies are copied per
// call. The reader must stay an io.NopCloser around a *bytes.Reader: net/http
// recognizes that as in-memory and sends headers and body in one write instead
// of flushing the headers first.

func newSession(client *http.Client, cfg config) *session {
	s := &session{cfg: cfg, client: client, proto: cfg.protocol, nextID: 1}
	name, _ := json.Marshal(cfg.tool)
	s.prefix = fmt.Appendf(nil, `{"jsonrpc":"2.0","method":"tools/call","params":{"name":%s,"arguments":%s},"id":`, name, cfg.args)
	s.buf = make([]byte, 0, 16<<10)
	s.rbody = io.NopCloser(&s.br)
	return s
}

func (s *session) baseHeader() http.Header {
	h := http.Header{
		"Accept":       {"application/json, text/event-stream"},
		"Content-Type": {"application/json"},
		"User-Agent":   {"mcpload/1"},
	}
	if s.sid != "" {
		h.Set("Mcp-Session-Id", s.sid)
		h["MCP-Protocol-Version"] = []string{s.proto}
	}
	for k, v := range s.cfg.headers {
		h[k] = v
	}
	return h
}

// post sends one setup request (not on the hot path) and returns the response
// with its body read into s.buf.
func (s *session) post(method string, body []byte) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.cfg.url.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body == nil {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	req.Header = s.baseHeader()
	if method == http.MethodDelete {
		req.Header.Del("Content-Type")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	s.buf, err = readBody(resp.Body, s.buf)
	return resp, err
}

// rpc sends a JSON-RPC request during setup and decodes the response into dst.
func (s *session) rpc(method string, params any, dst envelope) error {
	id := s.nextID
	s.nextID++
	body, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params})
	if err != nil {
		return err
	}
	resp, err := s.post(http.MethodPost, body)
	if err != nil {
		return fmt.Errorf("%s: %v", method, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %s: %s", method, resp.Status, snippet(s.buf))
	}
	if s.sid == "" {
		s.sid = resp.Header.Get("Mcp-Session-Id")
	}
	if err := findResponse(resp.Header.Get("Content-Type"), s.buf, id, &s.sse, dst); err != nil {
		return fmt.Errorf("%s: %v: %s", method, err, snippet(s.buf))
	}
	if e := dst.header().Error; e != nil {
		return fmt.Errorf("%s: JSON-RPC error %d: %s", method, e.Code, e.Message)
	}
	return nil
}

// initialize performs the MCP handshake: initialize, then
// notifications/initialized.
func (s *session) initialize() error {
	var ir initResponse
	err := s.rpc("initialize", map[string]any{
		"protocolVersion": s.cfg.protocol,
		"capabilities":    map[string]any{},
		"clientInfo":      map[string]any{"name": "mcpload", "version": "1.0.0"},
	}, &ir)
	if err != nil {
		return err
	}
	if ir.Result == nil {
		return errors.New("initialize: response has no result")
	}
	if v := ir.Result.ProtocolVersion; v != "" {
		s.proto = v
	}
	resp, err := s.post(http.MethodPost, []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`))
	if err != nil {
		return fmt.Errorf("notifications/initialized: %v", err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("notifications/initialized: HTTP %s: %s", resp.Status, snippet(s.buf))
	}

	// The hot-path request: built once, its Body reset per call.
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.req = http.Request{
		Method:     http.MethodPost,
		URL:        s.cfg.url,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     s.baseHeader(),
		Host:       s.cfg.url.Host,
		GetBody: func() (io.ReadCloser, error) { // lets the transport retry on a stale keep-alive connection
			s.br.Reset(s.body)
			return s.rbody, nil
		},
	}
	s.req = *s.req.WithContext(s.ctx)
	return nil
}

// expire cancels the call in flight if it started before deadline (watchdog).
func (s *session) expire(deadline int64) {
	if t := s.inflight.Load(); t != 0 && t < deadline {
		s.mu.Lock()
		s.timedOut.Store(true)
		s.cancel()
		s.mu.Unlock()
	}
}

// renew replaces a context that the watchdog canceled.
func (s *session) renew() {
	s.mu.Lock()
	s.cancel()
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.mu.Unlock()
	s.req = *s.req.WithContext(s.ctx)
	s.timedOut.Store(false)
}

// close ends the session with DELETE. Servers may answer 405 when they do not
// let clients end sessions; that is not an error.
func (s *session) close() error {
	if s.sid == "" {
		return nil
	}
	resp, err := s.post(http.MethodDelete, nil)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusMethodNotAllowed {
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	return nil
}

// call makes one tools/call and returns its latency (request sent to response
// body read) and "" or the error's text.
func (s *session) call() (time.Duration, string) {
	id := s.nextID
	s.nextID++
	s.body = append(strconv.AppendInt(append(s.body[:0], s.prefix...), id, 10), '}')
	body := s.body
	if len(body) > writeBufferSize/2 {
		body = bytes.Clone(body)
	}
	s.br.Reset(body)
	s.req.Body = s.rbody
	s.req.ContentLength = int64(len(body))

	start := time.Now()
	s.inflight.Store(start.UnixNano())
	resp, err := s.client.Do(&s.req)
	if err == nil {
		s.buf, err = readBody(resp.Body, s.buf)
		resp.Body.Close()
		if err != nil {
			err = fmt.Errorf("reading response: %w", err)
		}
	}
	s.inflight.Store(0)
	lat := time.Since(start)
	if err != nil {
		if s.ctx.Err() != nil {
			timedOut := s.timedOut.Load()
			s.renew()
			if timedOut {
				return lat, fmt.Sprintf("no complete response within %v (-timeout)", s.cfg.timeout)
			}
		}
		return lat, err.Error()
	}
	if resp.StatusCode != http.StatusOK {
		return lat, "HTTP " + resp.Status + ": " + snippet(s.buf)
	}
	ct := resp.Header.Get("Content-Type")
	if err := findResponse(ct, s.buf, id, &s.sse, &s.resp); err != nil {
		return lat, err.Error() + ": " + snippet(s.buf)
	}
	return lat, callOutcome(&s.resp, ct, s.buf, id)
}

// readBody reads r to its end into buf[:0], growing it as needed up to maxBody.
func readBody(r io.Reader, buf []byte) ([]byte, error) {
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			if cap(buf) >= maxBody {
				return buf, fmt.Errorf("response body larger than %d bytes", maxBody)
			}
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

func snippet(b []byte) string {
	const max = 300
	s := strings.TrimSpace(string(b[:min(len(b), max)]))
	if len(b) > max {
		s += "…"
	}
	return s
}

// loadState is shared by all sessions during the run.
type loadState struct {
	measuring atomic.Bool  // warmup is over
	stop      atomic.Bool  // duration is over
	issued    atomic.Int64 // measured calls started, for -calls
	limit     int64
}

// loop calls the tool until the run stops.
func (s *session) loop(st *loadState) {
	for !st.stop.Load() {
		measured := st.measuring.Load()
		if measured && st.limit > 0 && st.issued.Add(1) > st.limit {
			return
		}
		lat, errText := s.call()
		s.total++
		if !measured {
			if errText != "" {
				if s.warmErrs++; s.warmErr == "" {
					s.warmErr = errText
				}
			}
			continue
		}
		s.calls++
		if errText != "" {
			s.errs++
			if s.firstErr == "" {
				s.firstErr = errText
			}
			if lat < time.Millisecond { // e.g. connection refused: do not spin
				time.Sleep(time.Millisecond)
			}
			continue
		}
		s.lat = append(s.lat, int64(lat))
	}
}

type report struct {
	URL           string  `json:"url"`
	Tool          string  `json:"tool"`
	Sessions      int     `json:"sessions"`
	WarmupS       float64 `json:"warmup_s"`
	DurationS     float64 `json:"duration_s"` // measured wall time
	Calls         int64   `json:"calls"`      // measured calls, including errors
	Errors        int64   `json:"errors"`
	TotalCalls    int64   `json:"total_calls"` // tools/call requests including warmup
	CallsPerSec   float64 `json:"calls_per_sec"`
	P50us         float64 `json:"p50_us"`
	P90us         float64 `json:"p90_us"`
	P99us         float64 `json:"p99_us"`
	MaxUs         float64 `json:"max_us"`
	MeanUs        float64 `json:"mean_us"`
	CPUusPerCall  float64 `json:"cpu_us_per_call"` // this tool's user+sys CPU per measured call
	AllocsPerCall float64 `json:"allocs_per_call"` // this tool's heap allocations per measured call
	CPUUtil       float64 `json:"cpu_util"`        // CPUs this tool kept busy while measuring
	WarmupErrors  int64   `json:"warmup_errors"`
	FirstError    string  `json:"first_error,omitempty"`
}

func run(client *http.Client, cfg config) (*report, error) {
	sessions := make([]*session, cfg.sessions)
	for i := range sessions {
		sessions[i] = newSession(client, cfg)
		if cfg.calls > 0 {
			sessions[i].lat = make([]int64, 0, cfg.calls/int64(cfg.sessions)+16)
		} else {
			sessions[i].lat = make([]int64, 0, 16<<10)
		}
	}
	closeAll := func() []error {
		var mu sync.Mutex
		var errs []error
		var wg sync.WaitGroup
		for _, s := range sessions {
			wg.Go(func() {
				if err := s.close(); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return errs
	}

	// Set up every session first, so that the load starts all at once.
	initErrs := make([]error, len(sessions))
	var wg sync.WaitGroup
	for i, s := range sessions {
		wg.Go(func() { initErrs[i] = s.initialize() })
	}
	wg.Wait()
	if err := firstError(initErrs); err != nil {
		closeAll()
		return nil, fmt.Errorf("session setup failed: %w", err)
	}

	st := &loadState{limit: cfg.calls}
	var ms0, ms1 runtime.MemStats
	var cpu0 time.Duration
	var cpuOK bool
	var t0 time.Time
	startMeasuring := func() {
		runtime.ReadMemStats(&ms0)
		cpu0, cpuOK = processCPU()
		t0 = time.Now()
		st.measuring.Store(true)
	}
	if cfg.warmup == 0 {
		startMeasuring()
	}
	for _, s := range sessions {
		wg.Go(func() { s.loop(st) })
	}
	watchdogDone := make(chan struct{})
	go func() {
		t := time.NewTicker(min(cfg.timeout/4, 250*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-watchdogDone:
				return
			case now := <-t.C:
				for _, s := range sessions {
					s.expire(now.Add(-cfg.timeout).UnixNano())
				}
			}
		}
	}()
	if cfg.warmup > 0 {
		time.Sleep(cfg.warmup)
		startMeasuring()
	}
	var timer *time.Timer
	if cfg.duration > 0 {
		timer = time.AfterFunc(cfg.duration, func() { st.stop.Store(true) })
	}
	wg.Wait()
	close(watchdogDone)
	elapsed := time.Since(t0)
	cpu1, _ := processCPU()
	runtime.ReadMemStats(&ms1)
	if timer != nil {
		timer.Stop()
	}

	closeErrs := closeAll()
	if len(closeErrs) > 0 {
		fmt.Fprintf(os.Stderr, "mcpload: %d of %d sessions not closed cleanly, first: %v\n", len(closeErrs), len(sessions), closeErrs[0])
	}

	rep := &report{
		URL:       cfg.url.String(),
		Tool:      cfg.tool,
		Sessions:  cfg.sessions,
		WarmupS:   cfg.warmup.Seconds(),
		DurationS: round(elapsed.Seconds(), 3),
	}
	lats := make([][]int64, len(sessions))
	for i, s := range sessions {
		lats[i] = s.lat
		rep.Calls += s.calls
		rep.Errors += s.errs
		rep.TotalCalls += s.total
		rep.WarmupErrors += s.warmErrs
		if rep.FirstError == "" && s.firstErr != "" {
			rep.FirstError = s.firstErr
		}
	}
	if rep.FirstError == "" {
		for _, s := range sessions {
			if s.warmErr != "" {
				rep.FirstError = "(during warmup) " + s.warmErr
				break
			}
		}
	}
	sum := summarize(lats)
	rep.P50us, rep.P90us, rep.P99us, rep.MaxUs, rep.MeanUs = micros(sum.P50), micros(sum.P90), micros(sum.P99), micros(sum.Max), micros(sum.Avg)
	if elapsed > 0 {
		rep.CallsPerSec = round(float64(rep.Calls-rep.Errors)/elapsed.Seconds(), 1)
	}
	if cpuOK && elapsed > 0 {
		rep.CPUUtil = round((cpu1-cpu0).Seconds()/elapsed.Seconds(), 2)
	}
	if rep.Calls > 0 {
		if cpuOK {
			rep.CPUusPerCall = round(float64((cpu1-cpu0).Microseconds())/float64(rep.Calls), 1)
		}
		rep.AllocsPerCall = round(float64(ms1.Mallocs-ms0.Mallocs)/float64(rep.Calls), 1)
	}
	return rep, nil
}

func firstError(errs []error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func round(v float64, decimals int) float64 {
	p := 1.0
	for range decimals {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "url          %s\n", r.URL)
	fmt.Fprintf(w, "tool         %s\n", r.Tool)
	fmt.Fprintf(w, "sessions     %d\n", r.Sessions)
	fmt.Fprintf(w, "measured     %.2fs after %.1fs warmup\n", r.DurationS, r.WarmupS)
	fmt.Fprintf(w, "calls        %d (errors %d; %d including warmup)\n", r.Calls, r.Errors, r.TotalCalls)
	fmt.Fprintf(w, "calls/s      %.1f\n", r.CallsPerSec)
	fmt.Fprintf(w, "latency µs   p50 %.1f  p90 %.1f  p99 %.1f  max %.1f  mean %.1f\n", r.P50us, r.P90us, r.P99us, r.MaxUs, r.MeanUs)
	fmt.Fprintf(w, "mcpload CPU  %.1f µs/call (%.2f CPUs busy), %.1f allocs/call\n", r.CPUusPerCall, r.CPUUtil, r.AllocsPerCall)
	if r.WarmupErrors > 0 {
		fmt.Fprintf(w, "warmup errs  %d\n", r.WarmupErrors)
	}
	if r.FirstError != "" {
		fmt.Fprintf(w, "first error  %s\n", r.FirstError)
	}
}

// listTools prints the names of the server's tools, following pagination.
func listTools(client *http.Client, cfg config) error {
	s := newSession(client, cfg)
	if err := s.initialize(); err != nil {
		return err
	}
	defer s.close()
	cursor := ""
	for page := 0; page < 100; page++ {
		params := map[string]any{}
		if cursor != "" {
			params["cursor"] = cursor
		}
		var lr listResponse
		if err := s.rpc("tools/list", params, &lr); err != nil {
			return err
		}
		if lr.Result == nil {
			return errors.New("tools/list: response has no result")
		}
		for _, t := range lr.Result.Tools {
			fmt.Println(t.Name)
		}
		if cursor = lr.Result.NextCursor; cursor == "" {
			return nil
		}
	}
	return errors.New("tools/list: more than 100 pages")
}
