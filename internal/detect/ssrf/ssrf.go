// Package ssrf finds server-side request forgery in tool arguments: URLs (and bare host
// names) that lead to loopback, private, link-local, cloud metadata and other non-public
// addresses, however they are spelt: decimal, octal, hex and short IPv4 forms, IPv4 mapped
// or embedded in IPv6, trailing dots, userinfo tricks ("http://trusted@127.0.0.1"),
// backslashes, look-alike digits, wildcard-DNS names such as 127.0.0.1.nip.io, and schemes
// that talk to other protocols (gopher, dict, file...). Host names may also be resolved,
// with a timeout, and every address checked.
package ssrf

import (
	"context"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/detect"
)

// Name is the detector's name in findings.
const Name = "ssrf"

// Options parameterize the checks.
type Options struct {
	AllowHosts    []string       // host names (exact, or ".example.com" for subdomains) never flagged
	AllowPrefixes []netip.Prefix // address ranges never flagged (e.g. an internal API's subnet)
	AllowPrivate  bool           // private (RFC 1918, ULA) ranges allowed; loopback and metadata are not
	Resolve       bool           // resolve host names and check every address
	Timeout       time.Duration  // for resolution (default 500ms)
	Resolver      *net.Resolver  // nil: net.DefaultResolver
}

// Checker checks URLs. It is safe for concurrent use.
type Checker struct{ o Options }

// New returns a checker.
func New(o Options) *Checker {
	if o.Timeout <= 0 {
		o.Timeout = 500 * time.Millisecond
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	for i, h := range o.AllowHosts {
		o.AllowHosts[i] = strings.TrimSuffix(strings.ToLower(h), ".")
	}
	return &Checker{o: o}
}

// LooksLikeURL reports whether a whole value reads as a URL.
func LooksLikeURL(v string) bool {
	v = strings.TrimSpace(v)
	if v == "" || len(v) > 8192 || strings.ContainsAny(v, " \n\t") {
		return false
	}
	i := strings.Index(v, ":")
	if i <= 0 || i > 12 {
		return strings.HasPrefix(v, "//")
	}
	for _, c := range v[:i] {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return strings.HasPrefix(v[i:], "://") || strings.HasPrefix(strings.ToLower(v), "gopher:") || strings.HasPrefix(strings.ToLower(v), "file:")
}

var dangerousSchemes = map[string]string{
	"gopher": "gopher (can speak raw TCP to any service)", "dict": "dict (raw TCP)", "file": "file (local files)",
	"ldap": "ldap", "ldaps": "ldaps", "tftp": "tftp", "jar": "jar", "netdoc": "netdoc", "sftp": "sftp",
	"smb": "smb (leaks credentials)", "telnet": "telnet", "php": "php", "expect": "expect", "data": "data",
}

var okSchemes = map[string]bool{"http": true, "https": true, "ws": true, "wss": true, "ftp": true, "ftps": true, "": true}

// Check returns the findings for one argument value. urlParam says the argument is known
// to be a URL or host (by name or schema); other arguments are checked only when their
// whole value looks like a URL.
func (c *Checker) Check(ctx context.Context, value, pointer string, urlParam bool) []detect.Finding {
	v := strings.TrimSpace(value)
	if !urlParam && !LooksLikeURL(v) {
		return nil
	}
	if len(v) > 8192 {
		v = v[:8192]
	}
	var out []detect.Finding
	add := func(sev detect.Severity, rule, msg string) {
		out = append(out, detect.Finding{Detector: Name, Rule: rule, Severity: sev, Pointer: pointer,
			Evidence: detect.Evidence(value), Message: msg})
	}
	n := detect.Normalize(v)
	if n != v {
		add(detect.Medium, "disguised", "the URL contains look-alike or invisible characters")
		v = n
	}
	scheme, host, tricks := splitURL(v)
	if what, bad := dangerousSchemes[scheme]; bad {
		add(detect.High, "scheme", "the URL uses the "+what+" scheme")
	} else if !okSchemes[scheme] {
		add(detect.Low, "scheme", "the URL uses an unusual scheme "+strconv.Quote(scheme))
	}
	for _, t := range tricks {
		add(detect.Medium, "obfuscated", t)
	}
	if host == "" {
		return out
	}
	if c.allowedHost(host) {
		return out
	}
	if addr, form, ok := ParseHost(host); ok {
		if form != "" {
			add(detect.Medium, "obfuscated", "the address is written in "+form+" form")
		}
		if sev, what := c.classify(addr); sev > detect.Info {
			add(sev, "address", "the URL points at "+what+" ("+addr.String()+")")
		}
		return out
	}
	if sev, what := c.classifyName(host); sev > detect.Info {
		add(sev, "host", "the URL points at "+what)
		return out
	}
	if c.o.Resolve && ctx != nil {
		rctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
		addrs, err := c.o.Resolver.LookupNetIP(rctx, "ip", host)
		cancel()
		if err != nil {
			add(detect.Low, "unresolved", "the host name could not be resolved")
		}
		for _, a := range addrs {
			if sev, what := c.classify(a.Unmap()); sev > detect.Info {
				add(sev, "resolves", "the host name resolves to "+what+" ("+a.String()+")")
				break
			}
		}
	}
	return out
}

func (c *Checker) allowedHost(h string) bool {
	for _, a := range c.o.AllowHosts {
		if h == a || strings.HasPrefix(a, ".") && strings.HasSuffix(h, a) {
			return true
		}
	}
	return false
}

// splitURL extracts scheme and host the way lenient HTTP clients do, and notes tricks.
func splitURL(v string) (scheme, host string, tricks []string) {
	rest := v
	if i := strings.Index(v, ":"); i > 0 && !strings.HasPrefix(v, "[") && validScheme(v[:i]) {
		scheme = strings.ToLower(v[:i])
		rest = v[i+1:]
		if scheme == "file" || scheme == "data" || scheme == "jar" || scheme == "php" || scheme == "expect" {
			if strings.HasPrefix(rest, "//") {
				rest = rest[2:]
				end := strings.IndexAny(rest, "/?#")
				if end < 0 {
					end = len(rest)
				}
				return scheme, hostOnly(rest[:end]), nil
			}
			return scheme, "", nil
		}
		if _, err := strconv.Atoi(rest[:min(len(rest), 1)]); err == nil && !strings.HasPrefix(rest, "//") {
			// "localhost:8080" parsed as scheme "localhost": a bare host with a port.
			return "", hostOnly(v), nil
		}
	}
	rest = strings.TrimLeft(rest, `/\`)
	if strings.Contains(v, `\`) {
		tricks = append(tricks, "the URL contains backslashes (parsers disagree on where the host ends)")
		rest = strings.ReplaceAll(rest, `\`, "/")
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority := rest[:end]
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		user := authority[:at]
		authority = authority[at+1:]
		if strings.Contains(user, ".") || strings.Contains(user, "@") {
			tricks = append(tricks, "the URL has user information that looks like a host ("+detect.Evidence(user)+"@): the real host is after the @")
		}
	}
	return scheme, hostOnly(authority), tricks
}

func validScheme(s string) bool {
	if s == "" || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// hostOnly strips the port and brackets, unescapes, lowercases and drops trailing dots.
func hostOnly(a string) string {
	if u, err := url.PathUnescape(a); err == nil {
		a = u
	}
	if strings.HasPrefix(a, "[") {
		if i := strings.Index(a, "]"); i > 0 {
			a = a[1:i]
		}
	} else if i := strings.LastIndex(a, ":"); i >= 0 && strings.Count(a, ":") == 1 {
		a = a[:i]
	}
	a = strings.ToLower(strings.TrimRight(a, "."))
	if i := strings.Index(a, "%"); i >= 0 && strings.Contains(a, ":") { // IPv6 zone
		a = a[:i]
	}
	return a
}

// ParseHost parses a host as an IP address in any of the forms resolvers accept (inet_aton:
// 1 to 4 parts, each decimal, octal with a leading 0, or hex with 0x; IPv6 with mapped or
// embedded IPv4). form names an unusual spelling ("" for dotted decimal or plain IPv6).
func ParseHost(h string) (addr netip.Addr, form string, ok bool) {
	if strings.Contains(h, ":") {
		a, err := netip.ParseAddr(h)
		if err != nil {
			return netip.Addr{}, "", false
		}
		if a.Is4In6() {
			return a.Unmap(), "IPv4-mapped IPv6", true
		}
		b := a.As16()
		// NAT64 (64:ff9b::/96) and IPv4-compatible (::/96) embed an IPv4 address.
		if (b[0] == 0 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && isZero(b[4:12])) || (isZero(b[:12]) && !a.IsLoopback() && !a.IsUnspecified()) {
			return netip.AddrFrom4([4]byte(b[12:16])), "IPv4-embedded IPv6", true
		}
		if b[0] == 0x20 && b[1] == 0x02 { // 6to4
			return netip.AddrFrom4([4]byte(b[2:6])), "6to4 IPv6", true
		}
		return a, "", true
	}
	parts := strings.Split(h, ".")
	if len(parts) > 4 || len(parts) == 0 {
		return netip.Addr{}, "", false
	}
	var vals []uint64
	odd := len(parts) != 4
	for _, p := range parts {
		if p == "" {
			return netip.Addr{}, "", false
		}
		base := 10
		digits := p
		switch {
		case strings.HasPrefix(p, "0x") || strings.HasPrefix(p, "0X"):
			base, digits, odd = 16, p[2:], true
			if digits == "" {
				digits = "0"
			}
		case len(p) > 1 && p[0] == '0':
			base, digits, odd = 8, p[1:], true
		}
		n, err := strconv.ParseUint(digits, base, 32)
		if err != nil {
			return netip.Addr{}, "", false
		}
		vals = append(vals, n)
	}
	var ip uint32
	for i, v := range vals {
		if i < len(vals)-1 {
			if v > 255 {
				return netip.Addr{}, "", false
			}
			ip |= uint32(v) << (24 - 8*i)
			continue
		}
		rem := 4 - i
		if rem < 4 && v >= 1<<(8*rem) {
			return netip.Addr{}, "", false
		}
		ip |= uint32(v)
	}
	a := netip.AddrFrom4([4]byte{byte(ip >> 24), byte(ip >> 16), byte(ip >> 8), byte(ip)})
	if odd {
		return a, "a decimal, octal, hex or shortened", true
	}
	return a, "", true
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

var (
	metadata = map[netip.Addr]string{
		netip.MustParseAddr("169.254.169.254"): "the cloud metadata service (AWS, GCP, Azure, ...)",
		netip.MustParseAddr("169.254.170.2"):   "the ECS task metadata service",
		netip.MustParseAddr("fd00:ec2::254"):   "the AWS metadata service (IPv6)",
		netip.MustParseAddr("100.100.100.200"): "the Alibaba Cloud metadata service",
		netip.MustParseAddr("192.0.0.192"):     "the Oracle Cloud metadata service",
		netip.MustParseAddr("169.254.169.123"): "the AWS time service",
	}
	cgnat    = netip.MustParsePrefix("100.64.0.0/10")
	bench    = netip.MustParsePrefix("198.18.0.0/15")
	reserved = netip.MustParsePrefix("240.0.0.0/4")
	thisNet  = netip.MustParsePrefix("0.0.0.0/8")
	ietf     = netip.MustParsePrefix("192.0.0.0/24")
)

// classify says how bad an address is as a target; Info means public.
func (c *Checker) classify(a netip.Addr) (detect.Severity, string) {
	a = a.Unmap()
	for _, p := range c.o.AllowPrefixes {
		if p.Contains(a) {
			return detect.Info, ""
		}
	}
	if what, ok := metadata[a]; ok {
		return detect.Critical, what
	}
	switch {
	case a.IsLoopback():
		return detect.High, "a loopback address (this host)"
	case a.IsUnspecified() || thisNet.Contains(a):
		return detect.High, "the unspecified address (this host)"
	case a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast():
		return detect.High, "a link-local address"
	case a.IsPrivate():
		if c.o.AllowPrivate {
			return detect.Info, ""
		}
		return detect.High, "a private network address"
	case cgnat.Contains(a):
		return detect.Medium, "a carrier-grade NAT (shared) address"
	case a.IsMulticast() || reserved.Contains(a) || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return detect.Medium, "a multicast, broadcast or reserved address"
	case bench.Contains(a) || ietf.Contains(a):
		return detect.Medium, "a special-purpose address"
	}
	return detect.Info, ""
}

// classifyName recognizes names that mean this host or internal services without DNS.
func (c *Checker) classifyName(h string) (detect.Severity, string) {
	switch {
	case h == "localhost" || strings.HasSuffix(h, ".localhost") || h == "localhost.localdomain" || h == "ip6-localhost" || h == "ip6-loopback":
		return detect.High, "localhost"
	case h == "metadata.google.internal" || h == "metadata" || h == "instance-data" || h == "instance-data.ec2.internal" || h == "metadata.azure.com":
		return detect.Critical, "the cloud metadata service (" + h + ")"
	case h == "localtest.me" || strings.HasSuffix(h, ".localtest.me") || h == "lvh.me" || strings.HasSuffix(h, ".lvh.me") || h == "vcap.me" || strings.HasSuffix(h, ".vcap.me"):
		return detect.High, "a public name that resolves to loopback (" + h + ")"
	case strings.HasSuffix(h, ".internal") || strings.HasSuffix(h, ".local") || strings.HasSuffix(h, ".lan") || strings.HasSuffix(h, ".intranet") || strings.HasSuffix(h, ".corp") || strings.HasSuffix(h, ".home.arpa"):
		if c.o.AllowPrivate {
			return detect.Info, ""
		}
		return detect.Medium, "an internal host name (" + h + ")"
	}
	// Wildcard DNS that embeds an address: 127.0.0.1.nip.io, 10-0-0-1.sslip.io, 7f000001.nip.io.
	for _, suffix := range []string{".nip.io", ".sslip.io", ".xip.io", ".traefik.me", ".localh.st"} {
		if strings.HasSuffix(h, suffix) {
			label := strings.TrimSuffix(h, suffix)
			if i := strings.LastIndexAny(label, "."); i >= 0 && strings.Count(label, ".") != 3 {
				label = label[i+1:]
			}
			cands := []string{label, strings.ReplaceAll(label, "-", ".")}
			if j := strings.LastIndex(label, "-"); j >= 0 {
				cands = append(cands, label[j+1:])
			}
			if len(label) == 8 {
				cands = append(cands, "0x"+label)
			}
			for _, cand := range cands {
				if a, _, ok := ParseHost(cand); ok {
					if sev, what := c.classify(a); sev > detect.Info {
						return sev, what + " through wildcard DNS (" + h + ")"
					}
				}
			}
		}
	}
	return detect.Info, ""
}
