// Package detect holds what every detector shares: findings and their severities, JSON
// pointers, the walk over the strings of a raw JSON value, in-place edits of those strings,
// a case-insensitive keyword automaton, and the Unicode/ANSI normalizer.
//
// Detectors live in their own packages (internal/detect/<name>) and are pure: they read
// text or raw JSON and return findings. Guards (internal/guards/detect*) map findings to
// actions. Nothing here does I/O, and every detector is bounded in time by the size of its
// input.
package detect

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Severity orders findings. Medium and above are "warning level": they are what the
// guards act on by default and what the evaluation counts as flagged.
type Severity int

const (
	Info Severity = iota
	Low
	Medium
	High
	Critical
)

var severityNames = [...]string{"info", "low", "medium", "high", "critical"}

func (s Severity) String() string {
	if s < Info || s > Critical {
		return fmt.Sprintf("severity(%d)", int(s))
	}
	return severityNames[s]
}

// ParseSeverity parses a severity name.
func ParseSeverity(name string) (Severity, error) {
	for i, n := range severityNames {
		if strings.EqualFold(name, n) {
			return Severity(i), nil
		}
	}
	return Info, fmt.Errorf("unknown severity %q (want info, low, medium, high or critical)", name)
}

// MarshalText implements encoding.TextMarshaler.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// UnmarshalYAML lets configuration say `min_severity: high`.
func (s *Severity) UnmarshalYAML(unmarshal func(any) error) error {
	var name string
	if err := unmarshal(&name); err != nil {
		return err
	}
	return s.UnmarshalText([]byte(name))
}

// Finding is one thing a detector found.
type Finding struct {
	Detector string   `json:"detector"`       // the detector's package name: "secrets", "ssrf", ...
	Rule     string   `json:"rule,omitempty"` // the rule within the detector: "aws-access-key", ...
	Severity Severity `json:"severity"`
	Pointer  string   `json:"pointer"`            // RFC 6901 pointer into the scanned JSON ("" = the whole value)
	Evidence string   `json:"evidence,omitempty"` // what was seen, redacted: never a whole secret
	Message  string   `json:"message"`            // a sentence a person understands

	// Start and End are byte offsets of the match in the (unescaped, unnormalized) string
	// at Pointer, when the detector knows them; redaction replaces that span.
	Start int `json:"-"`
	End   int `json:"-"`
}

func (f Finding) String() string {
	s := fmt.Sprintf("%s %s", f.Severity, f.Detector)
	if f.Rule != "" {
		s += "/" + f.Rule
	}
	if f.Pointer != "" {
		s += " at " + f.Pointer
	}
	s += ": " + f.Message
	if f.Evidence != "" {
		s += " (" + f.Evidence + ")"
	}
	return s
}

// Max returns the highest severity among findings, and false when there are none.
func Max(fs []Finding) (Severity, bool) {
	if len(fs) == 0 {
		return Info, false
	}
	m := fs[0].Severity
	for _, f := range fs[1:] {
		if f.Severity > m {
			m = f.Severity
		}
	}
	return m, true
}

// AtLeast returns the findings of severity min or above.
func AtLeast(fs []Finding, min Severity) []Finding {
	var out []Finding
	for _, f := range fs {
		if f.Severity >= min {
			out = append(out, f)
		}
	}
	return out
}

// Data turns findings into what a refusal or an annotation carries: plain maps, so that
// they marshal the same everywhere.
func Data(fs []Finding) []map[string]any {
	out := make([]map[string]any, 0, len(fs))
	for _, f := range fs {
		m := map[string]any{"detector": f.Detector, "severity": f.Severity.String(), "pointer": f.Pointer, "message": f.Message}
		if f.Rule != "" {
			m["rule"] = f.Rule
		}
		if f.Evidence != "" {
			m["evidence"] = f.Evidence
		}
		out = append(out, m)
	}
	return out
}

// MarshalFindings returns findings as a JSON array.
func MarshalFindings(fs []Finding) json.RawMessage {
	b, _ := json.Marshal(Data(fs))
	return b
}

// Pointer escapes one reference token (RFC 6901: "~" as "~0", "/" as "~1").
func Pointer(tokens ...string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		for i := 0; i < len(t); i++ {
			switch t[i] {
			case '~':
				b.WriteString("~0")
			case '/':
				b.WriteString("~1")
			default:
				b.WriteByte(t[i])
			}
		}
	}
	return b.String()
}

// maxEvidence bounds evidence in runes.
const maxEvidence = 80

// Evidence returns s shortened for a finding, with control and invisible characters
// shown as escapes so that a person reading it sees what the model would not.
func Evidence(s string) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n >= maxEvidence {
			b.WriteString("…")
			break
		}
		if r == utf8.RuneError || IsInvisible(r) || r < 0x20 || r == 0x7f {
			fmt.Fprintf(&b, "\\u{%x}", r)
		} else {
			b.WriteRune(r)
		}
		n++
	}
	return b.String()
}

// Mask returns a secret as evidence: its first four characters, then how long it was.
func Mask(secret string) string {
	if len(secret) <= 8 {
		return fmt.Sprintf("[%d chars]", utf8.RuneCountInString(secret))
	}
	prefix := secret[:4]
	if !utf8.ValidString(prefix) {
		prefix = ""
	}
	return fmt.Sprintf("%s…[%d chars]", Evidence(prefix), utf8.RuneCountInString(secret))
}
