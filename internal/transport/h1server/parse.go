package h1server

import (
	"bytes"
	"net/http"
	"strings"

	"github.com/portcullis-mcp/portcullis/internal/headername"
)

// head is a request head the fast path serves: POST to the fast path's target over
// HTTP/1.1 with exactly one Host and one Content-Length and nothing that changes how the
// body is framed. Anything else is left to net/http, byte for byte.
type head struct {
	header        http.Header
	host          string
	contentLength int64
	close         bool // Connection: close
}

// maxContentLength bounds the Content-Length the fast path accepts; larger bodies go to
// net/http (the handler bounds the body it reads anyway).
const maxContentLength = 1 << 40

// parseHead recognizes a request head (request line and header fields, without the final
// empty line) that the fast path serves. ok is false for anything else, including
// malformed heads: those go to net/http, which answers them with its usual errors.
func parseHead(b []byte, target string) (h head, ok bool) {
	line, rest, found := bytes.Cut(b, crlf)
	if !found && len(b) == 0 {
		return h, false
	}
	// Request line: exactly "POST <target> HTTP/1.1".
	if len(line) != len("POST ")+len(target)+len(" HTTP/1.1") ||
		string(line[:5]) != "POST " || string(line[5:5+len(target)]) != target ||
		string(line[5+len(target):]) != " HTTP/1.1" {
		return h, false
	}
	// Count the fields first so that the header and its values are two allocations; every
	// name and value is a substring of one copy of the head (a name not in canonical form
	// is the only other allocation).
	n := bytes.Count(rest, crlf) + 1
	if !found {
		n = 0
	}
	h.header = make(http.Header, n)
	values := make([]string, 0, n)
	h.contentLength = -1
	hosts := 0
	var hs string
	if found {
		hs = string(rest)
	}
	for pos := 0; found && pos < len(hs); {
		end := len(hs)
		if i := strings.Index(hs[pos:], "\r\n"); i >= 0 {
			end = pos + i
		}
		f := hs[pos:end]
		pos = end + 2
		colon := strings.IndexByte(f, ':')
		if colon <= 0 {
			return h, false // no name, or a continuation line (obsolete folding)
		}
		name := f[:colon]
		for i := 0; i < len(name); i++ {
			if !isTokenChar(name[i]) {
				return h, false
			}
		}
		val := trimOWSString(f[colon+1:])
		for i := 0; i < len(val); i++ {
			if c := val[i]; (c < 0x20 && c != '\t') || c == 0x7f {
				return h, false
			}
		}
		key := headername.Canonical(name)
		switch key {
		case "Host":
			hosts++
			h.host = val
			continue // in Request.Host only, as net/http does
		case "Content-Length":
			if h.contentLength >= 0 {
				return h, false // repeated: net/http decides
			}
			n, good := parseContentLength([]byte(val))
			if !good {
				return h, false
			}
			h.contentLength = n
		case "Transfer-Encoding", "Expect", "Upgrade", "Te", "Trailer":
			return h, false
		case "Connection":
			if !connectionOK([]byte(val), &h.close) {
				return h, false
			}
		}
		values = append(values, val) // never grows: n bounds the fields
		if old := h.header[key]; old == nil {
			h.header[key] = values[len(values)-1 : len(values) : len(values)]
		} else {
			h.header[key] = append(old, val)
		}
	}
	if hosts != 1 || h.contentLength < 0 || !validHost(h.host) {
		return h, false
	}
	return h, true
}

var crlf = []byte("\r\n")

func trimOWSString(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func parseContentLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 13 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, n <= maxContentLength
}

// connectionOK accepts the Connection values the fast path understands: keep-alive and
// close. Any other option (upgrade, hop-by-hop field names) goes to net/http.
func connectionOK(v []byte, close *bool) bool {
	for _, opt := range bytes.Split(v, []byte(",")) {
		opt = trimOWS(opt)
		switch {
		case len(opt) == 0:
		case bytes.EqualFold(opt, []byte("close")):
			*close = true
		case bytes.EqualFold(opt, []byte("keep-alive")):
		default:
			return false
		}
	}
	return true
}

// validHost accepts a non-empty host[:port] of the characters a URL authority may hold,
// as net/http does.
func validHost(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.' || c == '-' || c == '_' || c == ':' || c == '[' || c == ']' || c == '%' || c == '~' ||
			c == '!' || c == '$' || c == '&' || c == '\'' || c == '(' || c == ')' || c == '*' || c == '+' ||
			c == ',' || c == ';' || c == '=':
		default:
			return false
		}
	}
	return true
}

func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}
