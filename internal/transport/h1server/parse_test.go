package h1server

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"
)

func TestParseHead(t *testing.T) {
	const ok = "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:8931\r\nContent-Length: 12\r\nAccept: application/json, text/event-stream\r\nMcp-Session-Id: abc"
	tests := []struct {
		name   string
		head   string
		want   bool
		cl     int64
		close  bool
		header map[string][]string
	}{
		{"plain", ok, true, 12, false, map[string][]string{"Accept": {"application/json, text/event-stream"}, "Mcp-Session-Id": {"abc"}}},
		{"lower-case names", "POST /mcp HTTP/1.1\r\nhost: h\r\ncontent-length: 0\r\nx-a: 1\r\nX-A: 2", true, 0, false, map[string][]string{"X-A": {"1", "2"}}},
		{"spaces around value", "POST /mcp HTTP/1.1\r\nHost:  h \t\r\nContent-Length:\t3 ", true, 3, false, nil},
		{"connection close", "POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nConnection: keep-alive, Close", true, 0, true, nil},
		{"empty value", "POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nX-Empty:", true, 0, false, map[string][]string{"X-Empty": {""}}},
		{"GET", strings.Replace(ok, "POST", "GET", 1), false, 0, false, nil},
		{"lower-case method", strings.Replace(ok, "POST", "post", 1), false, 0, false, nil},
		{"other path", strings.Replace(ok, "/mcp", "/mcpx", 1), false, 0, false, nil},
		{"query", strings.Replace(ok, "/mcp", "/mcp?a=1", 1), false, 0, false, nil},
		{"absolute form", strings.Replace(ok, "/mcp", "http://h/mcp", 1), false, 0, false, nil},
		{"HTTP/1.0", strings.Replace(ok, "HTTP/1.1", "HTTP/1.0", 1), false, 0, false, nil},
		{"two spaces", strings.Replace(ok, "POST ", "POST  ", 1), false, 0, false, nil},
		{"no host", "POST /mcp HTTP/1.1\r\nContent-Length: 0", false, 0, false, nil},
		{"two hosts", ok + "\r\nHost: other", false, 0, false, nil},
		{"bad host", "POST /mcp HTTP/1.1\r\nHost: a b\r\nContent-Length: 0", false, 0, false, nil},
		{"no length", "POST /mcp HTTP/1.1\r\nHost: h", false, 0, false, nil},
		{"two lengths", ok + "\r\nContent-Length: 12", false, 0, false, nil},
		{"signed length", "POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: +1", false, 0, false, nil},
		{"length list", "POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 1", false, 0, false, nil},
		{"huge length", "POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999", false, 0, false, nil},
		{"chunked", ok + "\r\nTransfer-Encoding: chunked", false, 0, false, nil},
		{"expect", ok + "\r\nExpect: 100-continue", false, 0, false, nil},
		{"upgrade", ok + "\r\nUpgrade: h2c\r\nConnection: Upgrade", false, 0, false, nil},
		{"hop-by-hop option", ok + "\r\nConnection: X-Foo", false, 0, false, nil},
		{"folded line", ok + "\r\n continued", false, 0, false, nil},
		{"space before colon", ok + "\r\nX-A : 1", false, 0, false, nil},
		{"no colon", ok + "\r\nX-A", false, 0, false, nil},
		{"empty name", ok + "\r\n: 1", false, 0, false, nil},
		{"control in value", ok + "\r\nX-A: a\x00b", false, 0, false, nil},
		{"DEL in value", ok + "\r\nX-A: a\x7fb", false, 0, false, nil},
		{"bare LF", "POST /mcp HTTP/1.1\nHost: h\nContent-Length: 0", false, 0, false, nil},
		{"empty", "", false, 0, false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, ok := parseHead([]byte(tc.head), "/mcp")
			if ok != tc.want {
				t.Fatalf("ok = %v, want %v", ok, tc.want)
			}
			if !ok {
				return
			}
			if h.contentLength != tc.cl || h.close != tc.close {
				t.Errorf("content length %d close %v, want %d %v", h.contentLength, h.close, tc.cl, tc.close)
			}
			for k, want := range tc.header {
				if got := h.header[k]; strings.Join(got, "|") != strings.Join(want, "|") {
					t.Errorf("header %s = %q, want %q", k, got, want)
				}
			}
		})
	}
}

// FuzzParseHead checks that every head the fast path accepts is read the same way by
// net/http: same method, target, host, length and fields.
func FuzzParseHead(f *testing.F) {
	f.Add([]byte("POST /mcp HTTP/1.1\r\nHost: h:1\r\nContent-Length: 5\r\nAccept: */*"))
	f.Add([]byte("POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nConnection: close"))
	f.Add([]byte("POST /mcp HTTP/1.1\r\nhost: [::1]:80\r\ncontent-length: 007\r\nx: \t v \t"))
	f.Add([]byte("POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked"))
	f.Add([]byte("GET /mcp HTTP/1.1\r\nHost: h"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, ok := parseHead(b, "/mcp")
		if !ok || bytes.Contains(b, []byte("\r\n\r\n")) {
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(append(append([]byte(nil), b...), "\r\n\r\n"...))))
		if err != nil {
			t.Fatalf("fast path accepted a head net/http refuses (%v): %q", err, b)
		}
		if req.Method != http.MethodPost || req.RequestURI != "/mcp" || req.ProtoMinor != 1 {
			t.Fatalf("net/http reads %s %s HTTP/1.%d", req.Method, req.RequestURI, req.ProtoMinor)
		}
		if req.Host != h.host || req.ContentLength != h.contentLength || req.Close != h.close {
			t.Fatalf("host %q length %d close %v; net/http: %q %d %v", h.host, h.contentLength, h.close, req.Host, req.ContentLength, req.Close)
		}
		if len(req.TransferEncoding) != 0 {
			t.Fatalf("net/http sees transfer coding %q", req.TransferEncoding)
		}
		for k, vs := range req.Header {
			if strings.Join(h.header[k], "\x00") != strings.Join(vs, "\x00") {
				t.Fatalf("field %s = %q, net/http: %q", k, h.header[k], vs)
			}
		}
		for k := range h.header {
			if _, ok := req.Header[k]; !ok {
				t.Fatalf("field %s not seen by net/http", k)
			}
		}
	})
}
