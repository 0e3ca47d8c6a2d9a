package main

import (
	"strings"
	"testing"
)

func TestFindResponse(t *testing.T) {
	const sse = "text/event-stream"
	tests := []struct {
		name    string
		ct      string
		body    string
		want    int64
		outcome string // "" for success; else a substring of the call's error text
		findErr string // non-empty: findResponse must fail with this substring
	}{
		{
			name: "json",
			ct:   "application/json",
			body: `{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"hi"}]}}`,
			want: 7,
		},
		{
			name: "json with charset",
			ct:   "Application/JSON; charset=utf-8",
			body: `{"jsonrpc":"2.0","id":7,"result":{"content":[]}}`,
			want: 7,
		},
		{
			name:    "json wrong id",
			ct:      "application/json",
			body:    `{"jsonrpc":"2.0","id":8,"result":{}}`,
			want:    7,
			findErr: "no JSON-RPC response",
		},
		{
			name: "sse single event LF",
			ct:   sse,
			body: "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"content\":[]}}\n\n",
			want: 3,
		},
		{
			name: "sse CRLF, no space after colon, comment, id field",
			ct:   sse + "; charset=utf-8",
			body: ": keep-alive\r\nid: abc\r\nevent: message\r\ndata:{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}\r\n\r\n",
			want: 3,
		},
		{
			name: "sse CR line endings",
			ct:   sse,
			body: "event: message\rdata: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}\r\r",
			want: 3,
		},
		{
			name: "sse notifications and another id before ours",
			ct:   sse,
			body: "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":1}}\n\n" +
				"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"sampling/createMessage\",\"params\":{}}\n\n" +
				"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"isError\":true}}\n\n" +
				"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"content\":[]}}\n\n",
			want: 3,
		},
		{
			name: "sse data split over lines",
			ct:   sse,
			body: "data: {\"jsonrpc\":\"2.0\",\ndata: \"id\":42,\ndata: \"result\":{\"content\":[{\"type\":\"text\",\"text\":\"a\"}]}}\n\n",
			want: 42,
		},
		{
			name: "sse last event without blank line",
			ct:   sse,
			body: "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}",
			want: 5,
		},
		{
			name:    "sse tool isError",
			ct:      sse,
			body:    "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":9,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"boom\"}],\"isError\":true}}\n\n",
			want:    9,
			outcome: "tool result isError: boom",
		},
		{
			name:    "sse JSON-RPC error",
			ct:      sse,
			body:    "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":4,\"error\":{\"code\":-32602,\"message\":\"unknown tool \\\"echo\\\"\"}}\n\n",
			want:    4,
			outcome: `JSON-RPC error -32602: unknown tool "echo"`,
		},
		{
			name:    "result and error both missing",
			ct:      "application/json",
			body:    `{"jsonrpc":"2.0","id":1}`,
			want:    1,
			outcome: "neither result nor error",
		},
		{
			name:    "sse without our id",
			ct:      sse,
			body:    "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n",
			want:    2,
			findErr: "no JSON-RPC response",
		},
		{
			name:    "sse string id does not match",
			ct:      sse,
			body:    "data: {\"jsonrpc\":\"2.0\",\"id\":\"2\",\"result\":{}}\n\n",
			want:    2,
			findErr: "no JSON-RPC response",
		},
		{
			name:    "sse bad JSON",
			ct:      sse,
			body:    "data: {not json\n\n",
			want:    2,
			findErr: "decoding event data",
		},
		{
			name:    "sse empty body",
			ct:      sse,
			body:    "",
			want:    2,
			findErr: "no JSON-RPC response",
		},
		{
			name:    "unexpected content type",
			ct:      "text/html",
			body:    "<html>",
			want:    1,
			findErr: "unexpected Content-Type",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var scratch []byte
			var r callResponse
			err := findResponse(tc.ct, []byte(tc.body), tc.want, &scratch, &r)
			if tc.findErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.findErr) {
					t.Fatalf("findResponse error = %v, want one containing %q", err, tc.findErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("findResponse: %v", err)
			}
			got := callOutcome(&r, tc.ct, []byte(tc.body), tc.want)
			if tc.outcome == "" && got != "" {
				t.Fatalf("outcome = %q, want success", got)
			}
			if tc.outcome != "" && !strings.Contains(got, tc.outcome) {
				t.Fatalf("outcome = %q, want one containing %q", got, tc.outcome)
			}
		})
	}
}

func TestScanSSEEvents(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string
	}{
		{"two events", "data: a\n\ndata: b\n\n", []string{"a", "b"}},
		{"multi-line data", "data: a\ndata: b\ndata:c\n\n", []string{"a\nb\nc"}},
		{"only one leading space stripped", "data:  a\n\n", []string{" a"}},
		{"field without colon", "data\n\n", []string{""}},
		{"events without data are skipped", "event: ping\n\n: comment\n\ndata: x\n\n", []string{"x"}},
		{"mixed line endings", "data: a\r\n\r\ndata: b\r\rdata: c\n\n", []string{"a", "b", "c"}},
		{"unterminated last event", "data: a\n\ndata: b", []string{"a", "b"}},
		{"other fields ignored", "id: 1\nretry: 10\nevent: message\ndata: z\n\n", []string{"z"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			var scratch []byte
			scanSSE([]byte(tc.body), &scratch, func(d []byte) bool {
				got = append(got, string(d))
				return false
			})
			if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
				t.Fatalf("events = %q, want %q", got, tc.want)
			}
		})
	}
}

var simpleTextSSE = []byte("event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"This is a simple text response for testing.\"}]}}\n\n")

// The hot path must stay cheap. What remains is encoding/json's own (its
// decode state and parse stack, and the small result struct): about 2 µs per
// response, against ~100 µs of net/http and syscalls per call.
func TestFindResponseAllocs(t *testing.T) {
	var scratch []byte
	var r callResponse
	allocs := testing.AllocsPerRun(100, func() {
		if err := findResponse("text/event-stream", simpleTextSSE, 3, &scratch, &r); err != nil {
			t.Fatal(err)
		}
		if out := callOutcome(&r, "text/event-stream", simpleTextSSE, 3); out != "" {
			t.Fatal(out)
		}
	})
	if allocs > 10 {
		t.Fatalf("findResponse allocates %v times per response, want at most 10", allocs)
	}
}

func BenchmarkFindResponse(b *testing.B) {
	var scratch []byte
	var r callResponse
	b.ReportAllocs()
	for b.Loop() {
		if err := findResponse("text/event-stream", simpleTextSSE, 3, &scratch, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func TestMediaType(t *testing.T) {
	for in, want := range map[string]string{
		"text/event-stream":                 "text/event-stream",
		" Text/Event-Stream ; charset=utf8": "text/event-stream",
		"application/json;charset=utf-8":    "application/json",
		"":                                  "",
	} {
		if got := mediaType(in); got != want {
			t.Errorf("mediaType(%q) = %q, want %q", in, got, want)
		}
	}
}
