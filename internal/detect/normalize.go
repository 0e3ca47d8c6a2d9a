package detect

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Hidden is something in a text that a person does not see but a model reads (or a
// terminal obeys): invisible characters and escape sequences.
type Hidden struct {
	Start, End int    // byte range in the original text
	Kind       string // "tag", "bidi", "zero-width", "variation-selector", "ansi", "control"
	Rune       rune   // the first rune of the range
}

// Hidden kinds.
const (
	KindTag       = "tag"                // U+E0000–E007F: can carry invisible ASCII ("ASCII smuggling")
	KindBidi      = "bidi"               // overrides and isolates that reorder what is displayed
	KindZeroWidth = "zero-width"         // zero-width spaces, joiners, word joiners, BOM, soft hyphen...
	KindVariation = "variation-selector" // variation selectors (can also smuggle bytes)
	KindANSI      = "ansi"               // terminal escape sequences (CSI, OSC, ...)
	KindControl   = "control"            // other C0/C1 control characters
)

// invisibleKind classifies a rune that renders as nothing; "" for any other rune.
func invisibleKind(r rune) string {
	switch {
	case r < 0x80:
		return ""
	case r >= 0xE0000 && r <= 0xE007F:
		return KindTag
	case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069, r == 0x200E, r == 0x200F, r == 0x061C:
		return KindBidi
	case r >= 0xFE00 && r <= 0xFE0F, r >= 0xE0100 && r <= 0xE01EF, r >= 0x180B && r <= 0x180F:
		return KindVariation
	case r >= 0x200B && r <= 0x200D, r >= 0x2060 && r <= 0x2065, r >= 0x206A && r <= 0x206F,
		r == 0xFEFF, r == 0x00AD, r == 0x034F, r == 0x115F, r == 0x1160, r == 0x17B4, r == 0x17B5,
		r == 0x3164, r == 0xFFA0, r >= 0xFFF9 && r <= 0xFFFB, r >= 0x1BCA0 && r <= 0x1BCA3,
		r >= 0x1D173 && r <= 0x1D17A:
		return KindZeroWidth
	case r >= 0x80 && r <= 0x9F:
		return KindControl
	}
	return ""
}

// IsInvisible reports whether r renders as nothing (or is a control character).
func IsInvisible(r rune) bool { return invisibleKind(r) != "" }

// isEmojiish reports runes next to which a zero-width joiner or a variation selector is
// ordinary (emoji sequences, CJK variation).
func isEmojiish(r rune) bool {
	return r >= 0x1F000 || (r >= 0x2190 && r <= 0x2BFF) || (r >= 0x3000 && r <= 0x9FFF) || r == 0x20E3 || r == 0xA9 || r == 0xAE
}

var notPlain = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = c >= 0x80 || c == 0x7f || (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
	}
	return t
}()

// Plain reports whether s holds only printable ASCII, tabs and newlines: nothing to
// normalize and nothing hidden.
func Plain(s string) bool { return plain(s) }

func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if notPlain[s[i]] {
			return false
		}
	}
	return true
}

// FindHidden returns what is hidden in s. Zero-width joiners and variation selectors inside
// emoji or CJK sequences are ordinary text and not reported.
func FindHidden(s string) []Hidden {
	if plain(s) {
		return nil
	}
	var out []Hidden
	prev := rune(0)
	for i := 0; i < len(s); {
		c := s[i]
		if c == 0x1b {
			end := ansiEnd(s, i)
			out = append(out, Hidden{Start: i, End: end, Kind: KindANSI, Rune: 0x1b})
			i, prev = end, 0
			continue
		}
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c == 0x7f {
			out = append(out, Hidden{Start: i, End: i + 1, Kind: KindControl, Rune: rune(c)})
			i++
			continue
		}
		if c < 0x80 {
			i++
			prev = rune(c)
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == 0x9b { // C1 CSI
			end := ansiEnd(s, i)
			out = append(out, Hidden{Start: i, End: end, Kind: KindANSI, Rune: r})
			i, prev = end, 0
			continue
		}
		if k := invisibleKind(r); k != "" {
			benign := false
			if r == 0x200D || r == 0x200C || (r >= 0xFE00 && r <= 0xFE0F) {
				next, _ := utf8.DecodeRuneInString(s[i+n:])
				benign = isEmojiish(prev) || isEmojiish(next) || (r != 0xFE0F && r >= 0xFE00) && prev >= 0x80 ||
					(r == 0x200C || r == 0x200D) && (prev >= 0x80 || next >= 0x80)
			}
			if !benign {
				// Merge a run of the same kind.
				if m := len(out); m > 0 && out[m-1].End == i && out[m-1].Kind == k {
					out[m-1].End = i + n
				} else {
					out = append(out, Hidden{Start: i, End: i + n, Kind: k, Rune: r})
				}
			}
		}
		prev = r
		i += n
	}
	return out
}

// ansiEnd returns the end of the escape sequence starting at i (ESC or C1 CSI).
func ansiEnd(s string, i int) int {
	j := i + 1
	if s[i] != 0x1b { // U+009B: two bytes, then CSI parameters
		j = i + 2
		return csiEnd(s, j)
	}
	if j >= len(s) {
		return j
	}
	switch s[j] {
	case '[':
		return csiEnd(s, j+1)
	case ']', 'P', '^', '_', 'X': // OSC, DCS, PM, APC: to BEL or ST
		for k := j + 1; k < len(s) && k < j+4096; k++ {
			if s[k] == 0x07 {
				return k + 1
			}
			if s[k] == 0x1b && k+1 < len(s) && s[k+1] == '\\' {
				return k + 2
			}
		}
		return min(len(s), j+4096)
	default:
		if s[j] >= 0x20 && s[j] <= 0x7e {
			return j + 1
		}
		return j
	}
}

func csiEnd(s string, j int) int {
	for k := j; k < len(s) && k < j+64; k++ {
		if s[k] >= 0x40 && s[k] <= 0x7e {
			return k + 1
		}
		if s[k] < 0x20 || s[k] > 0x7e {
			return k
		}
	}
	return min(len(s), j+64)
}

// TagText decodes the ASCII carried by Unicode tag characters in s ("" when none).
func TagText(s string) string {
	if plain(s) {
		return ""
	}
	var b strings.Builder
	for _, r := range s {
		if r >= 0xE0020 && r <= 0xE007E {
			b.WriteByte(byte(r - 0xE0000))
		}
	}
	return b.String()
}

// Normalize returns s as detectors should read it: hidden characters and escape
// sequences removed, compatibility forms folded (fullwidth and mathematical letters,
// circled letters, odd spaces) and common Cyrillic and Greek look-alikes mapped to Latin;
// ASCII smuggled in tag characters is appended on a line of its own. Case is kept (the
// keyword matcher ignores ASCII case). Plain ASCII is returned as it is, without copying.
func Normalize(s string) string {
	if plain(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	hidden := FindHidden(s)
	h := 0
	for i := 0; i < len(s); {
		if h < len(hidden) && i == hidden[h].Start {
			i = hidden[h].End
			h++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		if r < 0x80 {
			b.WriteByte(byte(r))
			continue
		}
		if f := fold(r); f != 0 {
			b.WriteRune(f)
			continue
		}
		if invisibleKind(r) != "" { // an ordinary joiner in an emoji: drop it for matching
			continue
		}
		b.WriteRune(r)
	}
	if t := TagText(s); t != "" {
		b.WriteByte('\n')
		b.WriteString(t)
	}
	return b.String()
}

var confusables = map[rune]rune{
	// Cyrillic
	'а': 'a', 'е': 'e', 'о': 'o', 'р': 'p', 'с': 'c', 'у': 'y', 'х': 'x', 'і': 'i', 'ј': 'j', 'ѕ': 's',
	'ԁ': 'd', 'һ': 'h', 'ӏ': 'l', 'ԛ': 'q', 'ԝ': 'w', 'ь': 'b', 'ɡ': 'g',
	'А': 'A', 'В': 'B', 'Е': 'E', 'К': 'K', 'М': 'M', 'Н': 'H', 'О': 'O', 'Р': 'P', 'С': 'C', 'Т': 'T',
	'Х': 'X', 'У': 'Y', 'І': 'I', 'Ј': 'J', 'Ѕ': 'S',
	// Greek
	'α': 'a', 'ο': 'o', 'ι': 'i', 'κ': 'k', 'ν': 'v', 'ρ': 'p', 'υ': 'u', 'χ': 'x',
	'Α': 'A', 'Β': 'B', 'Ε': 'E', 'Ζ': 'Z', 'Η': 'H', 'Ι': 'I', 'Κ': 'K', 'Μ': 'M', 'Ν': 'N', 'Ο': 'O',
	'Ρ': 'P', 'Τ': 'T', 'Υ': 'Y', 'Χ': 'X',
	// Punctuation look-alikes
	'‐': '-', '‑': '-', '‒': '-', '–': '-', '—': '-', '−': '-', '⁄': '/', '∕': '/', '＼': '\\',
	'‘': '\'', '’': '\'', '“': '"', '”': '"', '․': '.', '。': '.',
}

// fold maps a rune to the ASCII it stands for, or 0.
func fold(r rune) rune {
	switch {
	case r >= 0xFF01 && r <= 0xFF5E: // fullwidth ASCII
		return r - 0xFEE0
	case r == 0x00A0 || r == 0x1680 || (r >= 0x2000 && r <= 0x200A) || r == 0x202F || r == 0x205F || r == 0x3000:
		return ' '
	case r >= 0x1D400 && r <= 0x1D6A3: // mathematical alphanumerics: 13 alphabets of 52
		i := (r - 0x1D400) % 52
		if i < 26 {
			return 'A' + i
		}
		return 'a' + i - 26
	case r >= 0x1D7CE && r <= 0x1D7FF:
		return '0' + (r-0x1D7CE)%10
	case r >= 0x2460 && r <= 0x2468: // circled digits
		return '1' + r - 0x2460
	case r == 0x24EA:
		return '0'
	case r >= 0x24B6 && r <= 0x24CF: // circled capitals
		return 'A' + r - 0x24B6
	case r >= 0x24D0 && r <= 0x24E9:
		return 'a' + r - 0x24D0
	case r >= 0x1F130 && r <= 0x1F149: // squared capitals
		return 'A' + r - 0x1F130
	}
	return confusables[r]
}

// Clean returns s with hidden content removed (visible false) or shown as visible escapes
// such as ⟨U+200B⟩ and ␛[31m (visible true), and what was hidden.
func Clean(s string, visible bool) (string, []Hidden) {
	hidden := FindHidden(s)
	if len(hidden) == 0 {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	at := 0
	for _, h := range hidden {
		b.WriteString(s[at:h.Start])
		if visible {
			b.WriteString(Visible(s[h.Start:h.End]))
		}
		at = h.End
	}
	b.WriteString(s[at:])
	return b.String(), hidden
}

// Visible spells out invisible characters and controls of s.
func Visible(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == 0x1b:
			b.WriteRune('␛')
		case r < 0x20 && r != '\t' && r != '\n' && r != '\r', r == 0x7f:
			fmt.Fprintf(&b, "⟨U+%04X⟩", r)
		case IsInvisible(r):
			fmt.Fprintf(&b, "⟨U+%04X⟩", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
