package streamablehttp_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/gateway"
	gt "github.com/portcullis-mcp/portcullis/internal/gateway/gatewaytest"
	"github.com/portcullis-mcp/portcullis/internal/identity"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
	"github.com/portcullis-mcp/portcullis/internal/transport/streamablehttp"
)

func serverA() *gt.Server {
	return &gt.Server{Name: "a",
		Tools:     []gt.Tool{{Name: "x"}, {Name: "ünï"}},
		Resources: []gt.Resource{{URI: "file:///a/1", Name: "a1"}},
	}
}

func serverB() *gt.Server {
	return &gt.Server{Name: "b", Tools: []gt.Tool{{Name: "y"}}}
}

func TestLegacySession(t *testing.T) {
	a, b := serverA(), serverB()
	f := newFront(t, streamablehttp.Options{}, gateway.Options{}, a, b)
	sid := f.initialize()

	resp := f.post(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"a__x"}}`, "Mcp-Session-Id", sid, "MCP-Protocol-Version", "2025-11-25")
	m := readJSON(t, resp, http.StatusOK)
	if string(m.ID) != "2" || !strings.Contains(string(m.Result), `"a:x"`) {
		t.Errorf("tools/call: %s", m.Marshal())
	}
	if calls := a.Requests("tools/call"); len(calls) != 1 || lookupString(t, calls[0].Params, "name") != "x" {
		t.Errorf("server a saw %v", methods(a.Traffic()))
	}

	t.Run("unknown session", func(t *testing.T) {
		resp := f.post(`{"jsonrpc":"2.0","id":3,"method":"tools/list"}`, "Mcp-Session-Id", "no-such-session")
		wantError(t, resp, http.StatusNotFound, jsonrpc.CodeInvalidRequest)
		for _, method := range []string{http.MethodGet, http.MethodDelete} {
			resp := f.do(method, "", "Mcp-Session-Id", "no-such-session", "Accept", "text/event-stream")
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s: status %d", method, resp.StatusCode)
			}
		}
	})
	t.Run("unsupported protocol version header", func(t *testing.T) {
		resp := f.post(`{"jsonrpc":"2.0","id":4,"method":"tools/list"}`, "Mcp-Session-Id", sid, "MCP-Protocol-Version", "1999-01-01")
		wantError(t, resp, http.StatusBadRequest, jsonrpc.CodeUnsupportedProtocolVersion)
	})
	t.Run("notification", func(t *testing.T) {
		resp := f.post(`{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}`, "Mcp-Session-Id", sid)
		if resp.StatusCode != http.StatusAccepted {
			t.Errorf("status %d", resp.StatusCode)
		}
		if len(a.Requests("notifications/roots/list_changed")) != 1 {
			t.Errorf("notification did not reach a: %v", methods(a.Traffic()))
		}
	})
	t.Run("method not allowed", func(t *testing.T) {
		resp := f.do(http.MethodPut, "{}")
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") == "" {
			t.Errorf("PUT: status %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
		}
		resp = f.do(http.MethodGet, "", "Accept", "text/event-stream")
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("GET without a session: status %d", resp.StatusCode)
		}
		resp = f.do(http.MethodGet, "", "Mcp-Session-Id", sid, "Accept", "application/json")
		if resp.StatusCode != http.StatusNotAcceptable {
			t.Errorf("GET without text/event-stream: status %d", resp.StatusCode)
		}
	})

	t.Run("delete", func(t *testing.T) {
		resp := f.do(http.MethodDelete, "", "Mcp-Session-Id", sid)
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("DELETE: status %d", resp.StatusCode)
		}
		resp = f.post(`{"jsonrpc":"2.0","id":5,"method":"tools/list"}`, "Mcp-Session-Id", sid)
		wantError(t, resp, http.StatusNotFound, jsonrpc.CodeInvalidRequest)
		resp = f.do(http.MethodDelete, "", "Mcp-Session-Id", sid)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("second DELETE: status %d", resp.StatusCode)
		}
		for _, srv := range []*gt.Server{a, b} {
			eventually(t, srv.Name+"'s transport closed", func() bool {
				tr := srv.Transports()
				return len(tr) == 1 && tr[0].Closed()
			})
		}
	})
}

func TestInitializeErrors(t *testing.T) {
	f := newFront(t, streamablehttp.Options{}, gateway.Options{}, serverA())
	resp := f.post(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"capabilities":{}}}`)
	m := readJSON(t, resp, http.StatusOK)
	if m.Error == nil || m.Error.Code != jsonrpc.CodeInvalidParams {
		t.Errorf("initialize without a version: %s", m.Marshal())
	}
	if sid := resp.Header.Get("Mcp-Session-Id"); sid != "" {
		t.Errorf("a failed initialize opened session %q", sid)
	}
}

func TestStandaloneStream(t *testing.T) {
	a, b := serverA(), serverB()
	f := newFront(t, streamablehttp.Options{}, gateway.Options{}, a, b)
	sid := f.initialize()
	resp := f.do(http.MethodGet, "", "Mcp-Session-Id", sid, "Accept", "text/event-stream")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET: status %d", resp.StatusCode)
	}
	ch := events(t, resp)
	if n := b.SendNotification(context.Background(), "notifications/tools/list_changed", nil); n != 1 {
		t.Fatalf("b has %d live transports", n)
	}
	a.SendNotification(context.Background(), "notifications/message", map[string]any{"level": "info", "data": "hello"})
	for _, want := range []string{"notifications/tools/list_changed", "notifications/message"} {
		ev, err := next(t, ch)
		if err != nil {
			t.Fatalf("waiting for %s: %v", want, err)
		}
		if m := ev.msg(t); m.Method != want {
			t.Errorf("got %s, want %s", m.Method, want)
		}
		if ev.ID == "" {
			t.Errorf("standalone event without an id")
		}
	}
}

func TestSSEResponse(t *testing.T) {
	a := serverA()
	a.Handle("tools/call", func(ctx context.Context, r *gt.Request) (any, error) {
		r.T.SendNotification(ctx, "notifications/progress", map[string]any{"progressToken": "p1", "progress": 1})
		return a.Default(ctx, r)
	})
	f := newFront(t, streamablehttp.Options{}, gateway.Options{}, a)
	sid := f.initialize()
	resp := f.post(`{"jsonrpc":"2.0","id":"c1","method":"tools/call","params":{"name":"x","_meta":{"progressToken":"p1"}}}`,
		"Mcp-Session-Id", sid, "Accept", "application/json, text/event-stream")
	evs := all(t, events(t, resp))
	var retry bool
	var data []sseEvent
	for _, ev := range evs {
		retry = retry || ev.Retry != ""
		if ev.Data != "" {
			data = append(data, ev)
		}
	}
	if !retry {
		t.Error("no retry: field")
	}
	if len(data) != 2 {
		t.Fatalf("events %v, want progress then the response", evs)
	}
	if m := data[0].msg(t); m.Method != "notifications/progress" {
		t.Errorf("first event %s", m.Marshal())
	}
	if m := data[1].msg(t); string(m.ID) != `"c1"` || m.Error != nil {
		t.Errorf("last event %s", m.Marshal())
	}
	for _, ev := range data {
		if ev.ID == "" || ev.Event != "message" {
			t.Errorf("event without id or of type %q: %+v", ev.Event, ev)
		}
	}
	if data[0].ID == data[1].ID {
		t.Errorf("event ids repeat: %s", data[0].ID)
	}

	t.Run("replay", func(t *testing.T) {
		resp := f.do(http.MethodGet, "", "Mcp-Session-Id", sid, "Accept", "text/event-stream", "Last-Event-ID", data[0].ID)
		var got []sseEvent
		for _, ev := range all(t, events(t, resp)) {
			if ev.Data != "" {
				got = append(got, ev)
			}
		}
		if len(got) != 1 || got[0].ID != data[1].ID || string(got[0].msg(t).ID) != `"c1"` {
			t.Errorf("replay after %s: %+v, want only the response %s", data[0].ID, got, data[1].ID)
		}
	})
	t.Run("unknown event id", func(t *testing.T) {
		for _, id := range []string{"nonsense", "zzzz_0", data[0].ID + "x"} {
			resp := f.do(http.MethodGet, "", "Mcp-Session-Id", sid, "Accept", "text/event-stream", "Last-Event-ID", id)
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("Last-Event-ID %q: status %d", id, resp.StatusCode)
			}
		}
	})
	t.Run("other session's event", func(t *testing.T) {
		other := f.initialize()
		resp := f.do(http.MethodGet, "", "Mcp-Session-Id", other, "Accept", "text/event-stream", "Last-Event-ID", data[0].ID)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("another session resumed this one's stream: status %d", resp.StatusCode)
		}
	})
}

// A client that loses the response stream of a call in progress answers the server's
// request on a new POST and resumes the stream with Last-Event-ID.
func TestResumeAfterDisconnect(t *testing.T) {
	for _, mode := range []string{"call ctx", "background ctx"} {
		t.Run(mode, func(t *testing.T) {
			a := serverA()
			a.Handle("tools/call", func(ctx context.Context, r *gt.Request) (any, error) {
				sctx := ctx
				if mode == "background ctx" {
					sctx = context.Background()
				}
				resp, err := r.T.SendRequest(sctx, "sampling/createMessage", map[string]any{"messages": []any{}, "maxTokens": 5})
				if err != nil {
					return nil, err
				}
				if resp.Error != nil {
					return nil, resp.Error
				}
				return map[string]any{"content": []any{map[string]any{"type": "text", "text": "client said " + string(resp.Result)}}}, nil
			})
			f := newFront(t, streamablehttp.Options{}, gateway.Options{}, a)
			sid := f.initialize()
			resp := f.post(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x"}}`,
				"Mcp-Session-Id", sid, "Accept", "application/json, text/event-stream")
			ch := events(t, resp)
			first, err := next(t, ch)
			if err != nil {
				t.Fatal(err)
			}
			ask := first.msg(t)
			if ask.Method != "sampling/createMessage" || !ask.IsRequest() {
				t.Fatalf("first event %s, want the sampling request", ask.Marshal())
			}
			resp.Body.Close() // the connection drops

			answer := jsonrpc.NewResult(ask.ID, json.RawMessage(`{"role":"assistant","content":{"type":"text","text":"forty-two"},"model":"m"}`))
			r := f.post(string(answer.Marshal()), "Mcp-Session-Id", sid)
			if r.StatusCode != http.StatusAccepted {
				t.Fatalf("answer POST: status %d", r.StatusCode)
			}

			r = f.do(http.MethodGet, "", "Mcp-Session-Id", sid, "Accept", "text/event-stream", "Last-Event-ID", first.ID)
			rest, err := next(t, events(t, r))
			if err != nil {
				t.Fatalf("resumed stream: %v", err)
			}
			m := rest.msg(t)
			if string(m.ID) != "7" || !strings.Contains(string(m.Result), "forty-two") {
				t.Errorf("resumed stream gave %s, want the call's response with the client's answer", m.Marshal())
			}
		})
	}
}

func TestDNSRebinding(t *testing.T) {
	f := newFront(t, streamablehttp.Options{AllowedOrigins: []string{"https://app.example"}, AllowedHosts: []string{"mcp.example"}},
		gateway.Options{}, serverA())
	tests := []struct {
		name   string
		hdr    []string
		status int
	}{
		{"evil origin", []string{"Origin", "http://evil.example"}, http.StatusForbidden},
		{"null origin", []string{"Origin", "null"}, http.StatusForbidden},
		{"evil origin on localhost port", []string{"Origin", "http://evil.example:1234"}, http.StatusForbidden},
		{"localhost lookalike", []string{"Origin", "http://localhost.evil.example"}, http.StatusForbidden},
		{"file origin", []string{"Origin", "file://localhost"}, http.StatusForbidden},
		{"evil host", []string{"Host", "evil.example"}, http.StatusForbidden},
		{"evil host with port", []string{"Host", "evil.example:80"}, http.StatusForbidden},
		{"localhost origin", []string{"Origin", "http://localhost:1234"}, http.StatusOK},
		{"loopback origin", []string{"Origin", "http://127.0.0.1:9"}, http.StatusOK},
		{"ipv6 loopback origin", []string{"Origin", "http://[::1]:9"}, http.StatusOK},
		{"allowed origin", []string{"Origin", "https://app.example"}, http.StatusOK},
		{"allowed host", []string{"Host", "mcp.example:8080"}, http.StatusOK},
		{"localhost host", []string{"Host", "localhost:1"}, http.StatusOK},
		{"no origin", nil, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := f.post(initBody, tt.hdr...)
			m := readJSON(t, resp, tt.status)
			if tt.status == http.StatusForbidden {
				if m.Error == nil {
					t.Errorf("403 without a JSON-RPC error")
				}
				if resp.Header.Get("Mcp-Session-Id") != "" {
					t.Errorf("refused request opened a session")
				}
			}
		})
	}
}

func TestMessageRejections(t *testing.T) {
	a := serverA()
	f := newFront(t, streamablehttp.Options{}, gateway.Options{Limits: jsonrpc.Limits{MaxBytes: 2048}}, a)
	sid := f.initialize()
	big := `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"x","arguments":{"s":"` + strings.Repeat("A", 4096) + `"}}}`
	tests := []struct {
		name   string
		body   string
		status int
		code   int
		in     string // a substring of the error message
	}{
		{"oversize", big, http.StatusRequestEntityTooLarge, jsonrpc.CodeInvalidRequest, "2048"},
		{"invalid JSON", `{"jsonrpc":"2.0","id":1,"method":`, http.StatusBadRequest, jsonrpc.CodeParseError, ""},
		{"not an object", `"hello"`, http.StatusBadRequest, jsonrpc.CodeInvalidRequest, ""},
		{"batch", `[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]`, http.StatusBadRequest, jsonrpc.CodeInvalidRequest, "batch"},
		{"duplicate keys", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","name":"rm_rf"}}`, http.StatusBadRequest, jsonrpc.CodeParseError, `"name"`},
		{"case-colliding keys", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","Name":"rm_rf"}}`, http.StatusBadRequest, jsonrpc.CodeParseError, "Name"},
		{"no jsonrpc", `{"id":1,"method":"tools/list"}`, http.StatusBadRequest, jsonrpc.CodeInvalidRequest, "jsonrpc"},
		{"empty", ``, http.StatusBadRequest, jsonrpc.CodeParseError, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a.ClearReceived()
			for _, session := range []string{sid, ""} {
				hdr := []string{}
				if session != "" {
					hdr = []string{"Mcp-Session-Id", session}
				}
				m := wantError(t, f.post(tt.body, hdr...), tt.status, tt.code)
				if !strings.Contains(m.Error.Message, tt.in) {
					t.Errorf("message %q does not mention %q", m.Error.Message, tt.in)
				}
			}
			if tr := a.Traffic(); len(tr) != 0 {
				t.Errorf("server saw %v", methods(tr))
			}
		})
	}
	t.Run("id kept in a parse error", func(t *testing.T) {
		m := wantError(t, f.post(`{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"a":1,"a":2}}`, "Mcp-Session-Id", sid), http.StatusBadRequest, jsonrpc.CodeParseError)
		if string(m.ID) != "42" {
			t.Errorf("error id %s, want 42", m.ID)
		}
	})
}

func TestPrincipals(t *testing.T) {
	a := serverA()
	auth := func(r *http.Request) (identity.Principal, error) {
		u := r.Header.Get("X-Test-User")
		if u == "" {
			return identity.Principal{}, errors.New("who are you?")
		}
		return identity.Principal{ID: u, Method: "apikey"}, nil
	}
	f := newFront(t, streamablehttp.Options{Authenticate: auth}, gateway.Options{}, a)

	if resp := f.post(initBody); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unauthenticated: status %d", resp.StatusCode)
	}
	sid := f.initialize("X-Test-User", "alice")
	a.ClearReceived()

	call := `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"x"}}`
	wantError(t, f.post(call, "Mcp-Session-Id", sid, "X-Test-User", "mallory"), http.StatusNotFound, jsonrpc.CodeInvalidRequest)
	answer := `{"jsonrpc":"2.0","id":"pc-1","result":{}}`
	wantError(t, f.post(answer, "Mcp-Session-Id", sid, "X-Test-User", "mallory"), http.StatusNotFound, jsonrpc.CodeInvalidRequest)
	for _, method := range []string{http.MethodGet, http.MethodDelete} {
		if resp := f.do(method, "", "Mcp-Session-Id", sid, "X-Test-User", "mallory", "Accept", "text/event-stream"); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s by another principal: status %d", method, resp.StatusCode)
		}
	}
	if tr := a.Traffic(); len(tr) != 0 {
		t.Errorf("server saw %v from another principal", methods(tr))
	}
	// The owner's session is intact.
	m := readJSON(t, f.post(call, "Mcp-Session-Id", sid, "X-Test-User", "alice"), http.StatusOK)
	if m.Error != nil {
		t.Errorf("owner's call after the attempts: %s", m.Marshal())
	}
}

// modernHeaders are the headers of a 2026-07-28 request for method (and name, for the
// methods that need Mcp-Name).
func modernHeaders(method string, name ...string) []string {
	h := []string{"MCP-Protocol-Version", "2026-07-28", "Mcp-Method", method}
	for _, n := range name {
		h = append(h, "Mcp-Name", n)
	}
	return h
}

const meta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"m","version":"1"}}`

func modernBody(method, fields string) string {
	params := "{" + meta + "}"
	if fields != "" {
		params = "{" + fields + "," + meta + "}"
	}
	return `{"jsonrpc":"2.0","id":11,"method":"` + method + `","params":` + params + `}`
}

func b64(s string) string { return "=?base64?" + base64.StdEncoding.EncodeToString([]byte(s)) + "?=" }

func TestModernRequests(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		hdr    []string
		status int
		code   int  // 0: a result
		server bool // whether server a must see the request
	}{
		{name: "tools/list", body: modernBody("tools/list", ""), hdr: modernHeaders("tools/list"), status: 200, server: true},
		{name: "tools/call", body: modernBody("tools/call", `"name":"a__x"`), hdr: modernHeaders("tools/call", "a__x"), status: 200, server: true},
		{name: "missing _meta", body: `{"jsonrpc":"2.0","id":11,"method":"tools/list","params":{}}`, hdr: modernHeaders("tools/list"),
			status: 400, code: jsonrpc.CodeInvalidParams},
		{name: "no params", body: `{"jsonrpc":"2.0","id":11,"method":"tools/list"}`, hdr: modernHeaders("tools/list"),
			status: 400, code: jsonrpc.CodeInvalidParams},
		{name: "Mcp-Name of another tool", body: modernBody("tools/call", `"name":"a__x"`), hdr: modernHeaders("tools/call", "b__y"),
			status: 400, code: jsonrpc.CodeHeaderMismatch},
		{name: "Mcp-Name missing", body: modernBody("tools/call", `"name":"a__x"`), hdr: modernHeaders("tools/call"),
			status: 400, code: jsonrpc.CodeHeaderMismatch},
		{name: "Mcp-Name twice", body: modernBody("tools/call", `"name":"a__x"`), hdr: modernHeaders("tools/call", "a__x", "a__x"),
			status: 400, code: jsonrpc.CodeHeaderMismatch},
		{name: "Mcp-Name base64", body: modernBody("tools/call", `"name":"a__x"`), hdr: modernHeaders("tools/call", b64("a__x")), status: 200, server: true},
		{name: "Mcp-Name base64 non-ASCII", body: modernBody("tools/call", `"name":"a__ünï"`), hdr: modernHeaders("tools/call", b64("a__ünï")), status: 200, server: true},
		{name: "Mcp-Name base64 of another tool", body: modernBody("tools/call", `"name":"a__x"`), hdr: modernHeaders("tools/call", b64("b__y")),
			status: 400, code: jsonrpc.CodeHeaderMismatch},
		{name: "Mcp-Name invalid base64", body: modernBody("tools/call", `"name":"a__x"`), hdr: modernHeaders("tools/call", "=?base64?%%%?="),
			status: 400, code: jsonrpc.CodeHeaderMismatch},
		{name: "Mcp-Name literal sentinel must be encoded", body: modernBody("tools/call", `"name":"=?base64?YQ==?="`), hdr: modernHeaders("tools/call", "=?base64?YQ==?="),
			status: 400, code: jsonrpc.CodeHeaderMismatch},
		{name: "prompts/get Mcp-Name mismatch", body: modernBody("prompts/get", `"name":"a__p"`), hdr: modernHeaders("prompts/get", "a__q"),
			status: 400, code: jsonrpc.CodeHeaderMismatch},
		{name: "resources/read Mcp-Name is the uri", body: modernBody("resources/read", `"uri":"file:///a/1"`), hdr: modernHeaders("resources/read", "file:///a/2"),
			status: 400, code: jsonrpc.CodeHeaderMismatch},
		{name: "missing Mcp-Method", body: modernBody("tools/list", ""), hdr: []string{"MCP-Protocol-Version", "2026-07-28"},
			status: 400, code: jsonrpc.CodeHeaderMismatch},
		{name: "Mcp-Method mismatch", body: modernBody("tools/call", `"name":"a__x"`), hdr: []string{"MCP-Protocol-Version", "2026-07-28", "Mcp-Method", "tools/list", "Mcp-Name", "a__x"},
			status: 400, code: jsonrpc.CodeHeaderMismatch},
		{name: "Mcp-Method case differs", body: modernBody("tools/list", ""), hdr: []string{"MCP-Protocol-Version", "2026-07-28", "Mcp-Method", "Tools/List"},
			status: 400, code: jsonrpc.CodeHeaderMismatch},
		{name: "missing version header", body: modernBody("tools/list", ""), hdr: []string{"Mcp-Method", "tools/list"},
			status: 400, code: jsonrpc.CodeHeaderMismatch},
		{name: "version header mismatch", body: modernBody("tools/list", ""), hdr: []string{"MCP-Protocol-Version", "2025-11-25", "Mcp-Method", "tools/list"},
			status: 400, code: jsonrpc.CodeHeaderMismatch},
		{name: "unsupported version", body: strings.ReplaceAll(modernBody("tools/list", ""), "2026-07-28", "2099-01-01"),
			hdr: []string{"MCP-Protocol-Version", "2099-01-01", "Mcp-Method", "tools/list"}, status: 400, code: jsonrpc.CodeUnsupportedProtocolVersion},
		{name: "removed method", body: modernBody("ping", ""), hdr: modernHeaders("ping"), status: 404, code: jsonrpc.CodeMethodNotFound},
		{name: "modern initialize", body: modernBody("initialize", `"protocolVersion":"2026-07-28","capabilities":{},"clientInfo":{"name":"c","version":"1"}`),
			hdr: modernHeaders("initialize"), status: 404, code: jsonrpc.CodeMethodNotFound},
		{name: "unknown method", body: modernBody("vendor/unknown", ""), hdr: modernHeaders("vendor/unknown"), status: 404, code: jsonrpc.CodeMethodNotFound},
		{name: "request without session or _meta", body: `{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"a__x"}}`, hdr: nil,
			status: 400, code: jsonrpc.CodeInvalidParams},
		{name: "response without session", body: `{"jsonrpc":"2.0","id":11,"result":{}}`, status: 400, code: jsonrpc.CodeInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := serverA(), serverB()
			a.Prompts = []gt.Prompt{{Name: "p"}}
			f := newFront(t, streamablehttp.Options{}, gateway.Options{}, a, b)
			resp := f.post(tt.body, tt.hdr...)
			m := readJSON(t, resp, tt.status)
			switch {
			case tt.code == 0 && m.Error != nil:
				t.Fatalf("error %s", m.Marshal())
			case tt.code != 0 && (m.Error == nil || m.Error.Code != tt.code):
				t.Fatalf("want code %d: %s", tt.code, m.Marshal())
			}
			if tt.code == 0 {
				if got := lookupString(t, m.Result, "resultType"); got != "complete" {
					t.Errorf("resultType %q", got)
				}
			}
			if tt.code == 0 && string(m.ID) != "11" {
				t.Errorf("id %s", m.ID)
			}
			traffic := append(a.Traffic(), b.Traffic()...)
			if tt.server && len(a.Traffic()) == 0 {
				t.Errorf("server a saw nothing")
			}
			if !tt.server && len(traffic) != 0 {
				t.Errorf("refused request reached the servers: %v", methods(traffic))
			}
			if resp.Header.Get("Mcp-Session-Id") != "" {
				t.Errorf("a sessionless request got a session id")
			}
		})
	}
}

func TestModernDetails(t *testing.T) {
	a := serverA()
	a.Handle("tools/call", func(ctx context.Context, r *gt.Request) (any, error) {
		if r.Name() == "ünï" {
			r.T.SendNotification(ctx, "notifications/progress", map[string]any{"progressToken": "t", "progress": 1})
		}
		return a.Default(ctx, r)
	})
	f := newFront(t, streamablehttp.Options{}, gateway.Options{}, a)

	t.Run("Mcp-Name base64 reaches the server decoded", func(t *testing.T) {
		a.ClearReceived()
		body := modernBody("tools/call", `"name":"x"`)
		m := readJSON(t, f.post(body, modernHeaders("tools/call", b64("x"))...), http.StatusOK)
		if m.Error != nil {
			t.Fatal(m.Marshal())
		}
		if calls := a.Requests("tools/call"); len(calls) != 1 || lookupString(t, calls[0].Params, "name") != "x" {
			t.Errorf("server saw %v", methods(a.Traffic()))
		}
	})
	t.Run("plain JSON when nothing comes before the response", func(t *testing.T) {
		resp := f.post(modernBody("tools/call", `"name":"x"`), append(modernHeaders("tools/call", "x"), "Accept", "application/json, text/event-stream")...)
		readJSON(t, resp, http.StatusOK)
	})
	t.Run("SSE when the server sends progress", func(t *testing.T) {
		body := strings.Replace(modernBody("tools/call", `"name":"ünï"`), `"_meta":{`, `"_meta":{"progressToken":"t",`, 1)
		resp := f.post(body,
			append(modernHeaders("tools/call", b64("ünï")), "Accept", "application/json, text/event-stream")...)
		var got []string
		for _, ev := range all(t, events(t, resp)) {
			if ev.Data != "" {
				m := ev.msg(t)
				got = append(got, m.Method)
				if m.Method == "" && lookupString(t, m.Result, "resultType") != "complete" {
					t.Errorf("response on the stream not decorated: %s", m.Marshal())
				}
			}
		}
		if len(got) != 2 || got[0] != "notifications/progress" || got[1] != "" {
			t.Errorf("stream carried %q, want progress then the response", got)
		}
	})
	t.Run("server/discover", func(t *testing.T) {
		m := readJSON(t, f.post(modernBody("server/discover", ""), modernHeaders("server/discover")...), http.StatusOK)
		if v, _ := jsonrpc.Lookup(m.Result, "supportedVersions"); !strings.Contains(string(v), "2026-07-28") {
			t.Errorf("server/discover: %s", m.Marshal())
		}
	})
	t.Run("notification", func(t *testing.T) {
		resp := f.post(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}`, "MCP-Protocol-Version", "2026-07-28", "Mcp-Method", "notifications/cancelled")
		if resp.StatusCode != http.StatusAccepted {
			t.Errorf("status %d", resp.StatusCode)
		}
	})
	t.Run("GET needs a session", func(t *testing.T) {
		resp := f.do(http.MethodGet, "", "Accept", "text/event-stream", "MCP-Protocol-Version", "2026-07-28")
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("status %d", resp.StatusCode)
		}
	})
}

// A call whose client disconnected and never resumed is cancelled after ResumeWindow, not
// before.
func TestResumeWindowCancels(t *testing.T) {
	const window = 150 * time.Millisecond
	a := serverA()
	started := make(chan struct{})
	ended := make(chan time.Time, 1)
	a.Handle("tools/call", func(ctx context.Context, r *gt.Request) (any, error) {
		r.T.SendNotification(ctx, "notifications/progress", map[string]any{"progressToken": "t", "progress": 1})
		close(started)
		select {
		case <-ctx.Done():
			ended <- time.Now()
		case <-time.After(waitLong):
		}
		return nil, ctx.Err()
	})
	f := newFront(t, streamablehttp.Options{ResumeWindow: window}, gateway.Options{}, a)
	sid := f.initialize()
	resp := f.post(`{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"x"}}`,
		"Mcp-Session-Id", sid, "Accept", "text/event-stream")
	if _, err := next(t, events(t, resp)); err != nil {
		t.Fatal(err)
	}
	<-started
	gone := time.Now()
	resp.Body.Close()
	select {
	case at := <-ended:
		if d := at.Sub(gone); d < window/2 {
			t.Errorf("call cancelled %v after the disconnect, before the resume window of %v", d, window)
		}
	case <-time.After(waitLong):
		t.Fatal("call not cancelled after the resume window")
	}
}

// A client that takes only JSON gets the server's requests on its standalone GET stream and
// answers them with a POST.
func TestServerRequestOnStandaloneStream(t *testing.T) {
	a := serverA()
	a.Handle("tools/call", func(ctx context.Context, r *gt.Request) (any, error) {
		resp, err := r.T.SendRequest(ctx, "roots/list", nil)
		if err != nil {
			return nil, err
		}
		if resp.Error != nil {
			return nil, resp.Error
		}
		return map[string]any{"content": []any{map[string]any{"type": "text", "text": string(resp.Result)}}}, nil
	})
	f := newFront(t, streamablehttp.Options{}, gateway.Options{}, a)
	sid := f.initialize()
	get := f.do(http.MethodGet, "", "Mcp-Session-Id", sid, "Accept", "text/event-stream")
	ch := events(t, get)

	result := make(chan *http.Response, 1)
	go func() {
		result <- f.post(`{"jsonrpc":"2.0","id":21,"method":"tools/call","params":{"name":"x"}}`, "Mcp-Session-Id", sid)
	}()
	ev, err := next(t, ch)
	if err != nil {
		t.Fatalf("no request on the standalone stream: %v", err)
	}
	ask := ev.msg(t)
	if ask.Method != "roots/list" || !ask.IsRequest() {
		t.Fatalf("standalone stream carried %s", ask.Marshal())
	}
	answer := jsonrpc.NewResult(ask.ID, json.RawMessage(`{"roots":[{"uri":"file:///home/me"}]}`))
	if r := f.post(string(answer.Marshal()), "Mcp-Session-Id", sid); r.StatusCode != http.StatusAccepted {
		t.Fatalf("answer: status %d", r.StatusCode)
	}
	select {
	case resp := <-result:
		m := readJSON(t, resp, http.StatusOK)
		if !strings.Contains(string(m.Result), "file:///home/me") {
			t.Errorf("tool result %s does not carry the client's answer", m.Marshal())
		}
	case <-time.After(waitLong):
		t.Fatal("the call did not finish")
	}
}

// A client whose standalone stream dropped resumes it without losing messages.
func TestStandaloneStreamResumption(t *testing.T) {
	a := serverA()
	f := newFront(t, streamablehttp.Options{}, gateway.Options{}, a)
	sid := f.initialize()
	get := f.do(http.MethodGet, "", "Mcp-Session-Id", sid, "Accept", "text/event-stream")
	ch := events(t, get)
	a.SendNotification(context.Background(), "notifications/message", map[string]any{"level": "info", "data": "one"})
	first, err := next(t, ch)
	if err != nil {
		t.Fatal(err)
	}
	get.Body.Close()
	a.SendNotification(context.Background(), "notifications/message", map[string]any{"level": "info", "data": "two"})
	a.SendNotification(context.Background(), "notifications/message", map[string]any{"level": "info", "data": "three"})

	again := f.do(http.MethodGet, "", "Mcp-Session-Id", sid, "Accept", "text/event-stream", "Last-Event-ID", first.ID)
	ch = events(t, again)
	for _, want := range []string{"two", "three"} {
		ev, err := next(t, ch)
		if err != nil {
			t.Fatalf("waiting for %q: %v", want, err)
		}
		if got := lookupString(t, ev.msg(t).Params, "data"); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

func TestIdleSessionExpires(t *testing.T) {
	a := serverA()
	f := newFront(t, streamablehttp.Options{}, gateway.Options{SessionIdleTimeout: 100 * time.Millisecond}, a)
	sid := f.initialize()
	eventually(t, "the idle session's server closed", func() bool {
		tr := a.Transports()
		return len(tr) == 1 && tr[0].Closed()
	})
	resp := f.post(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`, "Mcp-Session-Id", sid)
	wantError(t, resp, http.StatusNotFound, jsonrpc.CodeInvalidRequest)
}
