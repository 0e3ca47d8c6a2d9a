// Package canary makes honeytokens and finds them. A canary is a value that looks like a
// credential, a file path or a URL, planted in configurations and data where only a thief
// or a hijacked model would pick it up; seeing one in a tool call's arguments or in a
// result means something read what it should not. Every sighting is critical.
//
// Canaries are kept in a JSON file (by default portcullis-canaries.json next to the
// configuration; PORTCULLIS_CANARY_FILE overrides it), written by `portcullis canary create`.
package canary

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/detect"
)

// Name is the detector's name in findings.
const Name = "canary"

// EnvFile names the canary file when set.
const EnvFile = "PORTCULLIS_CANARY_FILE"

// Kinds of canaries.
const (
	AWS   = "aws"   // an AWS access key id and secret
	Token = "token" // an API token
	Path  = "path"  // a file path
	URL   = "url"   // a URL
	Tool  = "tool"  // a decoy tool: listed to the model, never to be called
)

// Canary is one honeytoken.
type Canary struct {
	ID      string    `json:"id"`
	Kind    string    `json:"kind"`
	Values  []string  `json:"values"` // what is planted; any of them is a sighting
	Note    string    `json:"note,omitempty"`
	Created time.Time `json:"created"`
}

// File is the canary file.
type File struct {
	Canaries []Canary `json:"canaries"`
}

// Load reads a canary file; a missing file is an empty set.
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &File{}, nil
	}
	if err != nil {
		return nil, err
	}
	var f File
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &f, nil
}

// Save writes the file (mode 0600: it lists the values to watch).
func (f *File) Save(path string) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

const base32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func random(alphabet string, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		k, _ := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		b.WriteByte(alphabet[k.Int64()])
	}
	return b.String()
}

// New makes a canary of a kind. base, for paths and URLs, is where it points (a directory
// or a URL prefix); empty gives a plausible default.
func New(kind, base, note string) (Canary, error) {
	c := Canary{ID: strings.ToLower(random(base32, 10)), Kind: kind, Note: note, Created: time.Now().UTC().Truncate(time.Second)}
	switch kind {
	case AWS:
		c.Values = []string{"AKIA" + random(base32, 16), random(alnum+"/+", 40)}
	case Token:
		c.Values = []string{"sk_" + random(alnum, 40)}
	case Path:
		if base == "" {
			base = "~/.config/backup-" + c.ID
		}
		c.Values = []string{strings.TrimRight(base, "/") + "/credentials-" + c.ID + ".json"}
	case URL:
		if base == "" {
			base = "https://internal-" + c.ID + ".example.com"
		}
		c.Values = []string{strings.TrimRight(base, "/") + "/api/v1/keys/" + c.ID}
	case Tool:
		// base is the decoy's name; the default reads as a tool worth stealing with.
		if base == "" {
			base = "export_workspace_credentials"
		}
		if !validToolName(base) {
			return Canary{}, fmt.Errorf("decoy tool name %q: use 1 to 64 of A-Z a-z 0-9 _ -", base)
		}
		c.Values = []string{base}
	default:
		return Canary{}, fmt.Errorf("unknown canary kind %q (aws, token, path, url, tool)", kind)
	}
	return c, nil
}

func validToolName(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// DecoyDescription is what the model reads about a decoy tool.
const DecoyDescription = "Returns the API keys, tokens and passwords stored for this workspace (internal administration)."

// DecoyTool returns the tools/list entry of a decoy tool named name.
func DecoyTool(name string) []byte {
	b, _ := json.Marshal(map[string]any{"name": name, "description": DecoyDescription,
		"inputSchema": map[string]any{"type": "object", "properties": map[string]any{
			"scope": map[string]any{"type": "string", "description": "which credentials: all, cloud or database"}}}})
	return b
}

// Decoys returns the decoy tools of a file, by name.
func (f *File) Decoys() map[string]Canary {
	out := map[string]Canary{}
	if f == nil {
		return out
	}
	for _, c := range f.Canaries {
		if c.Kind == Tool && len(c.Values) == 1 {
			out[c.Values[0]] = c
		}
	}
	return out
}

// DecoyCalled is the critical finding for a call of a decoy tool.
func DecoyCalled(c Canary, pointer string) detect.Finding {
	return detect.Finding{Detector: Name, Rule: Tool, Severity: detect.Critical, Pointer: pointer, Evidence: "canary " + c.ID,
		Message: fmt.Sprintf("the decoy tool %q (canary %s) was called: no task needs it, so the model follows someone else's instructions", c.Values[0], c.ID)}
}

// Scanner finds canary values in text. It is safe for concurrent use.
type Scanner struct {
	kw    *detect.Keywords
	owner []Canary // by pattern id
}

// NewScanner returns a scanner for the canaries of a file (nil when there are none).
func NewScanner(f *File) *Scanner {
	if f == nil || len(f.Canaries) == 0 {
		return nil
	}
	s := &Scanner{}
	var pats []string
	for _, c := range f.Canaries {
		if c.Kind == Tool {
			continue // a tool name is matched when called, not in text
		}
		for _, v := range c.Values {
			if len(v) < 8 {
				continue
			}
			pats = append(pats, strings.ToLower(v))
			s.owner = append(s.owner, c)
			if strings.HasPrefix(v, "~/") { // the same file named from the root of a home
				pats = append(pats, strings.ToLower(v[1:]))
				s.owner = append(s.owner, c)
			}
		}
	}
	if len(pats) == 0 {
		return nil
	}
	s.kw = detect.NewKeywords(pats)
	return s
}

// Scan returns a critical finding for each canary seen in text.
func (s *Scanner) Scan(text, pointer string) []detect.Finding {
	if s == nil {
		return nil
	}
	var out []detect.Finding
	seen := map[string]bool{}
	s.kw.Scan(text, func(id, end int) bool {
		c := s.owner[id]
		if seen[c.ID] {
			return true
		}
		seen[c.ID] = true
		out = append(out, detect.Finding{Detector: Name, Rule: c.Kind, Severity: detect.Critical, Pointer: pointer,
			Evidence: "canary " + c.ID, Message: fmt.Sprintf("a canary token (%s, %s) was used: something read what only a thief would", c.Kind, c.ID),
			Start: max(0, end-s.kw.Len(id)), End: end})
		return true
	})
	return out
}

// Match reports the first canary seen in text.
func (s *Scanner) Match(text string) (Canary, bool) {
	if s == nil || s.kw == nil {
		return Canary{}, false
	}
	var c Canary
	found := false
	s.kw.Scan(text, func(id, _ int) bool {
		c, found = s.owner[id], true
		return false
	})
	return c, found
}

// Request returns the canaries in an outgoing HTTP request: its URL (host, path and query,
// percent-decoded too) and header values. The sandbox's egress proxy calls it on every
// request a server makes (for CONNECT, with the authority alone as rawURL), so that a
// canary leaving through the network raises the same critical alert as one leaving in a
// tool call's arguments.
func (s *Scanner) Request(method, rawURL string, header http.Header) []detect.Finding {
	if s == nil {
		return nil
	}
	var out []detect.Finding
	seen := map[string]bool{}
	add := func(fs []detect.Finding) {
		for _, f := range fs {
			if !seen[f.Evidence] {
				seen[f.Evidence] = true
				out = append(out, f)
			}
		}
	}
	add(s.Scan(rawURL, "/url"))
	if u, err := url.PathUnescape(rawURL); err == nil && u != rawURL {
		add(s.Scan(u, "/url"))
	}
	if u, err := url.QueryUnescape(rawURL); err == nil && u != rawURL {
		add(s.Scan(u, "/url"))
	}
	for k, vs := range header {
		for _, v := range vs {
			add(s.Scan(v, detect.Pointer("headers", k)))
		}
	}
	for i := range out {
		out[i].Message = fmt.Sprintf("a canary token (%s) left in an outgoing %s request: something read what only a thief would", out[i].Evidence, method)
	}
	return out
}

// Open returns the scanner of the canary file at path ("" : $PORTCULLIS_CANARY_FILE; none
// set: nil, nil). A missing file is no canaries.
func Open(path string) (*Scanner, error) {
	if path == "" {
		path = os.Getenv(EnvFile)
	}
	if path == "" {
		return nil, nil
	}
	f, err := Load(path)
	if err != nil {
		return nil, err
	}
	return NewScanner(f), nil
}

// DefaultFile returns the canary file for a configuration file: $PORTCULLIS_CANARY_FILE, or
// portcullis-canaries.json next to the configuration (or in the working directory).
func DefaultFile(configFile string) string {
	if p := os.Getenv(EnvFile); p != "" {
		return p
	}
	dir := "."
	if configFile != "" {
		dir = filepath.Dir(configFile)
	}
	return filepath.Join(dir, "portcullis-canaries.json")
}
