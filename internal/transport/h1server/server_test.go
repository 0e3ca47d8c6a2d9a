package h1server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

type testServer struct {
	s    *Server
	addr string
	// Which server answered: the fast path sets "X-Path: fast", the fallback "X-Path: std".
}

// start serves handler on both paths; each response says which path served it.
func start(t *testing.T, handler http.HandlerFunc, tune func(*Server)) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tag := func(path string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Path", path)
			handler(w, r)
		}
	}
	std := &http.Server{Handler: tag("std"), ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 64 << 10}
	s := &Server{Handler: tag("fast"), Fallback: std, Target: "/mcp", ErrorLog: func(msg string, args ...any) { t.Log(append([]any{msg}, args...)...) }}
	if tune != nil {
		tune(s)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		std.Shutdown(ctx)
		s.Shutdown(ctx)
		s.Close()
		if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return &testServer{s: s, addr: ln.Addr().String()}
}

func echo(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, b)
}

func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

func readResp(t *testing.T, br *bufio.Reader) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	for err == nil && resp.StatusCode < 200 { // 100 Continue
		resp, err = http.ReadResponse(br, nil)
	}
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	if resp.StatusCode >= 400 { // net/http may close before reading the whole request
		return resp, ""
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	return resp, string(b)
}

func post(body string, extra ...string) string {
	return "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " + fmt.Sprint(len(body)) + "\r\n" +
		strings.Join(append(extra, ""), "\r\n") + "\r\n" + body
}

func TestKeepAliveAndHandOff(t *testing.T) {
	ts := start(t, echo, nil)
	c, br := dial(t, ts.addr)
	steps := []struct {
		req, path, body string
	}{
		{post(`{"a":1}`), "fast", `POST /mcp {"a":1}`},
		{post(`second`), "fast", `POST /mcp second`},
		{post(``), "fast", `POST /mcp `},
		// Pipelined: two requests in one write.
		{post(`p1`) + post(`p2`), "fast", `POST /mcp p1`},
		{"", "fast", `POST /mcp p2`},
		// A request the fast path does not serve hands the connection to net/http for good.
		{"GET /other HTTP/1.1\r\nHost: h\r\n\r\n", "std", `GET /other `},
		{post(`after`), "std", `POST /mcp after`},
	}
	for i, st := range steps {
		if st.req != "" {
			if _, err := io.WriteString(c, st.req); err != nil {
				t.Fatal(err)
			}
		}
		resp, body := readResp(t, br)
		if got := resp.Header.Get("X-Path"); got != st.path || body != st.body || resp.StatusCode != 200 {
			t.Errorf("step %d: %d %s %q, want 200 %s %q", i, resp.StatusCode, got, body, st.path, st.body)
		}
		if resp.Header.Get("Date") == "" || resp.Header.Get("Content-Type") != "text/plain" {
			t.Errorf("step %d: header %v", i, resp.Header)
		}
	}
}

// Requests the fast path leaves alone get net/http's answers, body and all.
func TestFallbackCases(t *testing.T) {
	ts := start(t, echo, nil)
	tests := []struct {
		name, req  string
		status     int
		path, body string
	}{
		{"chunked body", "POST /mcp HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", 200, "std", "POST /mcp abcde"},
		{"HTTP/1.0", "POST /mcp HTTP/1.0\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi", 200, "std", "POST /mcp hi"},
		{"expect", post("xy", "Expect: 100-continue"), 200, "std", "POST /mcp xy"},
		{"malformed request line", "POST /mcp\r\nHost: h\r\n\r\n", 400, "", ""},
		{"no host", "POST /mcp HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 400, "", ""},
		{"two lengths", "POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400, "", ""},
		{"length and chunked", "POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 200, "std", "POST /mcp "},
		{"bad field", "POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nBad Name: 1\r\n\r\n", 400, "", ""},
		{"oversize head", post("", "X-Big: "+strings.Repeat("a", 80<<10)), 431, "", ""},
		{"large head under the limit", post("ok", "X-Big: "+strings.Repeat("a", 20<<10)), 200, "std", "POST /mcp ok"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, br := dial(t, ts.addr)
			go io.WriteString(c, tc.req)
			resp, body := readResp(t, br)
			if resp.StatusCode != tc.status {
				t.Fatalf("HTTP %d, want %d (%q)", resp.StatusCode, tc.status, body)
			}
			if tc.path != "" && (resp.Header.Get("X-Path") != tc.path || body != tc.body) {
				t.Errorf("%s %q, want %s %q", resp.Header.Get("X-Path"), body, tc.path, tc.body)
			}
		})
	}
}

func TestTruncatedBody(t *testing.T) {
	got := make(chan error, 1)
	ts := start(t, func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		got <- err
	}, nil)
	c, _ := dial(t, ts.addr)
	io.WriteString(c, "POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabcde")
	c.(*net.TCPConn).CloseWrite()
	select {
	case err := <-got:
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("body read error %v, want unexpected EOF", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the handler never saw the end of the truncated body")
	}
}

// A client that sends its head slowly is disconnected after HeaderTimeout.
func TestSlowHead(t *testing.T) {
	ts := start(t, echo, func(s *Server) { s.HeaderTimeout = 100 * time.Millisecond })
	c, br := dial(t, ts.addr)
	io.WriteString(c, "POST /mcp HTTP/1.1\r\nHost: h\r\n")
	for i := 0; i < 50; i++ { // keeps trickling for up to 5 s
		if _, err := io.WriteString(c, "X: 1\r\n"); err != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := br.ReadByte()
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the connection of a head that never ended is still open (%v)", err)
	}
}

// A head that arrives whole with a body that stalls: the body's read is bounded by
// ReadTimeout (and the handler sees the error), on the first request of a connection and
// on a later one.
func TestStalledBody(t *testing.T) {
	got := make(chan error, 2)
	ts := start(t, func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		got <- err
		if err == nil {
			io.WriteString(w, "ok")
		}
	}, func(s *Server) { s.HeaderTimeout = 50 * time.Millisecond; s.ReadTimeout = 150 * time.Millisecond })
	for _, first := range []bool{true, false} {
		c, br := dial(t, ts.addr)
		if !first {
			io.WriteString(c, "POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n{}")
			if _, body := readResp(t, br); body != "ok" {
				t.Fatalf("first request: %q", body)
			}
			if err := <-got; err != nil {
				t.Fatalf("first request's body: %v", err)
			}
		}
		io.WriteString(c, "POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n{}")
		select {
		case err := <-got:
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("first=%v: the stalled body's read ended with %v; want a timeout", first, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("first=%v: the stalled body's read never ended", first)
		}
	}
}

// A large unread body closes the connection after the response (a small one is skipped:
// TestNoBodyStatus).
func TestUnreadBodyCloses(t *testing.T) {
	ts := start(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "early") }, nil)
	c, br := dial(t, ts.addr)
	io.WriteString(c, "POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: 300000\r\n\r\nabc")
	resp, body := readResp(t, br)
	if body != "early" || !resp.Close {
		t.Errorf("%q close=%v, want \"early\" and Connection: close", body, resp.Close)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after the response: %v, want EOF", err)
	}
}

// Flush sends a chunked stream as it is written; the client reads each event before the
// handler returns.
func TestStreaming(t *testing.T) {
	next := make(chan struct{})
	ts := start(t, func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		for i := 0; i < 3; i++ {
			fmt.Fprintf(w, "data: %d\n\n", i)
			if err := http.NewResponseController(w).SetWriteDeadline(time.Now().Add(5 * time.Second)); err != nil {
				t.Errorf("SetWriteDeadline: %v", err)
			}
			w.(http.Flusher).Flush()
			<-next
		}
		io.WriteString(w, "data: end\n\n")
	}, nil)
	req, _ := http.NewRequest(http.MethodPost, "http://"+ts.addr+"/mcp", strings.NewReader("{}"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("X-Path") != "fast" || len(resp.TransferEncoding) == 0 || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("path %s, transfer coding %v", resp.Header.Get("X-Path"), resp.TransferEncoding)
	}
	sc := bufio.NewScanner(resp.Body)
	for i := 0; i < 3; i++ {
		if !sc.Scan() || sc.Text() != fmt.Sprintf("data: %d", i) {
			t.Fatalf("event %d: %q", i, sc.Text())
		}
		sc.Scan() // the empty line
		next <- struct{}{}
	}
	rest, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(rest), "data: end") {
		t.Errorf("after the events: %q", rest)
	}
}

// Large bodies without Flush stream as chunks too.
func TestLargeResponse(t *testing.T) {
	big := strings.Repeat("x", 3*maxBuffered+17)
	ts := start(t, func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < len(big); i += 10000 {
			io.WriteString(w, big[i:min(i+10000, len(big))])
		}
	}, nil)
	for i := 0; i < 2; i++ { // twice on one connection
		resp, err := http.Post("http://"+ts.addr+"/mcp", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(b) != big {
			t.Fatalf("body of %d bytes (%v), want %d", len(b), err, len(big))
		}
	}
}

// A call that outlasts WatchDelay is cancelled when its client disconnects.
func TestDisconnectCancels(t *testing.T) {
	cancelled := make(chan struct{})
	started := make(chan struct{})
	ts := start(t, func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		close(started)
		select {
		case <-r.Context().Done():
			close(cancelled)
		case <-time.After(20 * time.Second):
		}
	}, func(s *Server) { s.WatchDelay = 10 * time.Millisecond })
	c, _ := dial(t, ts.addr)
	io.WriteString(c, post("{}"))
	<-started
	time.Sleep(50 * time.Millisecond) // past WatchDelay: the watcher reads
	c.Close()
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the call's context was not cancelled when the client went away")
	}
}

// OnDisconnect's function runs when the client goes away during the call, and not for a
// call whose client stays (nor for the next call on the connection, which did not set it).
func TestOnDisconnect(t *testing.T) {
	gone := make(chan string, 2)
	ts := start(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if string(b) != "next" {
			w.(interface{ OnDisconnect(func()) }).OnDisconnect(func() { gone <- string(b) })
		}
		if string(b) == "slow" {
			select {
			case <-r.Context().Done():
			case <-time.After(20 * time.Second):
			}
		}
		io.WriteString(w, "ok")
	}, func(s *Server) { s.WatchDelay = 10 * time.Millisecond })
	c, br := dial(t, ts.addr)
	for _, body := range []string{"quick", "next"} {
		io.WriteString(c, post(body))
		if _, got := readResp(t, br); got != "ok" {
			t.Fatalf("%s: %q", body, got)
		}
	}
	time.Sleep(50 * time.Millisecond) // past WatchDelay, with no call running
	io.WriteString(c, post("slow"))
	time.Sleep(50 * time.Millisecond) // past WatchDelay: the watcher reads
	c.Close()
	select {
	case b := <-gone:
		if b != "slow" {
			t.Fatalf("OnDisconnect ran for the %q call; want only the slow one's", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OnDisconnect's function did not run when the client went away")
	}
	select {
	case b := <-gone:
		t.Fatalf("OnDisconnect ran again, for the %q call", b)
	case <-time.After(100 * time.Millisecond):
	}
}

// A call that outlasts WatchDelay still lets its connection serve the next request.
func TestSlowCallKeepsConnection(t *testing.T) {
	var n atomic.Int32
	ts := start(t, func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		if n.Add(1) == 1 {
			time.Sleep(50 * time.Millisecond)
		}
		if r.Context().Err() != nil {
			t.Error("context cancelled although the client stayed")
		}
		io.WriteString(w, "ok")
	}, func(s *Server) { s.WatchDelay = time.Millisecond })
	c, br := dial(t, ts.addr)
	io.WriteString(c, post("1"))
	time.Sleep(20 * time.Millisecond)
	io.WriteString(c, post("2")) // arrives while the first call runs: the watcher keeps it
	for i := 0; i < 2; i++ {
		if resp, body := readResp(t, br); body != "ok" || resp.Header.Get("X-Path") != "fast" {
			t.Fatalf("response %d: %q via %s", i, body, resp.Header.Get("X-Path"))
		}
	}
}

func TestNoBodyStatus(t *testing.T) {
	ts := start(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
	}, nil)
	c, br := dial(t, ts.addr)
	for i := 0; i < 2; i++ {
		io.WriteString(c, post("{}"))
		resp, body := readResp(t, br)
		if resp.StatusCode != http.StatusAccepted || body != "" || resp.ContentLength != 0 {
			t.Fatalf("%d %q length %d", resp.StatusCode, body, resp.ContentLength)
		}
	}
}

// Shutdown closes idle connections, lets a call in flight answer (with Connection:
// close), and stops accepting.
func TestShutdown(t *testing.T) {
	release := make(chan struct{})
	inCall := make(chan struct{}, 1)
	ts := start(t, func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		if r.Header.Get("X-Wait") != "" {
			inCall <- struct{}{}
			<-release
		}
		io.WriteString(w, "done")
	}, nil)
	idle, idleR := dial(t, ts.addr)
	io.WriteString(idle, post("{}"))
	readResp(t, idleR)
	busy, busyR := dial(t, ts.addr)
	io.WriteString(busy, post("{}", "X-Wait: 1"))
	<-inCall
	shut := make(chan error, 1)
	go func() { shut <- ts.s.Shutdown(context.Background()) }()
	if _, err := idleR.ReadByte(); err == nil {
		t.Error("the idle connection got data instead of being closed")
	}
	close(release)
	resp, body := readResp(t, busyR)
	if body != "done" || !resp.Close {
		t.Errorf("in-flight call: %q close=%v", body, resp.Close)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if c, err := net.Dial("tcp", ts.addr); err == nil {
		c.Close()
		t.Error("still accepting after Shutdown")
	}
}

// A handler's Connection: close, or the client's, ends the connection after the response.
func TestConnectionClose(t *testing.T) {
	ts := start(t, func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		if r.Header.Get("X-Close") != "" {
			w.Header().Set("Connection", "close")
		}
		if r.Header.Get("Host") != "" || r.Host != "127.0.0.1" {
			t.Errorf("Host %q, header %q", r.Host, r.Header.Get("Host"))
		}
		io.WriteString(w, "ok")
	}, nil)
	for _, extra := range []string{"X-Close: 1", "Connection: close"} {
		c, br := dial(t, ts.addr)
		io.WriteString(c, post("{}", extra))
		if resp, body := readResp(t, br); body != "ok" || !resp.Close || resp.Header.Get("X-Path") != "fast" {
			t.Errorf("%s: %q close=%v via %s", extra, body, resp.Close, resp.Header.Get("X-Path"))
		}
		if _, err := br.ReadByte(); err != io.EOF {
			t.Errorf("%s: after the response: %v, want EOF", extra, err)
		}
	}
}
