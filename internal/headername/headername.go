// Package headername puts HTTP header field names in canonical form (as
// textproto.CanonicalMIMEHeaderKey does) without allocating for the names MCP clients and
// servers send on every message, in whatever case they send them.
//
// Clients built on fetch send names in lower case ("mcp-session-id", "content-type"), and
// the canonical form of such a name is a new string: five or six allocations per request
// on the gateway's two HTTP hops, for the same few names.
package headername

import (
	"net/textproto"
	"strings"
)

// common are the names found on MCP requests and responses, in canonical form.
var common = [...]string{
	"Accept", "Accept-Encoding", "Accept-Language", "Authorization", "Cache-Control",
	"Connection", "Content-Encoding", "Content-Length", "Content-Type", "Cookie", "Date",
	"Expect", "Host", "Keep-Alive", "Last-Event-Id", "Mcp-Method", "Mcp-Name",
	"Mcp-Protocol-Version", "Mcp-Session-Id", "Origin", "Pragma", "Referer", "Server",
	"Set-Cookie", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "User-Agent", "Vary",
	"X-Accel-Buffering", "X-Forwarded-For", "X-Powered-By",
}

// byLen indexes common by length: a name is compared only with those of its length.
var byLen = func() (t [24][]string) {
	for _, n := range common {
		t[len(n)] = append(t[len(n)], n)
	}
	return t
}()

// Canonical returns the canonical form of the header field name s: a shared string for a
// common name in any case, else textproto.CanonicalMIMEHeaderKey(s).
func Canonical(s string) string {
	if len(s) < len(byLen) {
		for _, n := range byLen[len(s)] {
			if s == n {
				return n
			}
			if strings.EqualFold(s, n) {
				return n
			}
		}
	}
	return textproto.CanonicalMIMEHeaderKey(s)
}
