package upstream

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestReadResponse(t *testing.T) {
	post := httptest.NewRequest("POST", "http://up/mcp", nil)
	for _, tc := range []struct {
		name, wire string
		status     int
		body       string
		header     map[string]string
		close      bool
		err        string
		afterwards string // what the reader holds after the body
	}{
		{name: "length", wire: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}NEXT",
			status: 200, body: "{}", header: map[string]string{"Content-Type": "application/json"}, afterwards: "NEXT"},
		{name: "chunked with trailer", wire: "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT",
			status: 200, body: "hello world", header: map[string]string{"Content-Type": "text/event-stream"}, afterwards: "NEXT"},
		{name: "interim then final", wire: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n",
			status: 202},
		{name: "no content", wire: "HTTP/1.1 204 No Content\r\n\r\nNEXT", status: 204, afterwards: "NEXT"},
		{name: "to the end", wire: "HTTP/1.1 200 OK\r\n\r\nall of it", status: 200, body: "all of it", close: true},
		{name: "http/1.0 closes", wire: "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", status: 200, body: "x", close: true},
		{name: "connection close", wire: "HTTP/1.1 404 Not Found\r\nConnection: keep-alive, Close\r\nContent-Length: 1\r\n\r\nx", status: 404, body: "x", close: true},
		{name: "session header", wire: "HTTP/1.1 200 OK\r\nMcp-Session-Id:  abc \r\nContent-Length: 0\r\n\r\n", status: 200, header: map[string]string{"Mcp-Session-Id": "abc"}},
		{name: "bad status", wire: "HTTP/2 200 OK\r\n\r\n", err: "malformed status line"},
		{name: "bad code", wire: "HTTP/1.1 2x0 OK\r\n\r\n", err: "malformed status line"},
		{name: "bad length", wire: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", err: "bad Content-Length"},
		{name: "two lengths", wire: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx", err: "bad Content-Length"},
		{name: "gzip coding", wire: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", err: "unsupported Transfer-Encoding"},
		{name: "folded line", wire: "HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n", err: "malformed response header"},
		{name: "switching", wire: "HTTP/1.1 101 Switching Protocols\r\n\r\n", err: "101"},
		{name: "cut head", wire: "HTTP/1.1 200 OK\r\nContent-Le", err: "unexpected EOF"},
		{name: "cut body", wire: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", status: 200, err: "unexpected EOF"},
		{name: "cut chunk", wire: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", status: 200, err: "unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReaderSize(strings.NewReader(tc.wire), 4096)
			resp, err := readResponse(br, post)
			var body []byte
			if err == nil {
				body, err = io.ReadAll(resp.Body)
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status || string(body) != tc.body || resp.Close != tc.close {
				t.Errorf("got %d %q close=%v, want %d %q close=%v", resp.StatusCode, body, resp.Close, tc.status, tc.body, tc.close)
			}
			for k, v := range tc.header {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			rest, _ := io.ReadAll(br)
			if string(rest) != tc.afterwards {
				t.Errorf("left %q after the response, want %q", rest, tc.afterwards)
			}
		})
	}
}

func TestReadResponseLongHead(t *testing.T) {
	long := func(n int) string { // a head of exactly n bytes
		h := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX: "
		return h + strings.Repeat("a", n-len(h)-4) + "\r\n\r\n"
	}
	for _, tc := range []struct {
		name, wire string
		size       int    // the reader's buffer
		err        string // "" when the response is read
	}{
		{"longer than the buffer", long(5000) + "hiHTTP/1.1", 4096, ""},
		{"end of head across a buffer's worth", long(4096+2) + "hi", 4096, ""},
		{"end of head at the buffer's end", long(4096) + "hi", 4096, ""},
		{"at the limit", long(maxResponseHead) + "hi", 4096, ""},
		{"at the limit, in one buffer", long(maxResponseHead) + "hi", maxResponseHead, ""},
		{"over the limit", long(maxResponseHead+1) + "hi", 4096, "head over"},
		{"over the limit, the buffer as large", long(maxResponseHead+1) + "hi", maxResponseHead, "head over"},
		{"no end", "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", 3*maxResponseHead), 4096, "head over"},
		{"cut short", long(6000)[:5000], 4096, "unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReaderSize(strings.NewReader(tc.wire), tc.size)
			resp, err := readResponse(br, httptest.NewRequest("POST", "http://up/mcp", nil))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil || string(body) != "hi" || resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("X"), "aaa") {
				t.Fatalf("read %d %q %v, header X of %d bytes", resp.StatusCode, body, err, len(resp.Header.Get("X")))
			}
			rest, _ := io.ReadAll(br)
			if want := tc.wire[strings.Index(tc.wire, "\r\n\r\n")+4+2:]; string(rest) != want {
				t.Errorf("left %q after the response, want %q", rest, want)
			}
		})
	}
}

func TestWriteRequest(t *testing.T) {
	req, _ := http.NewRequest("POST", "http://up:81/mcp?x=1", strings.NewReader(`{"a":1}`))
	req.Header.Set("Mcp-Session-Id", "s1")
	req.Header.Set("Content-Length", "999") // framing is the writer's
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	if err := writeRequest(w, req); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	got, err := http.ReadRequest(bufio.NewReader(&b))
	if err != nil {
		t.Fatalf("what was written does not parse: %v\n%s", err, b.String())
	}
	body, _ := io.ReadAll(got.Body)
	if got.Method != "POST" || got.Host != "up:81" || got.RequestURI != "/mcp?x=1" || string(body) != `{"a":1}` ||
		got.Header.Get("Mcp-Session-Id") != "s1" || got.ContentLength != 7 {
		t.Errorf("read back %s %s %s %q %v", got.Method, got.Host, got.RequestURI, body, got.Header)
	}

	for name, set := range map[string]func(*http.Request){
		"value with CRLF": func(r *http.Request) { r.Header["Mcp-Param-X"] = []string{"a\r\nInjected: 1"} },
		"bad name":        func(r *http.Request) { r.Header["Bad Name"] = []string{"x"} },
		"host with CRLF":  func(r *http.Request) { r.Host = "up\r\nX: y" },
	} {
		r, _ := http.NewRequest("POST", "http://up/mcp", strings.NewReader("{}"))
		set(r)
		if err := writeRequest(bufio.NewWriter(io.Discard), r); err == nil {
			t.Errorf("%s: written", name)
		}
	}
	unknown, _ := http.NewRequest("POST", "http://up/mcp", io.NopCloser(strings.NewReader("{}")))
	if err := writeRequest(bufio.NewWriter(io.Discard), unknown); err != errUnframed {
		t.Errorf("a body of unknown length: %v, want errUnframed", err)
	}
}
