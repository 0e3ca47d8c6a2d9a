// Package scan inspects MCP servers and the client configurations that start them.
// Static checks read a configuration entry (unpinned packages, secrets written into it,
// plain HTTP off loopback, servers run with sudo or as root, dangerous flags). Dynamic
// checks start a stdio server (through internal/upstream, so in the sandbox when one is
// configured there) or connect to an HTTP server, list its tools, prompts and resources
// and run the listing detectors on them (internal/detect/poisoning), compare them with
// their pins, and probe HTTP servers for missing authentication, missing Origin checks
// (DNS rebinding), session ids in URLs and bad TLS. Active checks (opt-in) call tools with
// injection payloads and use canaries to see command execution, path traversal and SSRF
// actually happen.
package scan

import (
	"fmt"
	"sort"
	"strings"

	"github.com/portcullis-mcp/portcullis/internal/clientconfig"
	"github.com/portcullis-mcp/portcullis/internal/detect"
)

// Finding is one problem found.
type Finding struct {
	Rule     string          `json:"rule"` // a Rules key
	Severity detect.Severity `json:"severity"`
	Message  string          `json:"message"`
	Evidence string          `json:"evidence,omitempty"` // redacted
	Location Location        `json:"location"`
	Detector string          `json:"detector,omitempty"` // the detector behind a listing finding
}

// Location says where a finding is.
type Location struct {
	File    string `json:"file,omitempty"`    // the configuration file of the server
	Line    int    `json:"line,omitempty"`    // the server's entry in it
	URL     string `json:"url,omitempty"`     // an HTTP server
	Client  string `json:"client,omitempty"`  // the client whose configuration it is
	Server  string `json:"server,omitempty"`  // the server's name
	Item    string `json:"item,omitempty"`    // tool:NAME, prompt:NAME, resource:URI, template:URI, instructions, param:NAME
	Pointer string `json:"pointer,omitempty"` // JSON pointer in the item (or in the entry, for static findings)
}

func (l Location) String() string {
	var parts []string
	switch {
	case l.File != "" && l.Line > 0:
		parts = append(parts, fmt.Sprintf("%s:%d", l.File, l.Line))
	case l.File != "":
		parts = append(parts, l.File)
	case l.URL != "":
		parts = append(parts, l.URL)
	}
	if l.Server != "" {
		parts = append(parts, "server "+l.Server)
	}
	if l.Item != "" {
		parts = append(parts, l.Item)
	}
	if l.Pointer != "" {
		parts = append(parts, l.Pointer)
	}
	return strings.Join(parts, " ")
}

// Rule describes a kind of finding.
type Rule struct {
	ID    string // stable id for SARIF: PCS + number
	Short string
	Help  string
}

// Rules are the kinds of findings, by name.
var Rules = map[string]Rule{
	"unpinned-package":  {"PCS101", "Package not pinned to a version", "Pin the package (npx pkg@1.2.3, uvx pkg==1.2.3, image@sha256:...): an unpinned package runs whatever was published last."},
	"secret-in-config":  {"PCS102", "Secret written into the configuration", "Move the secret out of the file: reference an environment variable or a secret store, and rotate the value."},
	"plaintext-http":    {"PCS103", "HTTP without TLS off loopback", "Use https:// for servers not on this machine."},
	"privileged":        {"PCS104", "Server runs with elevated privileges", "Run the server as an unprivileged user, without sudo, --privileged or root."},
	"dangerous-flag":    {"PCS105", "Dangerous flag or setting", "Remove the flag, or narrow what it allows."},
	"auto-approve":      {"PCS106", "Tool calls run without confirmation", "Let the client ask before calling tools, at least for tools that write or send data."},
	"unscanned":         {"PCS201", "Server could not be scanned", "Make the server start (or answer) so that it can be checked; until then it is unchecked."},
	"tool-poisoning":    {"PCS202", "Tool poisoning in a listing", "Do not use the server until the description is explained: it addresses the model, not the user."},
	"shadowing":         {"PCS203", "Tool shadows another server's tool", "Rename or remove one of the tools; a copy can capture calls meant for the other."},
	"pin-mismatch":      {"PCS204", "Definition differs from its pin", "Review the change (portcullis pins diff) before approving it: a changed tool is a possible rug pull."},
	"unpinned":          {"PCS205", "Definition not pinned", "Pin the server's definitions (run it through the gateway with the pins guard)."},
	"no-auth":           {"PCS301", "HTTP server answers without authentication", "Require authentication (OAuth, API key, mTLS) on the server or put it behind the gateway."},
	"dns-rebinding":     {"PCS302", "Origin not validated (DNS rebinding)", "Reject requests whose Origin is not allowed (403), as the MCP transport specification asks."},
	"session-id-in-url": {"PCS303", "Session id in the URL", "Carry session ids in the Mcp-Session-Id header: URLs end up in logs and Referer headers."},
	"weak-session-id":   {"PCS304", "Guessable session id", "Use session ids from a cryptographically secure random source, with at least 128 bits."},
	"invalid-tls":       {"PCS305", "Invalid TLS", "Serve a certificate that is valid for the host name, with TLS 1.2 or later."},
	"command-injection": {"PCS401", "Command injection", "Never pass arguments through a shell; use an argument vector and validate inputs."},
	"path-traversal":    {"PCS402", "Path traversal", "Resolve paths and check them against the allowed roots before use."},
	"ssrf":              {"PCS403", "Server-side request forgery", "Fetch only allowed hosts; refuse loopback, private and link-local addresses."},
	"canary-leak":       {"PCS404", "Canary returned", "The server returned a planted value it should not have read."},
}

// Target is one server to scan.
type Target struct {
	Client string // client id ("" for a portcullis configuration or a URL)
	File   string
	Entry  clientconfig.Entry
	// Registry is the server's name in the registry (the gateway configuration), "" when
	// it is not registered; pins are looked up under it.
	Registry string
}

func (t Target) loc() Location {
	l := Location{File: t.File, Line: t.Entry.Line, Client: t.Client, Server: t.Entry.Name}
	if t.File == "" {
		l.URL = t.Entry.URL
	}
	return l
}

// Result is what scanning one target found.
type Result struct {
	Target   Target    `json:"-"`
	Server   string    `json:"server"`
	File     string    `json:"file,omitempty"`
	Tools    []string  `json:"tools,omitempty"`
	Prompts  int       `json:"prompts"`
	Res      int       `json:"resources"`
	Findings []Finding `json:"findings"`
	Error    string    `json:"error,omitempty"`
	Dynamic  bool      `json:"dynamic"` // the server was started or contacted

	dynamic []Finding // what scanning the server found (reused for the same server elsewhere)
}

// Report is a whole scan.
type Report struct {
	Results []*Result `json:"results"`
}

// Findings returns every finding, most severe first.
func (r *Report) Findings() []Finding {
	var out []Finding
	for _, res := range r.Results {
		out = append(out, res.Findings...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Severity > out[j].Severity })
	return out
}

// Max is the highest severity found, and false when nothing was found.
func (r *Report) Max() (detect.Severity, bool) {
	fs := r.Findings()
	if len(fs) == 0 {
		return detect.Info, false
	}
	return fs[0].Severity, true
}

// Counts returns the number of findings by severity.
func (r *Report) Counts() map[detect.Severity]int {
	out := map[detect.Severity]int{}
	for _, f := range r.Findings() {
		out[f.Severity]++
	}
	return out
}
