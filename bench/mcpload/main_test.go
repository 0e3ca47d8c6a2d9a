package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeServer is a minimal Streamable HTTP MCP server: it answers tools/call
// alternately with application/json and with an event stream that carries a
// notification before the response.
type fakeServer struct {
	sessions, deletes, calls atomic.Int64
	mu                       sync.Mutex
	problems                 []string
}

func (f *fakeServer) problem(format string, a ...any) {
	f.mu.Lock()
	f.problems = append(f.problems, fmt.Sprintf(format, a...))
	f.mu.Unlock()
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if got := r.Header.Get("Authorization"); got != "Bearer t0ken" {
		f.problem("%s %s: Authorization = %q", r.Method, r.URL.Path, got)
	}
	if r.Method == http.MethodDelete {
		if r.Header.Get("Mcp-Session-Id") == "" {
			f.problem("DELETE without session id")
		}
		f.deletes.Add(1)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var msg struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params struct {
			Name      string          `json:"name"`
			Arguments json.RawMessage `json:"arguments"`
		} `json:"params"`
	}
	if err := json.NewDecoder(r.Body).Decode(&msg); err != nil {
		f.problem("bad body: %v", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if a := r.Header.Get("Accept"); !strings.Contains(a, "application/json") || !strings.Contains(a, "text/event-stream") {
		f.problem("Accept = %q", a)
	}
	switch msg.Method {
	case "initialize":
		w.Header().Set("Mcp-Session-Id", fmt.Sprintf("s%d", f.sessions.Add(1)))
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"fake","version":"1"}}}`, msg.ID)
		return
	case "notifications/initialized":
		w.WriteHeader(http.StatusAccepted)
		return
	case "tools/call":
	default:
		f.problem("unexpected method %q", msg.Method)
		return
	}
	if r.Header.Get("Mcp-Session-Id") == "" || r.Header.Get("Mcp-Protocol-Version") != "2025-11-25" {
		f.problem("tools/call headers: %v", r.Header)
	}
	if string(msg.Params.Arguments) != `{"message":"hello"}` {
		f.problem("arguments = %s", msg.Params.Arguments)
	}
	result := `{"content":[{"type":"text","text":"hello"}]}`
	if msg.Params.Name == "bad" {
		result = `{"content":[{"type":"text","text":"no good"}],"isError":true}`
	}
	if msg.Params.Name == "hang" { // answers, but never ends the stream
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":%s}\n\n", msg.ID, result)
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		return
	}
	if f.calls.Add(1)%2 == 0 {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":%s}`, msg.ID, result)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	fmt.Fprintf(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"x\"}}\n\n")
	w.(http.Flusher).Flush()
	fmt.Fprintf(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":%s}\n\n", msg.ID, result)
}

func TestRunAgainstFakeServer(t *testing.T) {
	tests := []struct {
		tool      string
		wantErrs  bool
		errSubstr string
	}{
		{tool: "echo"},
		{tool: "bad", wantErrs: true, errSubstr: "isError: no good"},
	}
	for _, tc := range tests {
		t.Run(tc.tool, func(t *testing.T) {
			f := &fakeServer{}
			srv := httptest.NewServer(f)
			defer srv.Close()
			u, _ := url.Parse(srv.URL + "/mcp")
			cfg := config{
				url: u, sessions: 3, calls: 60, tool: tc.tool,
				args:     json.RawMessage(`{"message":"hello"}`),
				headers:  http.Header{"Authorization": {"Bearer t0ken"}},
				protocol: defaultProtocol, timeout: 5 * time.Second,
			}
			rep, err := run(newClient(cfg), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if len(f.problems) > 0 {
				t.Fatalf("server saw problems: %q", f.problems)
			}
			if rep.Calls != 60 || rep.TotalCalls != 60 || f.calls.Load() != 60 {
				t.Fatalf("calls = %d, total = %d, server saw %d; want 60", rep.Calls, rep.TotalCalls, f.calls.Load())
			}
			if f.sessions.Load() != 3 || f.deletes.Load() != 3 {
				t.Fatalf("sessions = %d, deletes = %d; want 3 and 3", f.sessions.Load(), f.deletes.Load())
			}
			if tc.wantErrs {
				if rep.Errors != 60 || !strings.Contains(rep.FirstError, tc.errSubstr) {
					t.Fatalf("errors = %d, first = %q; want 60 with %q", rep.Errors, rep.FirstError, tc.errSubstr)
				}
				return
			}
			if rep.Errors != 0 || rep.P50us <= 0 || rep.P50us > rep.P99us || rep.P99us > rep.MaxUs || rep.CallsPerSec <= 0 {
				t.Fatalf("unexpected report %+v", rep)
			}
		})
	}
}

// A server that keeps an event stream open after its response must not hang
// mcpload: the call fails after -timeout and the session goes on.
func TestRunTimeout(t *testing.T) {
	f := &fakeServer{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	u, _ := url.Parse(srv.URL + "/mcp")
	cfg := config{
		url: u, sessions: 2, calls: 4, tool: "hang",
		args:     json.RawMessage(`{"message":"hello"}`),
		headers:  http.Header{"Authorization": {"Bearer t0ken"}},
		protocol: defaultProtocol, timeout: 200 * time.Millisecond,
	}
	start := time.Now()
	rep, err := run(newClient(cfg), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Calls != 4 || rep.Errors != 4 || !strings.Contains(rep.FirstError, "no complete response within 200ms") {
		t.Fatalf("calls = %d, errors = %d, first = %q; want 4 timeouts", rep.Calls, rep.Errors, rep.FirstError)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("run took %v", d)
	}
}
