package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

type httpTestKey struct{}

// postedMsg decodes the body of a POST the transport sent.
func postedMsg(t *testing.T, r *http.Request) *jsonrpc.Message {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Errorf("reading body: %v", err)
		return &jsonrpc.Message{}
	}
	m, err := jsonrpc.Decode(b, jsonrpc.Limits{})
	if err != nil {
		t.Errorf("transport sent an invalid message %s: %v", b, err)
		return &jsonrpc.Message{}
	}
	return m
}

func sseSend(w http.ResponseWriter, s string) {
	io.WriteString(w, s)
	w.(http.Flusher).Flush()
}

func sseEvent(m *jsonrpc.Message) string {
	return "event: message\ndata: " + string(m.Marshal()) + "\n\n"
}

func sseBegin(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
}

func newHTTPTransport(t *testing.T, url string, in Incoming) *StreamableHTTP {
	t.Helper()
	tr, err := NewStreamableHTTP(url, HTTPOptions{Name: "fake", Header: http.Header{"Authorization": {"Bearer k"}}}, in)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func mkRequest(id, method, params string) *jsonrpc.Message {
	m := &jsonrpc.Message{ID: jsonrpc.ID(id), Method: method}
	if params != "" {
		m.Params = json.RawMessage(params)
	}
	return m
}

func TestStreamableReplies(t *testing.T) {
	tests := []struct {
		name    string
		handler func(w http.ResponseWriter, id jsonrpc.ID)
		want    string // result, or error substring after "error: "
	}{
		{"json", func(w http.ResponseWriter, id jsonrpc.ID) {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.Write(jsonrpc.NewResult(id, json.RawMessage(`{"ok":true}`)).Marshal())
		}, `{"ok":true}`},
		{"sse", func(w http.ResponseWriter, id jsonrpc.ID) {
			sseBegin(w)
			sseSend(w, ": comment\r\nid: 1\r\ndata:\r\n\r\n")
			sseSend(w, "event: message\r\ndata: {\"jsonrpc\":\"2.0\",\r\ndata: \"id\":"+string(id)+",\"result\":{\"ok\":1}}\r\n\r\n")
		}, `{"ok":1}`},
		{"sse without event type", func(w http.ResponseWriter, id jsonrpc.ID) {
			sseBegin(w)
			sseSend(w, "data: "+string(jsonrpc.NewResult(id, json.RawMessage(`[]`)).Marshal())+"\r\r")
		}, `[]`},
		{"json-rpc error on 400", func(w http.ResponseWriter, id jsonrpc.ID) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			w.Write(jsonrpc.NewError(id, jsonrpc.Errorf(jsonrpc.CodeUnsupportedProtocolVersion, "unsupported")).Marshal())
		}, `jsonrpc error -32022: unsupported`},
		{"500", func(w http.ResponseWriter, id jsonrpc.ID) {
			http.Error(w, strings.Repeat("x", 2000), http.StatusInternalServerError)
		}, `error: server "fake": POST answered HTTP 500 Internal Server Error: "xxxx`},
		{"invalid json", func(w http.ResponseWriter, id jsonrpc.ID) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"jsonrpc":"2.0","id":`+string(id)+`,"result":{"a":1,"a":2}}`)
		}, `error: server "fake": server sent an invalid message: parse error: duplicate object key`},
		{"response to another id", func(w http.ResponseWriter, id jsonrpc.ID) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(jsonrpc.NewResult(jsonrpc.ID(`"other"`), nil).Marshal())
		}, `error: server "fake": server sent an invalid message: the JSON answer to request 1 is response "other"`},
		{"202 to a request", func(w http.ResponseWriter, id jsonrpc.ID) {
			w.WriteHeader(http.StatusAccepted)
		}, `error: server unavailable: server "fake": POST of a request answered HTTP 202`},
		{"stream ends without response", func(w http.ResponseWriter, id jsonrpc.ID) {
			sseBegin(w)
			sseSend(w, "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}\n\n")
		}, `error: server unavailable: server "fake": the event stream ended without the response`},
		{"text/html", func(w http.ResponseWriter, id jsonrpc.ID) {
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, "<html>")
		}, `error: server unavailable: server "fake": POST answered with content type "text/html"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodPost {
					http.Error(w, "no", http.StatusMethodNotAllowed)
					return
				}
				for k, want := range map[string]string{
					"Content-Type":     "application/json",
					"Accept":           "application/json, text/event-stream",
					"Authorization":    "Bearer k",
					"Mcp-Method":       "tools/call",
					"Mcp-Name":         "=?base64?IGVjaG8=?=",
					"Mcp-Param-Region": "eu",
					"Mcp-Session-Id":   "",
				} {
					if got := r.Header.Get(k); got != want {
						t.Errorf("header %s = %q, want %q", k, got, want)
					}
				}
				m := postedMsg(t, r)
				if string(m.ID) != "1" {
					t.Errorf("wire id %s, want 1", m.ID)
				}
				tc.handler(w, m.ID)
			}))
			defer srv.Close()
			tr := newHTTPTransport(t, srv.URL, nil)
			ctx := WithHeader(context.Background(), http.Header{"Mcp-Param-Region": {"eu"}, "Mcp-Session-Id": {"forged"}})
			resp, err := tr.Call(ctx, mkRequest(`"caller-7"`, "tools/call", `{"name":" echo"}`))
			if errPart, ok := strings.CutPrefix(tc.want, "error: "); ok {
				if err == nil {
					t.Fatalf("got %s, want an error", resp.Marshal())
				}
				if !strings.Contains(err.Error(), errPart) {
					t.Fatalf("error %q, want %q", err, errPart)
				}
				if strings.Contains(err.Error(), strings.Repeat("x", 513)) {
					t.Errorf("error body not truncated: %d bytes", len(err.Error()))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(resp.ID) != `"caller-7"` {
				t.Errorf("id %s, want the caller's", resp.ID)
			}
			got := string(resp.Result)
			if resp.Error != nil {
				got = resp.Error.Error()
			}
			if got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestStreamableErrorsWrapUnavailable(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusBadGateway)
	}))
	defer srv.Close()
	tr := newHTTPTransport(t, srv.URL, nil)
	_, err := tr.Call(context.Background(), mkRequest("1", "ping", ""))
	var se *StatusError
	if !errors.Is(err, ErrUnavailable) || !errors.As(err, &se) || se.StatusCode != 502 {
		t.Fatalf("error %v: want a StatusError 502 wrapping ErrUnavailable", err)
	}

	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	tr = newHTTPTransport(t, "http://"+addr+"/mcp?key=secret", nil)
	_, err = tr.Call(context.Background(), mkRequest("1", "ping", ""))
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), `server "fake"`) || strings.Contains(err.Error(), "secret") {
		t.Fatalf("error %v: want ErrUnavailable naming the server, without the URL's query", err)
	}
	if err := tr.Notify(context.Background(), jsonrpc.NewNotification("notifications/initialized", nil)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Notify: %v", err)
	}
}

func TestStreamableProgressReachesHandlerWithCallContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := postedMsg(t, r)
		sseBegin(w)
		for i := range 3 {
			sseSend(w, sseEvent(jsonrpc.NewNotification("notifications/progress", map[string]any{"progressToken": "p", "progress": i})))
		}
		sseSend(w, sseEvent(jsonrpc.NewResult(m.ID, json.RawMessage(`{"content":[]}`))))
	}))
	defer srv.Close()
	var mu sync.Mutex
	var got []string
	tr := newHTTPTransport(t, srv.URL, func(ctx context.Context, m *jsonrpc.Message) *jsonrpc.Message {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, fmt.Sprintf("%s %s %v", m.Method, m.Params, ctx.Value(httpTestKey{})))
		return nil
	})
	ctx := context.WithValue(context.Background(), httpTestKey{}, "call-ctx")
	if _, err := tr.Call(ctx, mkRequest("9", "tools/call", `{"name":"slow","_meta":{"progressToken":"p"}}`)); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`notifications/progress {"progress":0,"progressToken":"p"} call-ctx`,
		`notifications/progress {"progress":1,"progressToken":"p"} call-ctx`,
		`notifications/progress {"progress":2,"progressToken":"p"} call-ctx`,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("handler saw\n%q\nwant\n%q", got, want)
	}
}

func TestStreamableServerRequestAnsweredByPost(t *testing.T) {
	answered := make(chan *jsonrpc.Message, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := postedMsg(t, r)
		if m.IsResponse() {
			answered <- m
			w.WriteHeader(http.StatusAccepted)
			return
		}
		sseBegin(w)
		sseSend(w, sseEvent(jsonrpc.NewRequest(jsonrpc.ID(`"s-1"`), "sampling/createMessage", map[string]any{"maxTokens": 5})))
		select {
		case a := <-answered:
			// The stream goes on while the request is handled, and the answer comes back.
			sseSend(w, sseEvent(jsonrpc.NewResult(m.ID, map[string]any{"sampled": json.RawMessage(a.Result)})))
		case <-time.After(5 * time.Second):
			t.Error("no answer to the server request")
		}
	}))
	defer srv.Close()
	tr := newHTTPTransport(t, srv.URL, func(ctx context.Context, m *jsonrpc.Message) *jsonrpc.Message {
		if m.Method != "sampling/createMessage" || ctx.Value(httpTestKey{}) != "v" {
			return jsonrpc.NewError(m.ID, jsonrpc.Errorf(-1, "unexpected %s / %v", m.Method, ctx.Value(httpTestKey{})))
		}
		return jsonrpc.NewResult(jsonrpc.ID("999"), json.RawMessage(`{"text":"hi"}`))
	})
	resp, err := tr.Call(context.WithValue(context.Background(), httpTestKey{}, "v"), mkRequest("1", "tools/call", `{"name":"s"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(resp.Result); got != `{"sampled":{"text":"hi"}}` {
		t.Errorf("result %s", got)
	}
}

func TestStreamableSessionLifecycle(t *testing.T) {
	var mu sync.Mutex
	var log []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		entry := fmt.Sprintf("%s sid=%q pv=%q", r.Method, r.Header.Get("Mcp-Session-Id"), r.Header.Get("Mcp-Protocol-Version"))
		mu.Unlock()
		switch r.Method {
		case http.MethodPost:
			m := postedMsg(t, r)
			entry += " " + m.Method
			switch {
			case m.Method == "initialize":
				w.Header().Set("Mcp-Session-Id", "sess-1")
				w.Header().Set("Content-Type", "application/json")
				w.Write(jsonrpc.NewResult(m.ID, json.RawMessage(`{"protocolVersion":"2025-11-25"}`)).Marshal())
			case m.IsNotification():
				w.WriteHeader(http.StatusAccepted)
			case r.Header.Get("Mcp-Session-Id") != "sess-1":
				http.Error(w, "no session", http.StatusBadRequest)
			default:
				w.Header().Set("Content-Type", "application/json")
				w.Write(jsonrpc.NewResult(m.ID, nil).Marshal())
			}
		case http.MethodGet:
			http.Error(w, "no GET stream", http.StatusMethodNotAllowed)
		case http.MethodDelete:
			w.WriteHeader(http.StatusNoContent)
		}
		mu.Lock()
		log = append(log, entry)
		mu.Unlock()
	}))
	defer srv.Close()
	tr := newHTTPTransport(t, srv.URL, nil)
	ctx := context.Background()
	if _, err := tr.Call(ctx, mkRequest("0", "initialize", `{}`)); err != nil {
		t.Fatal(err)
	}
	if tr.SessionID() != "sess-1" {
		t.Fatalf("session %q", tr.SessionID())
	}
	tr.SetSession("", "2025-11-25")
	if err := tr.Notify(ctx, jsonrpc.NewNotification("notifications/initialized", nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Call(ctx, mkRequest("1", "tools/list", "")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the GET, answered 405
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-tr.Done():
	default:
		t.Fatal("Done open after Close")
	}
	if err := tr.Err(); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Err = %v", err)
	}
	if _, err := tr.Call(ctx, mkRequest("2", "ping", "")); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Call after Close: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{
		`POST sid="" pv="" initialize`,
		`POST sid="sess-1" pv="2025-11-25" notifications/initialized`,
		`GET sid="sess-1" pv="2025-11-25"`,
		`POST sid="sess-1" pv="2025-11-25" tools/list`,
		`DELETE sid="sess-1" pv="2025-11-25"`,
	}
	// The GET runs concurrently with tools/list.
	if len(log) == 5 && strings.HasPrefix(log[2], "POST") {
		log[2], log[3] = log[3], log[2]
	}
	if strings.Join(log, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(log, "\n"), strings.Join(want, "\n"))
	}
}

func TestStreamableSessionExpired(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := postedMsg(t, r)
		if m.Method == "initialize" {
			w.Header().Set("Mcp-Session-Id", "gone-soon")
			w.Header().Set("Content-Type", "application/json")
			w.Write(jsonrpc.NewResult(m.ID, nil).Marshal())
			return
		}
		http.Error(w, "session not found", http.StatusNotFound)
	}))
	defer srv.Close()
	tr := newHTTPTransport(t, srv.URL, nil)
	if _, err := tr.Call(context.Background(), mkRequest("0", "initialize", `{}`)); err != nil {
		t.Fatal(err)
	}
	_, err := tr.Call(context.Background(), mkRequest("1", "tools/list", ""))
	if !errors.Is(err, ErrSessionExpired) || !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "session expired") {
		t.Fatalf("error %v, want session expired", err)
	}
	if strings.Contains(err.Error(), "gone-soon") {
		t.Errorf("error %q shows the session id", err)
	}
	select {
	case <-tr.Done():
	case <-time.After(time.Second):
		t.Fatal("Done not closed after the session was lost")
	}
	if !errors.Is(tr.Err(), ErrSessionExpired) {
		t.Errorf("Err = %v", tr.Err())
	}
}

func TestStreamableCancelSendsNotification(t *testing.T) {
	cancelled := make(chan *jsonrpc.Message, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := postedMsg(t, r)
		if m.Method == "notifications/cancelled" {
			cancelled <- m
			w.WriteHeader(http.StatusAccepted)
			return
		}
		sseBegin(w)
		<-r.Context().Done() // the client aborts the request
	}))
	defer srv.Close()
	tr := newHTTPTransport(t, srv.URL, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := tr.Call(ctx, mkRequest(`"x"`, "tools/call", `{"name":"hang"}`))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want the ctx's", err)
	}
	select {
	case m := <-cancelled:
		if got := string(m.Params); got != `{"requestId":1,"reason":"context deadline exceeded"}` {
			t.Errorf("params %s", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no notifications/cancelled")
	}
}

func TestStreamableOversize(t *testing.T) {
	big := strings.Repeat("a", 2000)
	tests := []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"json body", func(w http.ResponseWriter, r *http.Request) {
			m := postedMsg(t, r)
			w.Header().Set("Content-Type", "application/json")
			w.Write(jsonrpc.NewResult(m.ID, map[string]string{"big": big}).Marshal())
		}},
		{"sse event", func(w http.ResponseWriter, r *http.Request) {
			m := postedMsg(t, r)
			sseBegin(w)
			sseSend(w, sseEvent(jsonrpc.NewResult(m.ID, map[string]string{"big": big})))
		}},
		{"sse event in many lines", func(w http.ResponseWriter, r *http.Request) {
			postedMsg(t, r)
			sseBegin(w)
			for range 2000 {
				sseSend(w, "data: aaaaaaaaaa\n")
			}
		}},
		{"sse endless line", func(w http.ResponseWriter, r *http.Request) {
			postedMsg(t, r)
			sseBegin(w)
			for range 1000 {
				sseSend(w, "::::::::::")
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			tr, err := NewStreamableHTTP(srv.URL, HTTPOptions{Limits: jsonrpc.Limits{MaxBytes: 1000}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			_, err = tr.Call(context.Background(), mkRequest("1", "tools/call", `{}`))
			if err == nil || !strings.Contains(err.Error(), "exceeds") {
				t.Fatalf("error %v, want a size error", err)
			}
		})
	}
}

func TestStreamableResumesAfterEarlyClose(t *testing.T) {
	var closedAt atomic.Int64
	var gets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPost:
			postedMsg(t, r)
			sseBegin(w)
			sseSend(w, "id: stream1_0\ndata:\n\n")
			sseSend(w, "id: stream1_1\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":1}}\n\n")
			sseSend(w, "event: close\nretry: 150\ndata:\n\n")
			closedAt.Store(time.Now().UnixNano())
		case http.MethodGet:
			n := gets.Add(1)
			if got := r.Header.Get("Last-Event-ID"); got != "stream1_1" {
				t.Errorf("Last-Event-ID %q", got)
			}
			if wait := time.Since(time.Unix(0, closedAt.Load())); wait < 140*time.Millisecond {
				t.Errorf("reconnected after %v, before the 150ms retry", wait)
			}
			sseBegin(w)
			if n == 1 {
				return // closed again without progress: the client tries again
			}
			sseSend(w, "id: stream1_2\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"resumed\":true}}\n\n")
		}
	}))
	defer srv.Close()
	var progress atomic.Int32
	tr := newHTTPTransport(t, srv.URL, func(ctx context.Context, m *jsonrpc.Message) *jsonrpc.Message {
		progress.Add(1)
		return nil
	})
	resp, err := tr.Call(context.Background(), mkRequest("5", "tools/call", `{}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.Result) != `{"resumed":true}` || string(resp.ID) != "5" || progress.Load() != 1 || gets.Load() != 2 {
		t.Errorf("response %s, %d progress, %d GETs", resp.Marshal(), progress.Load(), gets.Load())
	}
}

func TestStreamableResumeGivesUp(t *testing.T) {
	var gets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			postedMsg(t, r)
		} else {
			gets.Add(1)
		}
		sseBegin(w)
		sseSend(w, "id: e1\nretry: 1\ndata:\n\n")
	}))
	defer srv.Close()
	tr := newHTTPTransport(t, srv.URL, nil)
	_, err := tr.Call(context.Background(), mkRequest("5", "tools/call", `{}`))
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "attempts to resume") {
		t.Fatalf("error %v", err)
	}
	if n := gets.Load(); n != maxResumeAttempts {
		t.Errorf("%d GETs, want %d", n, maxResumeAttempts)
	}
}

func TestStreamableStandaloneStream(t *testing.T) {
	var gets atomic.Int32
	deleted := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPost:
			m := postedMsg(t, r)
			if m.IsNotification() || m.IsResponse() {
				w.WriteHeader(http.StatusAccepted)
				return
			}
			w.Header().Set("Mcp-Session-Id", "s9")
			w.Header().Set("Content-Type", "application/json")
			w.Write(jsonrpc.NewResult(m.ID, nil).Marshal())
		case http.MethodGet:
			if r.Header.Get("Accept") != "text/event-stream" || r.Header.Get("Mcp-Session-Id") != "s9" {
				t.Errorf("GET headers %v", r.Header)
			}
			switch gets.Add(1) {
			case 1:
				sseBegin(w)
				sseSend(w, "id: g1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n")
				// then the server drops the connection
			default:
				if got := r.Header.Get("Last-Event-ID"); got != "g1" {
					t.Errorf("reconnect with Last-Event-ID %q", got)
				}
				sseBegin(w)
				sseSend(w, "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/resources/list_changed\"}\n\n")
				<-r.Context().Done()
			}
		case http.MethodDelete:
			deleted <- r.Header.Get("Mcp-Session-Id")
			http.Error(w, "not allowed", http.StatusMethodNotAllowed)
		}
	}))
	defer srv.Close()
	got := make(chan string, 4)
	tr := newHTTPTransport(t, srv.URL, func(ctx context.Context, m *jsonrpc.Message) *jsonrpc.Message {
		if ctx.Value(httpTestKey{}) != nil {
			t.Error("standalone stream handler got a call's ctx")
		}
		got <- m.Method
		return nil
	})
	ctx := context.WithValue(context.Background(), httpTestKey{}, 1)
	if _, err := tr.Call(ctx, mkRequest("0", "initialize", `{}`)); err != nil {
		t.Fatal(err)
	}
	tr.SetSession("", "2025-06-18")
	if err := tr.Notify(ctx, jsonrpc.NewNotification("notifications/initialized", nil)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"notifications/tools/list_changed", "notifications/resources/list_changed"} {
		select {
		case m := <-got:
			if m != want {
				t.Errorf("got %s, want %s", m, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no %s", want)
		}
	}
	if err := tr.Close(); err != nil {
		t.Fatalf("Close: %v (a 405 to DELETE is fine)", err)
	}
	if sid := <-deleted; sid != "s9" {
		t.Errorf("DELETE with session %q", sid)
	}
}

func TestEventReader(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string // "type|data"
		lastID   string
		retry    time.Duration
	}{
		{"lf", "data: a\n\ndata: b\n\n", []string{"|a", "|b"}, "", 0},
		{"crlf and cr", "data: a\r\n\r\nevent: x\rdata: b\r\r", []string{"|a", "x|b"}, "", 0},
		{"multi-line data", "data: a\ndata:b\ndata:  c\n\n", []string{"|a\nb\n c"}, "", 0},
		{"comments and unknown fields", ": hi\nfoo: bar\ndata: a\n\n", []string{"|a"}, "", 0},
		{"id and retry", "id: 7\nretry: 250\n\ndata: a\nid: 8\n\n", []string{"|a"}, "8", 250 * time.Millisecond},
		{"bad retry ignored", "retry: 1x\ndata: a\n\n", []string{"|a"}, "", 0},
		{"id with NUL ignored", "id: 1\n\nid: a\x00b\ndata: a\n\n", []string{"|a"}, "1", 0},
		{"bom", "\xef\xbb\xbfdata: a\n\n", []string{"|a"}, "", 0},
		{"no space after colon", "data:a\n\n", []string{"|a"}, "", 0},
		{"empty data dispatched", "data\n\n", []string{"|"}, "", 0},
		{"unterminated event dropped", "data: a\n\ndata: b\n", []string{"|a"}, "", 0},
		{"type resets", "event: x\n\ndata: a\n\n", []string{"|a"}, "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			er := newEventReader(strings.NewReader(tc.in), 100)
			var got []string
			for {
				name, data, err := er.next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, name+"|"+string(data))
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) || er.lastID != tc.lastID || er.retry != tc.retry {
				t.Errorf("got %q id %q retry %v, want %q id %q retry %v", got, er.lastID, er.retry, tc.want, tc.lastID, tc.retry)
			}
		})
	}
}

// Lines longer than the reader's first buffer are read whole, up to the limit.
func TestEventReaderLongLines(t *testing.T) {
	const max = 64 << 10
	for _, n := range []int{eventBufferStart - 7, eventBufferStart, 3 * eventBufferStart, 20 << 10, max} {
		for _, oneByte := range []bool{false, true} {
			msg := strings.Repeat("x", n)
			var r io.Reader = strings.NewReader("data: " + msg + "\n\ndata: after\n\n")
			if oneByte {
				if n > 3*eventBufferStart {
					continue // each byte rescans the line: slow for long ones
				}
				r = iotest.OneByteReader(r)
			}
			er := newEventReader(r, max)
			if _, data, err := er.next(); err != nil || string(data) != msg {
				t.Fatalf("%d bytes (one byte a read: %v): %d bytes, %v", n, oneByte, len(data), err)
			}
			if _, data, err := er.next(); err != nil || string(data) != "after" {
				t.Fatalf("%d bytes: then %q, %v", n, data, err)
			}
		}
	}
	er := newEventReader(strings.NewReader("data: "+strings.Repeat("x", max+1)+"\n\n"), max)
	if _, _, err := er.next(); !errors.Is(err, errEventTooLarge) {
		t.Fatalf("an event over the limit: %v, want errEventTooLarge", err)
	}
}

func TestHeaderValue(t *testing.T) {
	for in, want := range map[string]string{
		"us-west1":           "us-west1",
		"Hello, 世界":          "=?base64?SGVsbG8sIOS4lueVjA==?=",
		" padded ":           "=?base64?IHBhZGRlZCA=?=",
		"line1\nline2":       "=?base64?bGluZTEKbGluZTI=?=",
		"=?base64?literal?=": "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?=",
	} {
		if got := headerValue(in); got != want {
			t.Errorf("headerValue(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestStreamableEverythingServer runs the transport against the Go SDK's conformance server.
func TestStreamableEverythingServer(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	bin, err := filepath.Abs("../../.e2e/bin/everything-server")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("conformance server not installed: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "-http", addr, "-stateless=false")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server did not start: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	var mu sync.Mutex
	var seen []string
	in := func(ctx context.Context, m *jsonrpc.Message) *jsonrpc.Message {
		mu.Lock()
		seen = append(seen, fmt.Sprintf("%s ctx=%v", m.Method, ctx.Value(httpTestKey{})))
		mu.Unlock()
		switch m.Method {
		case "sampling/createMessage":
			return jsonrpc.NewResult(m.ID, json.RawMessage(`{"role":"assistant","content":{"type":"text","text":"forty-two from the gateway"},"model":"fake","stopReason":"endTurn"}`))
		case "ping":
			return jsonrpc.NewResult(m.ID, nil)
		}
		if m.IsRequest() {
			return jsonrpc.NewError(m.ID, jsonrpc.Errorf(jsonrpc.CodeMethodNotFound, "no %s", m.Method))
		}
		return nil
	}
	tr, err := NewStreamableHTTP("http://"+addr+"/mcp", HTTPOptions{Name: "everything"}, in)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := tr.Call(ctx, mkRequest("0", "initialize", `{"protocolVersion":"2025-11-25","capabilities":{"sampling":{},"elicitation":{}},"clientInfo":{"name":"portcullis-test","version":"0"}}`))
	if err != nil {
		t.Fatal(err)
	}
	var ir InitResult
	if err := json.Unmarshal(resp.Result, &ir); err != nil || ir.ProtocolVersion != "2025-11-25" {
		t.Fatalf("initialize: %s (%v)", resp.Marshal(), err)
	}
	if tr.SessionID() == "" {
		t.Fatal("no session id captured")
	}
	tr.SetSession("", ir.ProtocolVersion)
	if err := tr.Notify(ctx, jsonrpc.NewNotification("notifications/initialized", nil)); err != nil {
		t.Fatal(err)
	}
	resp, err = tr.Call(ctx, mkRequest("1", "tools/list", ""))
	if err != nil || resp.Error != nil {
		t.Fatalf("tools/list: %v %v", err, resp)
	}
	var list struct {
		Tools []struct{ Name string }
	}
	json.Unmarshal(resp.Result, &list)
	names := map[string]bool{}
	for _, tool := range list.Tools {
		names[tool.Name] = true
	}
	for _, n := range []string{"test_sampling", "test_tool_with_progress"} {
		if !names[n] {
			t.Fatalf("tools/list lacks %s: %s", n, resp.Result)
		}
	}

	cctx := context.WithValue(ctx, httpTestKey{}, "sampling-call")
	resp, err = tr.Call(cctx, mkRequest(`"s"`, "tools/call", `{"name":"test_sampling","arguments":{"prompt":"What is 6*7?"}}`))
	if err != nil || resp.Error != nil {
		t.Fatalf("test_sampling: %v %v", err, resp)
	}
	if !strings.Contains(string(resp.Result), "forty-two from the gateway") {
		t.Errorf("test_sampling result %s lacks the sampled text", resp.Result)
	}

	pctx := context.WithValue(ctx, httpTestKey{}, "progress-call")
	resp, err = tr.Call(pctx, mkRequest(`"p"`, "tools/call", `{"name":"test_tool_with_progress","arguments":{},"_meta":{"progressToken":"tok"}}`))
	if err != nil || resp.Error != nil {
		t.Fatalf("test_tool_with_progress: %v %v", err, resp)
	}
	if string(resp.ID) != `"p"` {
		t.Errorf("id %s", resp.ID)
	}

	// A change to the tool list is announced on the standalone GET stream, with a
	// background ctx.
	if resp, err = tr.Call(ctx, mkRequest("3", "tools/call", `{"name":"test_trigger_tool_change","arguments":{}}`)); err != nil || resp.Error != nil {
		t.Fatalf("test_trigger_tool_change: %v %v", err, resp)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		got := strings.Join(seen, "\n")
		mu.Unlock()
		if strings.Contains(got, "notifications/tools/list_changed ctx=<nil>") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no notifications/tools/list_changed on the GET stream:\n%s", got)
		}
	}

	// A ping exercises the plain path once more; then Close sends DELETE.
	if resp, err = tr.Call(ctx, mkRequest("2", "ping", "")); err != nil || resp.Error != nil {
		t.Fatalf("ping: %v %v", err, resp)
	}
	mu.Lock()
	got := strings.Join(seen, "\n")
	mu.Unlock()
	t.Logf("handler saw:\n%s", got)
	if !strings.Contains(got, "sampling/createMessage ctx=sampling-call") {
		t.Errorf("the sampling request did not reach the handler with the call's ctx:\n%s", got)
	}
	if n := strings.Count(got, "notifications/progress ctx=progress-call"); n < 2 {
		t.Errorf("%d progress notifications with the call's ctx, want several:\n%s", n, got)
	}
	if err := tr.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	// The session is gone on the server: a request with its id gets 404.
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":3,"method":"ping"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Session-Id", tr.SessionID())
	if r, err := http.DefaultClient.Do(req); err == nil {
		r.Body.Close()
		if r.StatusCode != http.StatusNotFound {
			t.Errorf("after DELETE the session answers %d, want 404", r.StatusCode)
		}
	}
}

// A server may end an answered SSE stream at once (the connection is reused) or keep it
// open: the call must return with the answer either way, without waiting for the end.
func TestStreamableAnsweredStreamEnd(t *testing.T) {
	for _, tc := range []struct {
		name      string
		linger    bool
		wantConns int32
	}{
		{"ended", false, 1},
		{"kept open", true, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			srv, conns := countingServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodPost {
					http.Error(w, "no", http.StatusMethodNotAllowed)
					return
				}
				m := postedMsg(t, r)
				sseBegin(w)
				sseSend(w, sseEvent(jsonrpc.NewResult(m.ID, json.RawMessage(`{"n":`+string(m.ID)+`}`))))
				if tc.linger {
					<-release
				}
			}))
			defer srv.Close()
			defer close(release)
			tr, err := NewStreamableHTTP(srv.URL, HTTPOptions{Name: "fake", Client: &http.Client{Transport: &H1Transport{}}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			for i := range 3 {
				resp, err := tr.Call(context.Background(), mkRequest(fmt.Sprint(i+10), "tools/call", `{}`))
				if err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
				if want := fmt.Sprintf(`{"n":%d}`, i+1); string(resp.Result) != want {
					t.Errorf("call %d: result %s, want %s", i, resp.Result, want)
				}
			}
			if n := conns.Load(); n != tc.wantConns {
				t.Errorf("%d connections for 3 calls, want %d", n, tc.wantConns)
			}
		})
	}
}

// Mcp-Name follows each request's name, also when the transport reuses the last value.
func TestMcpNameHeaderPerRequest(t *testing.T) {
	got := make(chan []string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := postedMsg(t, r)
		got <- r.Header.Values("Mcp-Name")
		w.Header().Set("Content-Type", "application/json")
		w.Write(jsonrpc.NewResult(m.ID, json.RawMessage(`{}`)).Marshal())
	}))
	defer srv.Close()
	tr := newHTTPTransport(t, srv.URL, nil)
	for i, tc := range []struct {
		method, params string
		want           []string
	}{
		{"tools/call", `{"name":"a"}`, []string{"a"}},
		{"tools/call", `{"name":"b"}`, []string{"b"}},
		{"tools/call", `{"name":"b"}`, []string{"b"}},
		{"prompts/get", `{"name":"a"}`, []string{"a"}},
		{"tools/call", `{"name":"q\"x"}`, []string{`q"x`}},
		{"resources/read", `{"uri":"file:///x"}`, []string{"file:///x"}},
		{"tools/call", `{"name":7}`, nil},
		{"tools/call", `{"name":"a"}`, []string{"a"}},
	} {
		if _, err := tr.Call(context.Background(), mkRequest(strconv.Itoa(i+1), tc.method, tc.params)); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if h := <-got; !slices.Equal(h, tc.want) {
			t.Errorf("call %d (%s %s): Mcp-Name %q, want %q", i, tc.method, tc.params, h, tc.want)
		}
	}
}

// Calls in flight end when the transport ends, by Close or by another request finding
// the session gone; a call made after that fails at once.
func TestStreamableEndStopsCallsInFlight(t *testing.T) {
	for _, how := range []string{"close", "session lost"} {
		t.Run(how, func(t *testing.T) {
			release := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodPost {
					w.WriteHeader(http.StatusMethodNotAllowed)
					return
				}
				m := postedMsg(t, r)
				if m.Method == "initialize" {
					w.Header().Set("Mcp-Session-Id", "s1")
					w.Header().Set("Content-Type", "application/json")
					w.Write(jsonrpc.NewResult(m.ID, json.RawMessage(`{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"f","version":"1"}}`)).Marshal())
					return
				}
				if m.Method == "ping" {
					http.Error(w, "no such session", http.StatusNotFound)
					return
				}
				sseBegin(w) // the answer never comes
				select {
				case <-release:
				case <-r.Context().Done():
				}
			}))
			defer srv.Close()
			defer close(release) // before srv.Close, which waits for the handlers
			tr := newHTTPTransport(t, srv.URL, nil)
			if _, err := tr.Call(context.Background(), mkRequest("0", "initialize", `{}`)); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				_, err := tr.Call(context.Background(), mkRequest("1", "tools/call", `{"name":"slow"}`))
				done <- err
			}()
			time.Sleep(50 * time.Millisecond) // the call is waiting for its answer
			if how == "close" {
				tr.Close()
			} else if _, err := tr.Call(context.Background(), mkRequest("2", "ping", "")); err == nil {
				t.Fatal("a 404 to a request with the session id was not an error")
			}
			select {
			case err := <-done:
				if !errors.Is(err, ErrUnavailable) {
					t.Fatalf("the call in flight ended with %v; want ErrUnavailable", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the call in flight did not end with the transport")
			}
			if _, err := tr.Call(context.Background(), mkRequest("3", "tools/call", `{"name":"x"}`)); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("a call after the end: %v; want ErrUnavailable", err)
			}
		})
	}
}
