package upstream

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"

	"github.com/portcullis-mcp/portcullis/internal/headername"
)

// The HTTP/1.1 wire format of H1Transport's exchanges: a request head written in one pass
// (what net/http's Request.Write does through a transfer writer, header sorting and
// formatted writes), and a response head read with one look at the buffered bytes.
// Anything this reader does not expect (a malformed or oversized head, an unknown
// transfer coding) is an error: the connection is closed and the call fails, as net/http
// would.

// maxResponseHead bounds a response head. A head longer than a connection's read buffer
// is gathered beside it (longHead), so the buffer can stay small.
const maxResponseHead = 16 << 10

// errHeaderValue is a header that would break the request's framing.
var errHeaderValue = errors.New("invalid header field")

// writeRequest writes req's head and body to w. The body must have a known length; other
// requests return errUnframed before anything is written, and the caller uses req.Write.
func writeRequest(w *bufio.Writer, req *http.Request) error {
	// As in net/http, a client request with a body and a zero length has an unknown one.
	unknown := req.ContentLength < 0 || (req.ContentLength == 0 && req.Body != nil && req.Body != http.NoBody)
	if unknown || (req.ContentLength > 0 && req.Body == nil) || len(req.TransferEncoding) > 0 || req.Close {
		return errUnframed
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if !validHeaderValue(host) || !validHeaderValue(req.Method) {
		return fmt.Errorf("%w: host %q", errHeaderValue, host)
	}
	w.WriteString(req.Method)
	w.WriteByte(' ')
	w.WriteString(req.URL.RequestURI())
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	w.WriteString("\r\n")
	for k, vs := range req.Header {
		if !validHeaderName(k) {
			return fmt.Errorf("%w: name %q", errHeaderValue, k)
		}
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Connection", "Trailer":
			continue // framing is ours
		}
		for _, v := range vs {
			if !validHeaderValue(v) {
				return fmt.Errorf("%w: %s", errHeaderValue, k)
			}
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	if _, ok := req.Header["User-Agent"]; !ok {
		w.WriteString("User-Agent: portcullis\r\n")
	}
	if req.ContentLength > 0 || req.Method == http.MethodPost || req.Method == http.MethodPut {
		var num [20]byte
		w.WriteString("Content-Length: ")
		w.Write(strconv.AppendInt(num[:0], req.ContentLength, 10))
		w.WriteString("\r\n")
	}
	w.WriteString("\r\n")
	if req.ContentLength > 0 {
		n, err := io.Copy(w, io.LimitReader(req.Body, req.ContentLength))
		req.Body.Close()
		if err != nil {
			return err
		}
		if n != req.ContentLength {
			return fmt.Errorf("http: request body of %d bytes, %d announced", n, req.ContentLength)
		}
	} else if req.Body != nil {
		req.Body.Close()
	}
	return nil
}

// errUnframed marks a request writeRequest leaves to net/http.
var errUnframed = errors.New("request needs net/http's framing")

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isToken(s[i]) {
			return false
		}
	}
	return true
}

func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

func isToken(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// readResponse reads a response head from br and returns the response with a body that
// ends where the response ends.
func readResponse(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	head, taken, err := peekHead(br)
	if err != nil {
		return nil, err
	}
	resp, err := parseResponseHead(head, req)
	if !taken {
		br.Discard(len(head))
	}
	if err != nil {
		return nil, err
	}
	switch {
	case resp.StatusCode == http.StatusSwitchingProtocols:
		return nil, errors.New("http: unexpected 101 Switching Protocols")
	case resp.StatusCode/100 == 1:
		return readResponse(br, req) // an interim answer; the final one follows
	}
	resp.Body = newWireBody(br, resp)
	return resp, nil
}

// peekHead returns the response head: the bytes up to and including the blank line ending
// it. A head that fits in br's buffer is returned from the buffer and left there (taken is
// false); a longer one is taken out of br into a slice of its own.
func peekHead(br *bufio.Reader) (head []byte, taken bool, err error) {
	for n := 0; ; {
		buf, err := br.Peek(br.Buffered())
		if i := bytes.Index(buf[max(0, n-3):], crlfcrlf); i >= 0 {
			return buf[:max(0, n-3)+i+4], false, nil
		}
		n = len(buf)
		if n >= br.Size() {
			head, err := longHead(br)
			return head, true, err
		}
		if err != nil {
			return nil, false, err
		}
		// Wait for more: Peek of one byte beyond what is buffered reads once.
		if _, err = br.Peek(n + 1); err != nil {
			if n > 0 && errors.Is(err, io.EOF) {
				return nil, false, io.ErrUnexpectedEOF
			}
			return nil, false, err
		}
	}
}

// longHead reads a head that does not fit in br's buffer out of br, up to
// maxResponseHead bytes, leaving what follows the head in br.
func longHead(br *bufio.Reader) ([]byte, error) {
	var head []byte
	for {
		buf, _ := br.Peek(br.Buffered())
		from := max(0, len(head)-3)
		head = append(head, buf...)
		if i := bytes.Index(head[from:], crlfcrlf); i >= 0 && from+i+4 <= maxResponseHead {
			end := from + i + 4
			br.Discard(end - (len(head) - len(buf)))
			return head[:end:end], nil
		}
		br.Discard(len(buf))
		if len(head) >= maxResponseHead {
			return nil, fmt.Errorf("http: response head over %d bytes", maxResponseHead)
		}
		if _, err := br.Peek(1); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

var crlfcrlf = []byte("\r\n\r\n")

func parseResponseHead(head []byte, req *http.Request) (*http.Response, error) {
	hs := string(head) // every string of the response is a part of this one
	line, fields, _ := strings.Cut(hs, "\r\n")
	// Status line: HTTP/1.x SP 3DIGIT [SP reason]
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || (line[7] != '1' && line[7] != '0') || line[8] != ' ' || (len(line) > 12 && line[12] != ' ') {
		return nil, fmt.Errorf("http: malformed status line %q", truncateString(line, 64))
	}
	code := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return nil, fmt.Errorf("http: malformed status line %q", truncateString(line, 64))
		}
		code = code*10 + int(c-'0')
	}
	if code < 100 {
		return nil, fmt.Errorf("http: malformed status code in %q", truncateString(line, 64))
	}
	resp := &http.Response{
		Status:        line[9:],
		StatusCode:    code,
		Proto:         line[:8],
		ProtoMajor:    1,
		ProtoMinor:    int(line[7] - '0'),
		Request:       req,
		ContentLength: -1,
		Close:         line[7] == '0',
	}
	// Every name and value is a substring of one copy of the fields.
	n := strings.Count(fields, "\r\n")
	resp.Header = make(http.Header, n)
	values := make([]string, 0, n)
	chunked := false
	for len(fields) > 2 {
		f, more, _ := strings.Cut(fields, "\r\n")
		fields = more
		colon := strings.IndexByte(f, ':')
		if colon <= 0 {
			return nil, fmt.Errorf("http: malformed response header line %q", truncateString(f, 64))
		}
		if !validHeaderName(f[:colon]) {
			return nil, fmt.Errorf("http: malformed response header name %q", truncateString(f[:colon], 64))
		}
		v := strings.Trim(f[colon+1:], " \t")
		key := headername.Canonical(f[:colon])
		switch key {
		case "Content-Length":
			cl, err := strconv.ParseInt(v, 10, 64)
			if err != nil || cl < 0 || (resp.ContentLength >= 0 && cl != resp.ContentLength) {
				return nil, fmt.Errorf("http: bad Content-Length %q", truncateString(v, 32))
			}
			resp.ContentLength = cl
		case "Transfer-Encoding":
			if !strings.EqualFold(v, "chunked") || chunked {
				return nil, fmt.Errorf("http: unsupported Transfer-Encoding %q", truncateString(v, 32))
			}
			chunked = true
			continue
		case "Connection":
			for tok := range strings.SplitSeq(v, ",") {
				if strings.EqualFold(strings.TrimSpace(tok), "close") {
					resp.Close = true
				}
			}
		}
		values = append(values, v) // never grows: n bounds the fields
		if old := resp.Header[key]; old == nil {
			resp.Header[key] = values[len(values)-1 : len(values) : len(values)]
		} else {
			resp.Header[key] = append(old, v)
		}
	}
	noBody := code/100 == 1 || code == http.StatusNoContent || code == http.StatusNotModified || req.Method == http.MethodHead
	switch {
	case noBody:
		resp.ContentLength = 0
		resp.Body = http.NoBody
	case chunked:
		resp.ContentLength = -1
		resp.TransferEncoding = chunkedCoding
		resp.Header.Del("Content-Length")
	case resp.ContentLength >= 0:
	default:
		resp.Close = true // the body runs to the end of the connection
	}
	return resp, nil
}

// chunkedCoding is every chunked response's TransferEncoding (shared, never modified).
var chunkedCoding = []string{"chunked"}

// h1wireBody is a response body framed by Content-Length, chunked coding or the
// connection's end.
type h1wireBody struct {
	br      *bufio.Reader
	n       int64     // bytes left with Content-Length; -1 otherwise
	chunked io.Reader // with chunked coding
	done    bool
	err     error
}

func newWireBody(br *bufio.Reader, resp *http.Response) io.ReadCloser {
	if resp.Body == http.NoBody {
		return http.NoBody
	}
	b := &h1wireBody{br: br, n: resp.ContentLength}
	if len(resp.TransferEncoding) > 0 {
		b.chunked = httputil.NewChunkedReader(br)
		b.n = -1
	}
	return b
}

func (b *h1wireBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	if b.err != nil {
		return 0, b.err
	}
	switch {
	case b.chunked != nil:
		n, err := b.chunked.Read(p)
		if err == io.EOF {
			// The last chunk: trailer fields (ignored) up to a blank line.
			for {
				line, terr := b.br.ReadSlice('\n')
				if terr != nil {
					b.err = io.ErrUnexpectedEOF
					return n, b.err
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					break
				}
			}
			b.done = true
		} else if err != nil {
			b.err = err
		}
		if b.done {
			return n, io.EOF
		}
		return n, b.err
	case b.n >= 0:
		if b.n == 0 {
			b.done = true
			return 0, io.EOF
		}
		if int64(len(p)) > b.n {
			p = p[:b.n]
		}
		n, err := b.br.Read(p)
		b.n -= int64(n)
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			b.err = err
			return n, err
		}
		if b.n == 0 {
			b.done = true
			return n, io.EOF
		}
		return n, nil
	default: // to the connection's end
		n, err := b.br.Read(p)
		if err == io.EOF {
			b.done = true
		} else if err != nil {
			b.err = err
		}
		return n, err
	}
}

func (b *h1wireBody) Close() error { return nil }
