// Package secrets finds secrets and tokens in text: a rule set in the spirit of gitleaks
// (cloud keys, VCS and API tokens, private key blocks, JWTs, credentials in URLs, headers
// and curl command lines) plus generic assignments of high-entropy values to names that
// say secret. Every rule has literal keywords; one pass of a keyword automaton over the
// text decides which rules run, and only on windows of text around their keywords, so
// text without keywords costs one linear scan.
package secrets

import (
	"math"
	"sort"
	"strings"
	"sync"

	"github.com/portcullis-mcp/portcullis/internal/detect"
)

// Name is the detector's name in findings.
const Name = "secrets"

// Match is one secret found in a text.
type Match struct {
	Rule       *Rule
	Start, End int // the secret's byte range in the text
}

// Scanner runs a rule set. It is safe for concurrent use.
type Scanner struct {
	rules   []Rule
	kwOnce  sync.Once
	kw      *detect.Keywords // built by the first Find
	kwRule  []int            // keyword id -> rule index
	kwLen   []int            // keyword id -> bytes it matches
	windows []int            // per rule: bytes after a keyword to search
	part    *detect.Part     // Default's keywords in the shared automaton (see State.HitShared)
}

// New compiles rules (nil: the built-in Rules); the keyword automaton is built by the first
// Find.
func New(rules []Rule) *Scanner {
	if rules == nil {
		rules = Rules
	}
	s := &Scanner{rules: rules}
	for i, r := range rules {
		for _, k := range r.Keywords {
			s.kwRule = append(s.kwRule, i)
			s.kwLen = append(s.kwLen, detect.PatternLen(strings.ToLower(k)))
		}
		w := r.Post
		if w == 0 {
			w = 300
		}
		s.windows = append(s.windows, w)
	}
	return s
}

// automaton returns the keywords' automaton, built once.
func (s *Scanner) automaton() *detect.Keywords {
	s.kwOnce.Do(func() { s.kw = detect.NewKeywords(s.Patterns()) })
	return s.kw
}

// Default is the scanner of the built-in rules. Its keywords are also in the shared
// automaton (detect.Shared), for callers that find secrets and other detectors' patterns
// in one pass (State.HitShared); Find uses the scanner's own, smaller automaton.
var Default = func() *Scanner {
	s := New(nil)
	s.part = detect.Share(s.Patterns)
	return s
}()

// Patterns returns the keywords of the rule set, in the order Hit numbers them (to build a
// combined automaton with other detectors; see State).
func (s *Scanner) Patterns() []string {
	out := make([]string, 0, len(s.kwRule))
	for _, r := range s.rules {
		for _, k := range r.Keywords {
			out = append(out, strings.ToLower(k))
		}
	}
	return out
}

// State collects the matches of one text; feed it keyword hits with Hit, then call Matches.
type State struct {
	s       *Scanner
	text    string
	out     []Match
	lastEnd map[int]int // rule -> end of the last window searched
}

// Start returns the state for scanning text.
func (s *Scanner) Start(text string) *State { return &State{s: s, text: text} }

// Find returns the secrets in text, sorted by position, without overlaps.
func (s *Scanner) Find(text string) []Match {
	st := s.Start(text)
	s.automaton().Scan(text, func(id, end int) bool { st.Hit(id, end); return true })
	return st.Matches()
}

// Hit handles keyword id (numbered as in Patterns) ending at end.
func (st *State) Hit(id, end int) {
	s, text := st.s, st.text
	func() bool {
		ri := s.kwRule[id]
		r := &s.rules[ri]
		kwStart := end - s.kwLen[id]
		if kwStart < 0 {
			kwStart = 0
		}
		if r.Near != "" && strings.IndexAny(text[kwStart:min(len(text), end+r.NearWithin)], r.Near) < 0 {
			return true
		}
		if r.Gate != nil && !r.Gate(text, end) {
			return true
		}
		if r.Anchored {
			stop := min(len(text), end+s.windows[ri])
			m := r.Pattern.Regexp().FindStringSubmatchIndex(text[kwStart:stop])
			if m == nil {
				return true
			}
			g := r.Group
			if 2*g+1 >= len(m) || m[2*g] < 0 {
				return true
			}
			a, b := kwStart+m[2*g], kwStart+m[2*g+1]
			nameStart := kwStart
			for nameStart > 0 && kwStart-nameStart < 40 && nameByte(text[nameStart-1]) {
				nameStart--
			}
			if s.accept(r, text[a:b], text[nameStart:kwStart+m[1]]) {
				st.out = append(st.out, Match{Rule: r, Start: a, End: b})
			}
			return true
		}
		start := max(0, kwStart-max(r.Pre, 1))
		if st.lastEnd == nil {
			st.lastEnd = map[int]int{}
		}
		if le, ok := st.lastEnd[ri]; ok && start < le {
			if end <= le-64 {
				return true // searched already, with room for a token after the keyword
			}
			start = max(start, le-256)
		}
		stop := min(len(text), end+s.windows[ri])
		st.lastEnd[ri] = stop
		win := text[start:stop]
		for _, m := range r.Pattern.Regexp().FindAllStringSubmatchIndex(win, -1) {
			g := r.Group
			if 2*g+1 >= len(m) || m[2*g] < 0 {
				continue
			}
			a, b := m[2*g], m[2*g+1]
			if s.accept(r, win[a:b], win[m[0]:m[1]]) {
				st.out = append(st.out, Match{Rule: r, Start: start + a, End: start + b})
			}
		}
		return true
	}()
}

// HitShared handles id of the shared automaton (detect.Shared, after it was built): the
// ids of the scanner's keywords as Hit does, and nothing for other detectors' patterns.
// Only Default's keywords are in the shared automaton.
func (st *State) HitShared(id, end int) {
	if p := st.s.part; p != nil {
		if i, ok := p.Local(id); ok {
			st.Hit(i, end)
		}
	}
}

// Matches returns the secrets found, sorted by position, without overlaps.
func (st *State) Matches() []Match {
	out := st.out
	if len(out) == 0 {
		return nil
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Start != out[j].Start {
			return out[i].Start < out[j].Start
		}
		return out[i].Rule.Severity > out[j].Rule.Severity
	})
	// Drop overlaps: keep the earliest (the most severe at the same start).
	kept := out[:0]
	last := -1
	for _, m := range out {
		if m.Start < last {
			continue
		}
		kept = append(kept, m)
		last = m.End
	}
	return kept
}

// tokenRule flags a value that is nothing but a random-looking token.
// TokenRule is the rule of a value that is nothing but a random-looking token.
const TokenRule = "high-entropy-value"

var tokenRule = Rule{ID: TokenRule, Description: "a value that is only a random-looking token (a credential?)", Severity: detect.Medium, Weak: true}

// wholeToken reports whether all of text (trimmed) is one random-looking token.
func wholeToken(text string) (int, int, bool) {
	t := strings.TrimSpace(text)
	if len(t) < 20 || len(t) > 100 {
		return 0, 0, false
	}
	var lo, up, dg bool
	seps := 0
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case c == '-' || c == '_' || c == '.' || c == '~':
			if seps++; seps > 1 {
				return 0, 0, false
			}
		case c == '=':
			if strings.TrimRight(t[i:], "=") != "" {
				return 0, 0, false
			}
		case c >= 'a' && c <= 'z':
			lo = true
		case c >= 'A' && c <= 'Z':
			up = true
		case c >= '0' && c <= '9':
			dg = true
		case c == '+' || c == '/':
		default:
			return 0, 0, false
		}
	}
	if !(lo && up && dg) || Entropy(t) < 4 || !notPlaceholder(t, "") || wordish(t) || qualifiedIdent(t) {
		return 0, 0, false
	}
	start := strings.Index(text, t)
	return start, start + len(t), true
}

func valueByte(c byte) bool {
	return nameByte(c) || c == '/' || c == '+' || c == '=' || c == '~' || c == '!' || c == '@' || c == '#' || c == '$' || c == '%' || c == '^' || c == '&' || c == '*'
}

// assignment reports whether text after a keyword reads "<name rest> = <10+ value chars>".
func assignment(text string, end int) bool {
	i, n := end, len(text)
	for k := 0; i < n && k < 20 && nameByte(text[i]); k++ {
		i++
	}
	if i < n && (text[i] == '"' || text[i] == '\'' || text[i] == '`') {
		i++
	}
	for k := 0; i < n && k < 4 && (text[i] == ' ' || text[i] == '\t'); k++ {
		i++
	}
	if i >= n || !(text[i] == '=' || text[i] == ':' || text[i] == '|' || text[i] == '?') {
		return false
	}
	for k := 0; i < n && k < 3 && (text[i] == '=' || text[i] == ':' || text[i] == '|' || text[i] == '?' || text[i] == '>'); k++ {
		i++
	}
	for k := 0; i < n && k < 6 && (text[i] == ' ' || text[i] == '\t' || text[i] == '"' || text[i] == '\'' || text[i] == '`'); k++ {
		i++
	}
	v := 0
	for i < n && v < 10 && valueByte(text[i]) {
		i++
		v++
	}
	return v >= 10
}

func nameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
}

// accept applies a rule's filters to a candidate.
func (s *Scanner) accept(r *Rule, secret, match string) bool {
	if r.MinEntropy > 0 && Entropy(secret) < r.MinEntropy {
		return false
	}
	if r.ID != "private-key" && !(r.Weak && notPlaceholder(secret, "") || !r.Weak && notExplicitPlaceholder(secret)) {
		return false
	}
	return r.Check == nil || r.Check(secret, match)
}

// Scan returns findings for the secrets in text, at pointer.
func (s *Scanner) Scan(text, pointer string) []detect.Finding {
	return s.Findings(text, s.Find(text), pointer)
}

// Findings turns matches in text into findings (adding a whole-token match when none).
func (s *Scanner) Findings(text string, ms []Match, pointer string) []detect.Finding {
	if len(ms) == 0 {
		if a, b, ok := wholeToken(text); ok {
			ms = []Match{{Rule: &tokenRule, Start: a, End: b}}
		}
	}
	if len(ms) == 0 {
		return nil
	}
	out := make([]detect.Finding, 0, len(ms))
	for _, m := range ms {
		out = append(out, detect.Finding{Detector: Name, Rule: m.Rule.ID, Severity: m.Rule.Severity, Pointer: pointer,
			Evidence: detect.Mask(text[m.Start:m.End]), Message: "the text contains " + m.Rule.Description,
			Start: m.Start, End: m.End})
	}
	return out
}

// Entropy returns the Shannon entropy of s in bits per byte.
func Entropy(s string) float64 {
	if s == "" {
		return 0
	}
	var counts [256]int
	for i := 0; i < len(s); i++ {
		counts[s[i]]++
	}
	n := float64(len(s))
	e := 0.0
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			e -= p * math.Log2(p)
		}
	}
	return e
}

func notExample(secret, _ string) bool {
	return !strings.Contains(strings.ToUpper(secret), "EXAMPLE")
}

// explicitPlaceholders is how many of placeholderWords say "placeholder" outright.
const explicitPlaceholders = 7

var placeholderWords = []string{"xxxx", "****", "your", "example", "changeme", "placeholder", "redacted", "....", ">", "changeme", "change_me", "placeholder",
	"redacted", "dummy", "sample", "insert", "replace", "fake", "todo", "foobar", "<", "${", "{{",
	// sequences people type in made-up keys
	"abcdef", "bcdefg", "123456", "234567", "abc123", "qrstuv", "klmnop", "######"}

// notExplicitPlaceholder refuses values that say they are placeholders.
func notExplicitPlaceholder(secret string) bool {
	l := strings.ToLower(secret)
	for _, w := range placeholderWords[:explicitPlaceholders] {
		if strings.Contains(l, w) {
			return false
		}
	}
	return true
}

func notPlaceholder(secret, _ string) bool {
	l := strings.ToLower(secret)
	for _, w := range placeholderWords {
		if strings.Contains(l, w) {
			return false
		}
	}
	return !repeated(l)
}

// repeated reports a value made mostly of one character.
func repeated(s string) bool {
	if len(s) == 0 {
		return true
	}
	var counts [256]int
	for i := 0; i < len(s); i++ {
		counts[s[i]]++
	}
	for _, c := range counts {
		if c*2 > len(s) {
			return true
		}
	}
	return false
}

var weakWords = map[string]bool{"password": true, "pass": true, "passwd": true, "pwd": true, "secret": true, "token": true,
	"test": true, "user": true, "username": true, "admin": true, "root": true, "guest": true, "apikey": true, "api_key": true,
	"key": true, "xxx": true, "yyy": true, "foo": true, "bar": true, "changeit": true}

// isVariable reports shell, template and placeholder syntax.
func isVariable(v string) bool {
	if v == "" {
		return true
	}
	for i := 0; i+1 < len(v); i++ {
		if v[i] == '$' && (v[i+1] == '{' || v[i+1] == '(' || v[i+1] == '_' || v[i+1] >= 'A' && v[i+1] <= 'Z' || v[i+1] >= 'a' && v[i+1] <= 'z') {
			return true
		}
	}
	if strings.Contains(v, "{{") || strings.HasPrefix(v, "<") || strings.HasPrefix(v, "[") || strings.HasPrefix(v, "%") {
		return true
	}
	if strings.HasPrefix(v, "{") && strings.HasSuffix(v, "}") {
		inner := v[1 : len(v)-1]
		return strings.ToLower(inner) == inner && !hasDigit(inner)
	}
	return false
}

func hasDigit(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			return true
		}
	}
	return false
}

func classes(s string) int {
	var lo, up, dg, ot bool
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z':
			lo = true
		case c >= 'A' && c <= 'Z':
			up = true
		case c >= '0' && c <= '9':
			dg = true
		default:
			ot = true
		}
	}
	n := 0
	for _, b := range []bool{lo, up, dg, ot} {
		if b {
			n++
		}
	}
	return n
}

// credentialOK judges a password or token value written by a person.
func credentialOK(v string) bool {
	v = strings.Trim(v, `'"{}`)
	if len(v) < 6 || isVariable(v) || weakWords[strings.ToLower(v)] || !notPlaceholder(v, "") {
		return false
	}
	return classes(v) >= 2 && Entropy(v) >= 2.5
}

func slackOK(secret, _ string) bool {
	l := strings.ToLower(secret)
	for _, w := range []string{"here", "token", "string", "bot-", "your"} {
		if strings.Contains(l[4:], w) {
			return false
		}
	}
	return true
}

func urlCredOK(secret, _ string) bool {
	return len(secret) >= 3 && !isVariable(secret) && !weakWords[strings.ToLower(secret)] && !repeated(secret)
}

func curlUserOK(secret, _ string) bool {
	s := strings.NewReplacer(`"`, "", `'`, "").Replace(secret)
	i := strings.Index(s, ":")
	if i < 0 {
		return false
	}
	user, pass := s[:i], s[i+1:]
	if isVariable(user) && isVariable(pass) {
		return false
	}
	if pass == "" {
		return credentialOK(user) && Entropy(user) >= 3
	}
	return credentialOK(pass)
}

func headerOK(secret, match string) bool {
	if isVariable(secret) || !notPlaceholder(secret, "") {
		return false
	}
	return classes(secret) >= 2 || len(secret) >= 16
}

var nonSecretNames = []string{"id", "ids", "name", "url", "uri", "path", "file", "dir", "size", "len", "length", "type", "version",
	"count", "format", "mode", "field", "index", "prefix", "suffix", "header", "label", "env", "var", "ref", "key_id", "keyid"}

// genericOK judges a value assigned to a name that says secret.
func genericOK(secret, match string) bool {
	v := strings.Trim(secret, `'"`+"`")
	if isVariable(v) || !notPlaceholder(v, "") {
		return false
	}
	name := strings.ToLower(match)
	if i := strings.IndexAny(name, "=:>|?"); i >= 0 {
		name = name[:i]
	}
	name = strings.Trim(name, ` '"`+"`\t")
	for _, n := range nonSecretNames {
		if strings.HasSuffix(name, n) {
			return false
		}
	}
	for _, n := range []string{"public", "pubkey", "csrf", "xsrf", "nonce", "keyboard", "monkey", "keyword", "donkey", "turkey", "hockey", "jockey", "whiskey",
		"keying", "keystroke", "keyframe", "keypad", "keycode", "hotkey", "keyup", "keydown", "keymap", "keyspace"} {
		if strings.Contains(name, n) {
			return false
		}
	}
	if !hasDigit(v) {
		return false // identifiers and words: gitleaks' own allow list does the same
	}
	if qualifiedIdent(v) || wordish(v) {
		return false
	}
	if len(v) < 20 && classes(v) < 3 && !(classes(v) == 2 && hasDigit(v) && len(v) >= 12) {
		return false
	}
	return true
}

// wordish reports values made of words and numbers joined by separators
// (DOC_Vector_5_32, cmp2-qat-1208358310, id-Gost28147-89-None): names, not secrets.
func wordish(v string) bool {
	parts := strings.FieldsFunc(v, func(r rune) bool { return r == '_' || r == '-' || r == '.' })
	if len(parts) < 3 {
		return false
	}
	for _, p := range parts {
		i := 0
		for i < len(p) && (p[i] >= 'a' && p[i] <= 'z' || p[i] >= 'A' && p[i] <= 'Z') {
			i++
		}
		j := i
		for j < len(p) && p[j] >= '0' && p[j] <= '9' {
			j++
		}
		if j != len(p) {
			// digits then letters ("5h") are words too
			k := 0
			for k < len(p) && p[k] >= '0' && p[k] <= '9' {
				k++
			}
			for k < len(p) && (p[k] >= 'a' && p[k] <= 'z' || p[k] >= 'A' && p[k] <= 'Z') {
				k++
			}
			if k != len(p) {
				return false
			}
		}
	}
	return true
}

// qualifiedIdent reports values such as pkg.Type.field, X25519.key_length or a-b_c.d.
func qualifiedIdent(v string) bool {
	if !strings.Contains(v, ".") {
		return false
	}
	for _, part := range strings.Split(v, ".") {
		if part == "" || !(part[0] >= 'a' && part[0] <= 'z' || part[0] >= 'A' && part[0] <= 'Z' || part[0] == '_') {
			return false
		}
	}
	return true
}
