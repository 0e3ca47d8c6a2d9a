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
	default:
		return Canary{}, fmt.Errorf("unknown canary kind %q (aws, token, path, url)", kind)
	}
	return c, nil
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
