package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

// fakeSSEServer is a fake MCP 2024-11-05 server: GET /sse streams its messages, POST
// /messages takes the client's. tools/call asks the client for a sampling first.
type fakeSSEServer struct {
	t        *testing.T
	srv      *httptest.Server
	endpoint string // the endpoint event's data; "" means the default relative URL
	out      chan *jsonrpc.Message
	endAfter bool // end the stream after the endpoint event

	mu      sync.Mutex
	pending map[string]jsonrpc.ID // sampling request id -> the call waiting for it
	posts   []string
}

func newFakeSSEServer(t *testing.T, endpoint string) *fakeSSEServer {
	s := &fakeSSEServer{t: t, endpoint: endpoint, out: make(chan *jsonrpc.Message, 16), pending: map[string]jsonrpc.ID{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /sse", s.stream)
	mux.HandleFunc("POST /messages", s.post)
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	return s
}

func (s *fakeSSEServer) stream(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Accept") != "text/event-stream" || r.Header.Get("Authorization") != "Bearer k" {
		s.t.Errorf("GET headers %v", r.Header)
	}
	sseBegin(w)
	ep := s.endpoint
	if ep == "" {
		ep = "/messages?session_id=abc"
	}
	sseSend(w, ": hello\n\nevent: endpoint\ndata: "+ep+"\n\n")
	if s.endAfter {
		return
	}
	for {
		select {
		case m := <-s.out:
			sseSend(w, sseEvent(m))
		case <-r.Context().Done():
			return
		}
	}
}

func (s *fakeSSEServer) post(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("session_id") != "abc" || r.Header.Get("Content-Type") != "application/json" {
		s.t.Errorf("POST %s headers %v", r.URL, r.Header)
	}
	m := postedMsg(s.t, r)
	w.WriteHeader(http.StatusAccepted)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.posts = append(s.posts, m.Method+string(m.ID))
	switch {
	case m.Method == "tools/call":
		sid := fmt.Sprintf(`"sampling-%s"`, m.ID)
		s.pending[sid] = m.ID
		s.out <- jsonrpc.NewRequest(jsonrpc.ID(sid), "sampling/createMessage", map[string]any{"maxTokens": 1})
	case m.Method == "ping":
		s.out <- jsonrpc.NewResult(m.ID, nil)
	case m.IsResponse():
		if id := s.pending[string(m.ID)]; id != nil {
			s.out <- jsonrpc.NewResult(id, map[string]any{"sampled": json.RawMessage(m.Result)})
		}
	}
}

func TestSSECallsAndServerRequests(t *testing.T) {
	ls := newFakeSSEServer(t, "")
	in := func(ctx context.Context, m *jsonrpc.Message) *jsonrpc.Message {
		if m.Method != "sampling/createMessage" {
			return nil
		}
		return jsonrpc.NewResult(m.ID, json.RawMessage(`{"text":"hello"}`))
	}
	tr, err := NewSSE(context.Background(), ls.srv.URL+"/sse", HTTPOptions{Name: "legacy", Header: http.Header{"Authorization": {"Bearer k"}}}, in)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if got := tr.postURL.String(); got != ls.srv.URL+"/messages?session_id=abc" {
		t.Errorf("message URL %s", got)
	}
	ctx := context.Background()
	resp, err := tr.Call(ctx, mkRequest(`"c1"`, "tools/call", `{"name":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.ID) != `"c1"` || string(resp.Result) != `{"sampled":{"text":"hello"}}` {
		t.Errorf("response %s", resp.Marshal())
	}
	if err := tr.Notify(ctx, jsonrpc.NewNotification("notifications/initialized", nil)); err != nil {
		t.Fatal(err)
	}
	if resp, err := tr.Call(ctx, mkRequest("2", "ping", "")); err != nil || string(resp.ID) != "2" {
		t.Fatalf("ping: %v %v", resp, err)
	}
	tr.SetSession("ignored", "2024-11-05")
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-tr.Done():
	case <-time.After(time.Second):
		t.Fatal("Done open after Close")
	}
	if _, err := tr.Call(ctx, mkRequest("3", "ping", "")); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Call after Close: %v", err)
	}
}

func TestSSEEndpointOrigin(t *testing.T) {
	tests := []struct {
		endpoint string
		ok       bool
	}{
		{"/messages?session_id=abc", true},
		{"messages?session_id=abc", true},
		{"{base}/messages?session_id=abc", true},
		{"http://evil.example/messages?session_id=abc", false},
		{"//evil.example/messages?session_id=abc", false},
		{"https://{host}/messages?session_id=abc", false},
		{"http://localhost:1/messages?session_id=abc", false},
	}
	for _, tc := range tests {
		t.Run(tc.endpoint, func(t *testing.T) {
			ls := newFakeSSEServer(t, "")
			ls.endpoint = strings.NewReplacer("{base}", ls.srv.URL, "{host}", strings.TrimPrefix(ls.srv.URL, "http://")).Replace(tc.endpoint)
			tr, err := NewSSE(context.Background(), ls.srv.URL+"/sse", HTTPOptions{Header: http.Header{"Authorization": {"Bearer k"}}}, nil)
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				tr.Close()
				return
			}
			if err == nil {
				tr.Close()
				t.Fatal("another origin was accepted")
			}
			if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "another origin") {
				t.Errorf("error %v", err)
			}
		})
	}
}

func TestSSEConnectFailures(t *testing.T) {
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sseBegin(w)
		<-r.Context().Done()
	}))
	defer silent.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := NewSSE(ctx, silent.URL, HTTPOptions{}, nil)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("no endpoint event: %v", err)
	}

	notFound := httptest.NewServer(http.NotFoundHandler())
	defer notFound.Close()
	_, err = NewSSE(context.Background(), notFound.URL, HTTPOptions{Name: "nf"}, nil)
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != 404 || !errors.Is(err, ErrUnavailable) {
		t.Errorf("404: %v", err)
	}

	if _, err := NewSSE(context.Background(), "ftp://x/sse", HTTPOptions{}, nil); err == nil {
		t.Error("ftp URL accepted")
	}
}

func TestSSEStreamEndClosesTransport(t *testing.T) {
	ls := newFakeSSEServer(t, "")
	ls.endAfter = true
	tr, err := NewSSE(context.Background(), ls.srv.URL+"/sse", HTTPOptions{Name: "legacy", Header: http.Header{"Authorization": {"Bearer k"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	select {
	case <-tr.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done open after the stream ended")
	}
	if err := tr.Err(); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), `server "legacy": the event stream ended`) {
		t.Errorf("Err = %v", err)
	}
	if _, err := tr.Call(context.Background(), mkRequest("1", "ping", "")); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Call: %v", err)
	}
}

func TestSSECancel(t *testing.T) {
	ls := newFakeSSEServer(t, "")
	tr, err := NewSSE(context.Background(), ls.srv.URL+"/sse", HTTPOptions{Header: http.Header{"Authorization": {"Bearer k"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	// The fake server answers nothing to "slow".
	if _, err := tr.Call(ctx, mkRequest("1", "slow", "")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v", err)
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if got := strings.Join(ls.posts, " "); got != "slow1 notifications/cancelled" {
		t.Errorf("posts %s", got)
	}
}
