package streamablehttp_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/gateway"
	gt "github.com/portcullis-mcp/portcullis/internal/gateway/gatewaytest"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
	"github.com/portcullis-mcp/portcullis/internal/transport/streamablehttp"

	_ "github.com/portcullis-mcp/portcullis/internal/guards/limits"
)

const waitLong = 5 * time.Second

type front struct {
	t   *testing.T
	url string
	g   *gateway.Gateway
	h   *streamablehttp.Handler
}

// newFront serves a gateway over fake servers (named as their serverInfo) with httptest.
func newFront(t *testing.T, hopts streamablehttp.Options, gopts gateway.Options, servers ...*gt.Server) *front {
	t.Helper()
	for _, s := range servers {
		gopts.Servers = append(gopts.Servers, gateway.Server{Name: s.Name, Dial: s.Dial})
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	gopts.Logger = logger
	if hopts.Logger == nil {
		hopts.Logger = logger
	}
	g, err := gateway.New(gopts)
	if err != nil {
		t.Fatal(err)
	}
	h := streamablehttp.New(g, hopts)
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		g.Shutdown(ctx)
	})
	return &front{t: t, url: srv.URL, g: g, h: h}
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// do sends an HTTP request; hdr holds header name/value pairs.
func (f *front) do(method, body string, hdr ...string) *http.Response {
	f.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.url, r)
	if err != nil {
		f.t.Fatal(err)
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "Host") {
			req.Host = hdr[i+1]
			continue
		}
		switch {
		case hdr[i+1] == "": // remove a default
			req.Header.Del(hdr[i])
		case strings.EqualFold(hdr[i], "Accept"):
			req.Header.Set("Accept", hdr[i+1])
		default: // Add: a name given twice is sent twice
			req.Header.Add(hdr[i], hdr[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func (f *front) post(body string, hdr ...string) *http.Response {
	f.t.Helper()
	return f.do(http.MethodPost, body, hdr...)
}

const initBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"sampling":{}},"clientInfo":{"name":"http-test","version":"1"}}}`

// initialize opens a legacy session and returns its id.
func (f *front) initialize(hdr ...string) string {
	f.t.Helper()
	resp := f.post(initBody, hdr...)
	m := readJSON(f.t, resp, http.StatusOK)
	if m.Error != nil {
		f.t.Fatalf("initialize: %s", m.Marshal())
	}
	sid := resp.Header.Get("Mcp-Session-Id")
	if sid == "" {
		f.t.Fatal("initialize returned no Mcp-Session-Id")
	}
	resp = f.post(`{"jsonrpc":"2.0","method":"notifications/initialized"}`, append([]string{"Mcp-Session-Id", sid}, hdr...)...)
	if resp.StatusCode != http.StatusAccepted {
		f.t.Fatalf("notifications/initialized: status %d", resp.StatusCode)
	}
	return sid
}

// readJSON checks the status and content type and decodes the body as one message.
func readJSON(t *testing.T, resp *http.Response, status int) *jsonrpc.Message {
	t.Helper()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d: %s", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("content type %q: %s", ct, body)
	}
	m, err := jsonrpc.Decode(body, jsonrpc.Limits{})
	if err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	return m
}

// wantError checks that resp is an error response with status and code.
func wantError(t *testing.T, resp *http.Response, status, code int) *jsonrpc.Message {
	t.Helper()
	m := readJSON(t, resp, status)
	if m.Error == nil || m.Error.Code != code {
		t.Fatalf("want error %d, got %s", code, m.Marshal())
	}
	return m
}

// sseEvent is one server-sent event (or a retry field on its own).
type sseEvent struct {
	ID, Event, Data, Retry string
}

func (e sseEvent) msg(t *testing.T) *jsonrpc.Message {
	t.Helper()
	m, err := jsonrpc.Decode([]byte(e.Data), jsonrpc.Limits{})
	if err != nil {
		t.Fatalf("event data %q: %v", e.Data, err)
	}
	return m
}

// events reads the SSE body of resp on a goroutine; the channel closes at its end.
func events(t *testing.T, resp *http.Response) <-chan sseEvent {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("content type %q, status %d: %s", ct, resp.StatusCode, b)
	}
	ch := make(chan sseEvent, 64)
	go func() {
		defer close(ch)
		br := bufio.NewReader(resp.Body)
		var ev sseEvent
		any := false
		for {
			line, err := br.ReadString('\n')
			line = strings.TrimRight(line, "\r\n")
			if line == "" && err == nil {
				if any {
					ch <- ev
				}
				ev, any = sseEvent{}, false
				continue
			}
			if err != nil {
				return
			}
			if strings.HasPrefix(line, ":") {
				continue
			}
			k, v, _ := strings.Cut(line, ":")
			v = strings.TrimPrefix(v, " ")
			any = true
			switch k {
			case "id":
				ev.ID = v
			case "event":
				ev.Event = v
			case "data":
				if ev.Data != "" {
					ev.Data += "\n"
				}
				ev.Data += v
			case "retry":
				ev.Retry = v
			}
		}
	}()
	return ch
}

var errTimeout = errors.New("timed out")

// next returns the next event with data, skipping retry-only ones.
func next(t *testing.T, ch <-chan sseEvent) (sseEvent, error) {
	t.Helper()
	deadline := time.After(waitLong)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return sseEvent{}, io.EOF
			}
			if ev.Data == "" {
				continue
			}
			return ev, nil
		case <-deadline:
			return sseEvent{}, errTimeout
		}
	}
}

// all reads events until the stream ends.
func all(t *testing.T, ch <-chan sseEvent) []sseEvent {
	t.Helper()
	var out []sseEvent
	deadline := time.After(waitLong)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return out
			}
			out = append(out, ev)
		case <-deadline:
			t.Fatalf("stream did not end; got %v", out)
		}
	}
}

func lookupString(t *testing.T, raw []byte, path ...string) string {
	t.Helper()
	v, ok := jsonrpc.LookupPath(raw, path...)
	if !ok {
		t.Fatalf("%s: no %v", raw, path)
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		t.Fatalf("%s: %v is %s", raw, path, v)
	}
	return s
}

func methods(ms []*jsonrpc.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Method)
	}
	return out
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Errorf("timed out waiting: %s", what)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
