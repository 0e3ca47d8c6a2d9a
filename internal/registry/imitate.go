package registry

import (
	"slices"
	"strings"
	"unicode"
)

// confusable maps characters that read alike to one form.
var confusable = strings.NewReplacer("0", "o", "1", "l", "3", "e", "4", "a", "5", "s", "7", "t", "@", "a", "$", "s",
	"rn", "m", "vv", "w", "-", "", "_", "", ".", "", " ", "")

// affixes are words added to a name to make a copy look official.
var affixes = []string{"mcp", "server", "official", "real", "the", "secure", "verified", "new"}

// skeleton is a name reduced to what a reader compares: lowercase, confusable characters
// folded, separators and official-sounding affixes removed.
func skeleton(name string) string {
	s := confusable.Replace(strings.ToLower(name))
	for changed := true; changed; {
		changed = false
		for _, a := range affixes {
			if len(s) > len(a)+2 {
				if t, ok := strings.CutPrefix(s, a); ok {
					s, changed = t, true
				}
				if t, ok := strings.CutSuffix(s, a); ok {
					s, changed = t, true
				}
			}
		}
	}
	return s
}

// Imitates reports whether name a looks like a copy of name b without being b: the same
// skeleton, or one character away (two for long names).
func Imitates(a, b string) bool {
	if a == b || a == "" || b == "" {
		return false
	}
	sa, sb := skeleton(a), skeleton(b)
	if sa == sb {
		return true
	}
	d := distance(sa, sb)
	n := min(len(sa), len(sb))
	return (n >= 4 && d <= 1) || (n >= 8 && d <= 2)
}

// ToolImitates returns the other server whose name a tool of server carries (tool
// "github_create_issue" on server "notes", with a server "github"), or "".
func ToolImitates(tool, server string, servers []string) string {
	tt := words(tool)
	own := words(server)
	for _, o := range servers {
		if o == server {
			continue
		}
		ow := words(o)
		if len(strings.Join(ow, "")) < 4 || contains(own, ow) {
			continue
		}
		if contains(tt, ow) {
			return o
		}
	}
	return ""
}

// words splits a name at separators and case changes, in lowercase.
func words(s string) []string {
	var out []string
	var cur []rune
	prevLower := false
	flush := func() {
		if len(cur) > 0 {
			out = append(out, strings.ToLower(string(cur)))
			cur = cur[:0]
		}
	}
	for _, r := range s {
		switch {
		case r == '_' || r == '-' || r == '.' || r == ' ' || r == '/':
			flush()
			prevLower = false
			continue
		case unicode.IsUpper(r) && prevLower:
			flush()
		}
		cur = append(cur, r)
		prevLower = unicode.IsLower(r) || unicode.IsDigit(r)
	}
	flush()
	return out
}

// contains reports whether seq appears in ws as consecutive words.
func contains(ws, seq []string) bool {
	if len(seq) == 0 {
		return false
	}
	for i := 0; i+len(seq) <= len(ws); i++ {
		if slices.Equal(ws[i:i+len(seq)], seq) {
			return true
		}
	}
	return false
}

// distance is the Levenshtein distance of two short names.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		if a == b {
			return 0
		}
		return 64
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
