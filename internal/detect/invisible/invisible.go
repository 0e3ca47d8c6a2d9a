// Package invisible reports what a text hides from a person but not from a model or a
// terminal: Unicode tag characters (which can carry a whole hidden message), bidi
// overrides, zero-width characters, variation selectors, ANSI escape sequences and other
// control characters (see detect.FindHidden).
package invisible

import (
	"fmt"

	"github.com/portcullis-mcp/portcullis/internal/detect"
)

// Name is the detector's name in findings.
const Name = "invisible"

var messages = map[string]string{
	detect.KindTag:       "the text hides characters in Unicode tags (invisible text a model can read)",
	detect.KindBidi:      "the text contains bidirectional overrides that reorder what is displayed",
	detect.KindZeroWidth: "the text contains zero-width characters",
	detect.KindVariation: "the text contains variation selectors outside emoji (can smuggle data)",
	detect.KindANSI:      "the text contains terminal escape sequences",
	detect.KindControl:   "the text contains control characters",
}

// Severity says how bad count hidden runs of a kind are.
func Severity(kind string, count int) detect.Severity {
	switch kind {
	case detect.KindTag:
		return detect.High
	case detect.KindBidi, detect.KindANSI:
		return detect.Medium
	case detect.KindVariation:
		if count >= 4 {
			return detect.Medium
		}
	case detect.KindZeroWidth:
		if count >= 3 {
			return detect.Medium
		}
	}
	return detect.Low
}

// Findings turns what FindHidden returned for text at pointer into findings, one per kind.
func Findings(text string, hidden []detect.Hidden, pointer string) []detect.Finding {
	if len(hidden) == 0 {
		return nil
	}
	counts := map[string]int{}
	first := map[string]detect.Hidden{}
	var order []string
	for _, h := range hidden {
		if counts[h.Kind] == 0 {
			order = append(order, h.Kind)
			first[h.Kind] = h
		}
		counts[h.Kind]++
	}
	var out []detect.Finding
	for _, k := range order {
		h := first[k]
		ev := detect.Visible(text[h.Start:h.End])
		if k == detect.KindTag {
			if t := detect.TagText(text); t != "" {
				ev = "hidden text: " + detect.Evidence(t)
			}
		}
		out = append(out, detect.Finding{Detector: Name, Rule: k, Severity: Severity(k, counts[k]), Pointer: pointer,
			Evidence: detect.Evidence(ev), Message: fmt.Sprintf("%s (%d)", messages[k], counts[k]), Start: h.Start, End: h.End})
	}
	return out
}

// Scan returns findings for text.
func Scan(text, pointer string) []detect.Finding {
	return Findings(text, detect.FindHidden(text), pointer)
}
