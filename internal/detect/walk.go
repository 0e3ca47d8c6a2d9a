package detect

import (
	"bytes"
	"errors"
	"sort"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

// Value is one string value met by Walk.
type Value struct {
	Text  string // unescaped
	Key   string // the member name holding it ("" in an array or at the top)
	Start int    // offset of the opening quote in the document
	End   int    // offset just past the closing quote
	path  []string
}

// Pointer returns the RFC 6901 pointer of the value.
func (v *Value) Pointer() string { return Pointer(v.path...) }

// Path returns the reference tokens of the value's pointer (valid only during the callback).
func (v *Value) Path() []string { return v.path }

// MaxWalkDepth bounds nesting; deeper documents are refused (messages are bounded
// earlier by jsonrpc's own depth limit, which is lower).
const MaxWalkDepth = 256

// ErrMalformed is returned by Walk for a document that is not valid JSON.
var ErrMalformed = errors.New("detect: malformed JSON")

// Walk calls fn for every string value (not member names) in the JSON document raw, in
// document order; fn returns false to stop. raw must be valid JSON (as messages are after
// jsonrpc.Decode); malformed input gives ErrMalformed, never a panic.
func Walk(raw []byte, fn func(v *Value) bool) error {
	w := walker{d: raw, fn: fn}
	w.path = w.pathBuf[:0]
	w.i = ws(raw, 0)
	if !w.value(0) {
		if w.err != nil {
			return w.err
		}
		return nil
	}
	return w.err
}

type walker struct {
	d    []byte
	i    int
	fn   func(v *Value) bool
	path []string
	v    Value
	err  error
	// pathBuf holds the path of the usual, shallow document (a call's result is a few
	// levels deep): the path costs no allocation of its own.
	pathBuf [8]string
}

func ws(d []byte, i int) int {
	for i < len(d) && (d[i] == ' ' || d[i] == '\t' || d[i] == '\n' || d[i] == '\r') {
		i++
	}
	return i
}

func (w *walker) fail() bool {
	w.err = ErrMalformed
	return false
}

// value walks the value at w.i; it returns false to stop (fn said so, or an error).
func (w *walker) value(depth int) bool {
	if depth > MaxWalkDepth {
		return w.fail()
	}
	d := w.d
	if w.i >= len(d) {
		return w.fail()
	}
	switch d[w.i] {
	case '"':
		s, e, ok := w.str()
		if !ok {
			return w.fail()
		}
		key := ""
		if n := len(w.path); n > 0 {
			key = w.path[n-1]
		}
		w.v = Value{Text: s, Key: key, Start: e.start, End: e.end, path: w.path}
		return w.fn(&w.v)
	case '{':
		w.i = ws(d, w.i+1)
		if w.i < len(d) && d[w.i] == '}' {
			w.i++
			return true
		}
		for {
			if w.i >= len(d) || d[w.i] != '"' {
				return w.fail()
			}
			k, _, ok := w.str()
			if !ok {
				return w.fail()
			}
			w.i = ws(d, w.i)
			if w.i >= len(d) || d[w.i] != ':' {
				return w.fail()
			}
			w.i = ws(d, w.i+1)
			w.path = append(w.path, k)
			if !w.value(depth + 1) {
				return false
			}
			w.path = w.path[:len(w.path)-1]
			w.i = ws(d, w.i)
			if w.i < len(d) && d[w.i] == ',' {
				w.i = ws(d, w.i+1)
				continue
			}
			if w.i < len(d) && d[w.i] == '}' {
				w.i++
				return true
			}
			return w.fail()
		}
	case '[':
		w.i = ws(d, w.i+1)
		if w.i < len(d) && d[w.i] == ']' {
			w.i++
			return true
		}
		for n := 0; ; n++ {
			w.path = append(w.path, strconv.Itoa(n))
			if !w.value(depth + 1) {
				return false
			}
			w.path = w.path[:len(w.path)-1]
			w.i = ws(d, w.i)
			if w.i < len(d) && d[w.i] == ',' {
				w.i = ws(d, w.i+1)
				continue
			}
			if w.i < len(d) && d[w.i] == ']' {
				w.i++
				return true
			}
			return w.fail()
		}
	default:
		// number, true, false, null: skip to the next delimiter.
		start := w.i
		for w.i < len(d) {
			switch d[w.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				if w.i == start {
					return w.fail()
				}
				return true
			}
			w.i++
		}
		if w.i == start {
			return w.fail()
		}
		return true
	}
}

type extent struct{ start, end int }

// commonNames are member names (and small values) of MCP messages, shared instead of copied
// out of every document.
var commonNames = map[string]string{}

func init() {
	for _, k := range []string{"content", "type", "text", "structuredContent", "isError", "_meta",
		"name", "uri", "mimeType", "data", "resource", "annotations", "arguments", "blob",
		"title", "description", "inputSchema", "outputSchema", "properties", "required",
		"messages", "role", "image", "audio", "resource_link", "tools", "resources", "prompts",
		"nextCursor", "progressToken", "result", "error", "message", "code", "id", "method", "params"} {
		commonNames[k] = k
	}
}

// str reads the string at w.i and leaves w.i after it.
func (w *walker) str() (string, extent, bool) {
	d := w.d
	start := w.i
	i := start + 1
	esc := false
	// The closing quote: the first one no backslash escapes. Both searches are IndexByte,
	// and the quote found is kept until an escape is seen to reach it, so the cost is linear.
	q := -1
	for {
		if q < i {
			k := bytes.IndexByte(d[i:], '"')
			if k < 0 {
				return "", extent{}, false
			}
			q = i + k
		}
		b := bytes.IndexByte(d[i:q], '\\')
		if b < 0 {
			i = q
			break
		}
		esc = true
		i += b + 2 // the backslash and what it escapes (perhaps the quote at q)
		if i > len(d) {
			return "", extent{}, false
		}
	}
	w.i = i + 1
	body := d[start+1 : i]
	if !esc {
		if k, ok := commonNames[string(body)]; ok { // no allocation for the usual member names
			return k, extent{start, i + 1}, true
		}
		return string(body), extent{start, i + 1}, true
	}
	s, ok := unescape(body)
	return s, extent{start, i + 1}, ok
}

func unescape(b []byte) (string, bool) {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '\\' {
			j := bytes.IndexByte(b[i:], '\\')
			if j < 0 {
				out = append(out, b[i:]...)
				break
			}
			out = append(out, b[i:i+j]...)
			i += j - 1
			continue
		}
		i++
		if i >= len(b) {
			return "", false
		}
		switch b[i] {
		case '"', '\\', '/':
			out = append(out, b[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(b, i+1)
			if !ok {
				return "", false
			}
			i += 4
			if utf16.IsSurrogate(r) {
				if i+6 < len(b) && b[i+1] == '\\' && b[i+2] == 'u' {
					if r2, ok := hex4(b, i+3); ok {
						if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
							out = utf8.AppendRune(out, d)
							i += 6
							continue
						}
					}
				}
				r = utf8.RuneError
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", false
		}
	}
	return string(out), true
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}

// Edit replaces the string value at [Start, End) of a document with Text.
type Edit struct {
	Start, End int
	Text       string
}

// Apply returns raw with the edits applied; every byte outside the edited strings is
// kept. Overlapping edits keep the first (by Start). raw itself is not modified.
func Apply(raw []byte, edits []Edit) []byte {
	if len(edits) == 0 {
		return raw
	}
	sort.SliceStable(edits, func(i, j int) bool { return edits[i].Start < edits[j].Start })
	out := make([]byte, 0, len(raw)+64*len(edits))
	at := 0
	for _, e := range edits {
		if e.Start < at || e.End > len(raw) || e.Start > e.End {
			continue
		}
		out = append(out, raw[at:e.Start]...)
		out = jsonrpc.AppendQuote(out, e.Text)
		at = e.End
	}
	return append(out, raw[at:]...)
}

// Span is a byte range of a string to replace with a marker.
type Span struct {
	Start, End int
	Marker     string
}

// Replace returns s with each span replaced by its marker. Spans are sorted; overlapping
// spans are merged into the first one's marker.
func Replace(s string, spans []Span) string {
	if len(spans) == 0 {
		return s
	}
	sort.SliceStable(spans, func(i, j int) bool { return spans[i].Start < spans[j].Start })
	out := make([]byte, 0, len(s))
	at := 0
	for _, sp := range spans {
		if sp.End > len(s) {
			sp.End = len(s)
		}
		if sp.Start < at {
			if sp.End > at {
				at = sp.End // overlap: extend the previous replacement
			}
			continue
		}
		if sp.Start > sp.End {
			continue
		}
		out = append(out, s[at:sp.Start]...)
		out = append(out, sp.Marker...)
		at = sp.End
	}
	out = append(out, s[at:]...)
	return string(out)
}
