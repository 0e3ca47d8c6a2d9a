package h1server

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// FuzzConn sends arbitrary bytes on one connection, then half-closes it: the server must
// answer with well-formed HTTP responses (possibly none) and close the connection, without
// panicking or hanging, whichever path (fast or net/http) each request takes.
func FuzzConn(f *testing.F) {
	f.Add([]byte(post(`{"a":1}`) + post("x")))
	f.Add([]byte(post("abc") + "GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n"))
	f.Add([]byte("POST /mcp HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nZ\r\n"))
	f.Add([]byte("POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nab"))
	f.Add([]byte("POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nX: " + strings.Repeat("a", 9000) + "\r\n\r\nab"))
	f.Add([]byte("POST /mcp HTTP/1.1\r\nHost: h\r\n Content-Length: 2\r\n\r\nab"))
	f.Add([]byte("\r\n\r\nPOST /mcp HTTP/1.1\r\n\r\n"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	handler := http.HandlerFunc(echo)
	s := &Server{Handler: handler, Fallback: &http.Server{Handler: handler, ReadHeaderTimeout: 2 * time.Second},
		Target: "/mcp", HeaderTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second}
	go s.Serve(ln)
	defer s.Close()
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		go func() {
			c.Write(b)
			c.(*net.TCPConn).CloseWrite()
		}()
		all, err := io.ReadAll(c)
		if err != nil && !isReset(err) {
			t.Fatalf("reading until the server closes: %v (sent %q)", err, b)
		}
		br := bufio.NewReader(bytes.NewReader(all))
		for br.Buffered() > 0 || len(all) > 0 {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("malformed response %q: %v (sent %q)", all, err, b)
			}
			if _, err := io.ReadAll(resp.Body); err != nil {
				t.Fatalf("response body: %v (got %q, sent %q)", err, all, b)
			}
			if _, err := br.Peek(1); err != nil {
				break
			}
		}
	})
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}
