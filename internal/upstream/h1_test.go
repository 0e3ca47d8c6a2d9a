package upstream

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestH1TransportReusesAndRetries(t *testing.T) {
	srv, conns := countingServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/sse" {
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(200)
			fmt.Fprintf(w, "data: one\n\n")
			w.(http.Flusher).Flush()
			fmt.Fprintf(w, "data: two\n\n")
			return
		}
		fmt.Fprintf(w, "echo:%s", body)
	}))
	defer srv.Close()
	tr := &H1Transport{}
	client := &http.Client{Transport: tr}
	post := func(body string) string {
		t.Helper()
		return postText(t, client, srv.URL+"/x", body)
	}
	for i := range 5 {
		if got := post(fmt.Sprint(i)); got != fmt.Sprintf("echo:%d", i) {
			t.Fatalf("got %q", got)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 5 sequential requests, want 1 (keep-alive)", n)
	}
	// Chunked SSE bodies stream and the connection is reused after them.
	resp, err := client.Get(srv.URL + "/sse")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "data: one\n\ndata: two\n\n" {
		t.Errorf("sse body %q", b)
	}
	// The server drops idle connections: the next request goes through on a new one.
	srv.CloseClientConnections()
	time.Sleep(10 * time.Millisecond)
	if got := post("after"); got != "echo:after" {
		t.Fatalf("after idle close: %q", got)
	}
}

func TestH1TransportCancel(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL, strings.NewReader("x"))
	errc := make(chan error, 1)
	go func() {
		_, err := (&H1Transport{}).RoundTrip(req)
		errc <- err
	}()
	cancel()
	if err := <-errc; err == nil || !strings.Contains(err.Error(), "canceled") {
		t.Fatalf("err = %v, want cancellation", err)
	}
}

// DrainLater returns an answered stream's connection to the pool before the stream's end;
// the next request on it reads that end first, or, when the server keeps the stream open
// past pendingWait, dials anew and from then on leaves such bodies to the caller.
func TestH1TransportDrainLater(t *testing.T) {
	for _, tc := range []struct {
		name       string
		endAfter   time.Duration
		wantConns  int32
		wantLater2 bool // DrainLater's answer for the second stream
	}{
		{"end comes soon", 20 * time.Millisecond, 1, true},
		{"end comes too late", pendingWait + 200*time.Millisecond, 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, conns := countingServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				w.WriteHeader(200)
				fmt.Fprintf(w, "data: answer\n\n")
				w.(http.Flusher).Flush()
				time.Sleep(tc.endAfter)
			}))
			defer srv.Close()
			tr := &H1Transport{}
			defer tr.CloseIdleConnections()
			stream := func() *h1body {
				t.Helper()
				req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
				resp, err := tr.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				line := make([]byte, len("data: answer\n\n"))
				if _, err := io.ReadFull(resp.Body, line); err != nil || string(line) != "data: answer\n\n" {
					t.Fatalf("read %q, %v", line, err)
				}
				return resp.Body.(*h1body)
			}
			if !stream().DrainLater() {
				t.Fatal("DrainLater refused the first stream")
			}
			b := stream()
			if got := b.DrainLater(); got != tc.wantLater2 {
				t.Errorf("DrainLater of the second stream = %v, want %v", got, tc.wantLater2)
			}
			if !tc.wantLater2 {
				b.Close()
			}
			if n := conns.Load(); n != tc.wantConns {
				t.Errorf("%d connections, want %d", n, tc.wantConns)
			}
		})
	}
}

// A response head longer than a connection's read buffer is read, up to maxResponseHead,
// and the connection goes on serving the next request.
func TestH1TransportLongResponseHead(t *testing.T) {
	srv, conns := countingServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := 0
		fmt.Sscan(r.URL.Query().Get("n"), &n)
		w.Header().Set("X-Long", strings.Repeat("v", n))
		fmt.Fprintf(w, "body-%d", n)
	}))
	defer srv.Close()
	client := &http.Client{Transport: &H1Transport{}}
	for _, n := range []int{10, 6000, 12000, 100} {
		resp, err := client.Get(fmt.Sprintf("%s/?n=%d", srv.URL, n))
		if err != nil {
			t.Fatalf("header of %d bytes: %v", n, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != fmt.Sprintf("body-%d", n) || len(resp.Header.Get("X-Long")) != n {
			t.Fatalf("header of %d bytes: body %q, header of %d bytes", n, b, len(resp.Header.Get("X-Long")))
		}
	}
	if c := conns.Load(); c != 1 {
		t.Errorf("%d connections, want 1: a long head leaves the connection usable", c)
	}
	if _, err := client.Get(fmt.Sprintf("%s/?n=%d", srv.URL, maxResponseHead)); err == nil || !strings.Contains(err.Error(), "head over") {
		t.Fatalf("a head over %d bytes: %v, want an error", maxResponseHead, err)
	}
}

// countingServer starts a test server with h and counts the connections it accepts.
func countingServer(h http.Handler) (*httptest.Server, *atomic.Int32) {
	conns := new(atomic.Int32)
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	return srv, conns
}

// An idle connection keeps no buffers (its reader goes back to the shared pool) and gets a
// reader again when it is reused; answers of different sizes on alternating connections
// stay whole.
func TestH1TransportIdleConnectionsKeepNoBuffers(t *testing.T) {
	srv, conns := countingServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s:%s", body, strings.Repeat("x", len(body)*1000))
	}))
	defer srv.Close()
	tr := &H1Transport{}
	client := &http.Client{Transport: tr}
	post := func(body string) {
		t.Helper()
		b := postText(t, client, srv.URL+"/x", body)
		if want := body + ":" + strings.Repeat("x", len(body)*1000); b != want {
			t.Fatalf("%q: got %d bytes, want %d", body, len(b), len(want))
		}
	}
	for _, body := range []string{"a", "bbbbbbbbbb", "c", "ddddd"} {
		post(body)
		tr.mu.Lock()
		for _, list := range tr.idle {
			for _, c := range list {
				if c.br != nil {
					t.Errorf("after %q: an idle connection holds a reader of %d bytes", body, c.br.Size())
				}
			}
		}
		tr.mu.Unlock()
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 4 sequential requests, want 1", n)
	}
}

// postText POSTs body as text/plain to url and returns the answer's body.
func postText(t *testing.T, client *http.Client, url, body string) string {
	t.Helper()
	resp, err := client.Post(url, "text/plain", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return string(b)
}
