package jsonrpc

import (
	"bytes"
	"fmt"
	"strconv"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// validator walks a JSON text once, checking the grammar and the rules the gateway adds on
// top of it: no duplicate object keys (compared after unescaping, and also case-insensitively,
// because Go's encoding/json matches field names without regard to case and a server could
// read the second of two keys that differ only in case), no lone surrogate escapes, and a
// maximum nesting depth. It records where the top-level members are so the envelope can be
// read without a second pass.
type validator struct {
	data     []byte
	pos      int
	maxDepth int
	depth    int
	// keys is a stack of the (unescaped) keys of the objects being walked; each object
	// owns keys[start:].
	keys [][]byte
	// scratch holds unescaped keys so that keys can point into it.
	scratch []byte
	// top collects the top-level members (name, raw value) of the root object.
	top []member
}

type member struct {
	name  []byte // unescaped
	value []byte // raw
}

// syntaxError describes where and why a text was rejected.
type syntaxError struct {
	offset int
	msg    string
}

func (e *syntaxError) Error() string { return fmt.Sprintf("%s at byte %d", e.msg, e.offset) }

var validatorPool = sync.Pool{New: func() any { return new(validator) }}

func (v *validator) fail(msg string) error { return &syntaxError{offset: v.pos, msg: msg} }

func (v *validator) reset(data []byte, maxDepth int) {
	v.data = data
	v.pos = 0
	v.maxDepth = maxDepth
	v.depth = 0
	v.keys = v.keys[:0]
	v.scratch = v.scratch[:0]
	v.top = v.top[:0]
}

func (v *validator) skipSpace() {
	for v.pos < len(v.data) {
		switch v.data[v.pos] {
		case ' ', '\t', '\n', '\r':
			v.pos++
		default:
			return
		}
	}
}

// value validates one JSON value starting at v.pos.
func (v *validator) value() error {
	v.skipSpace()
	if v.pos >= len(v.data) {
		return v.fail("unexpected end of JSON")
	}
	switch c := v.data[v.pos]; {
	case c == '{':
		return v.object(false)
	case c == '[':
		return v.array()
	case c == '"':
		_, err := v.str(false)
		return err
	case c == '-' || (c >= '0' && c <= '9'):
		return v.number()
	case c == 't':
		return v.literal("true")
	case c == 'f':
		return v.literal("false")
	case c == 'n':
		return v.literal("null")
	default:
		return v.fail(fmt.Sprintf("invalid character %q looking for a value", c))
	}
}

func (v *validator) literal(lit string) error {
	if !bytes.HasPrefix(v.data[v.pos:], []byte(lit)) {
		return v.fail("invalid literal")
	}
	v.pos += len(lit)
	return nil
}

func (v *validator) number() error {
	d := v.data
	i := v.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	if i >= len(d) {
		v.pos = i
		return v.fail("invalid number")
	}
	if d[i] == '0' {
		i++
	} else if d[i] >= '1' && d[i] <= '9' {
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	} else {
		v.pos = i
		return v.fail("invalid number")
	}
	if i < len(d) && d[i] == '.' {
		i++
		start := i
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		if i == start {
			v.pos = i
			return v.fail("invalid number: no digits after decimal point")
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		start := i
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		if i == start {
			v.pos = i
			return v.fail("invalid number: no digits in exponent")
		}
	}
	v.pos = i
	return nil
}

// str validates a string at v.pos. When unescape is set it returns the unescaped content
// (pointing into the input when there are no escapes, into v.scratch otherwise).
func (v *validator) str(unescape bool) ([]byte, error) {
	d := v.data
	v.pos++ // opening quote
	start := v.pos
	escaped := false
	for v.pos < len(d) {
		c := d[v.pos]
		switch {
		case c == '"':
			raw := d[start:v.pos]
			v.pos++
			if !unescape {
				return nil, nil
			}
			if !escaped {
				return raw, nil
			}
			return v.unescape(raw), nil
		case c == '\\':
			escaped = true
			if v.pos+1 >= len(d) {
				return nil, v.fail("unterminated escape")
			}
			switch d[v.pos+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				v.pos += 2
			case 'u':
				r, ok := hex4(d, v.pos+2)
				if !ok {
					return nil, v.fail("invalid \\u escape")
				}
				v.pos += 6
				if utf16.IsSurrogate(rune(r)) {
					// A surrogate must be a high one followed by an escaped low one;
					// lone surrogates are decoded differently by different parsers.
					if r >= 0xDC00 || v.pos+1 >= len(d) || d[v.pos] != '\\' || d[v.pos+1] != 'u' {
						return nil, v.fail("lone surrogate in \\u escape")
					}
					r2, ok := hex4(d, v.pos+2)
					if !ok || r2 < 0xDC00 || r2 > 0xDFFF {
						return nil, v.fail("lone surrogate in \\u escape")
					}
					v.pos += 6
				}
			default:
				return nil, v.fail("invalid escape character")
			}
		case c < 0x20:
			return nil, v.fail("control character in string")
		case c < utf8.RuneSelf:
			v.pos++
		default:
			// Multi-byte UTF-8 was validated for the whole message up front.
			v.pos++
		}
	}
	return nil, v.fail("unterminated string")
}

func hex4(d []byte, i int) (uint16, bool) {
	if i+4 > len(d) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(d[i:i+4]), 16, 16)
	if err != nil {
		return 0, false
	}
	return uint16(n), true
}

// unescape decodes a validated string body into v.scratch and returns it.
func (v *validator) unescape(raw []byte) []byte {
	start := len(v.scratch)
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			v.scratch = append(v.scratch, c)
			i++
			continue
		}
		switch raw[i+1] {
		case 'b':
			v.scratch = append(v.scratch, '\b')
		case 'f':
			v.scratch = append(v.scratch, '\f')
		case 'n':
			v.scratch = append(v.scratch, '\n')
		case 'r':
			v.scratch = append(v.scratch, '\r')
		case 't':
			v.scratch = append(v.scratch, '\t')
		case 'u':
			r1, _ := hex4(raw, i+2)
			r := rune(r1)
			if utf16.IsSurrogate(r) {
				r2, _ := hex4(raw, i+8)
				r = utf16.DecodeRune(r, rune(r2))
				i += 6
			}
			v.scratch = utf8.AppendRune(v.scratch, r)
			i += 6
			continue
		default: // '"', '\\', '/'
			v.scratch = append(v.scratch, raw[i+1])
		}
		i += 2
	}
	return v.scratch[start:len(v.scratch):len(v.scratch)]
}

func (v *validator) enter() error {
	v.depth++
	if v.depth > v.maxDepth {
		return v.fail(fmt.Sprintf("nesting deeper than %d levels", v.maxDepth))
	}
	return nil
}

// object validates an object; root marks the top-level object whose members are recorded.
func (v *validator) object(root bool) error {
	if err := v.enter(); err != nil {
		return err
	}
	v.pos++ // '{'
	keyStart := len(v.keys)
	var seen map[string]struct{} // only for large objects
	v.skipSpace()
	if v.pos < len(v.data) && v.data[v.pos] == '}' {
		v.pos++
		v.depth--
		return nil
	}
	for {
		v.skipSpace()
		if v.pos >= len(v.data) || v.data[v.pos] != '"' {
			return v.fail("expected object key")
		}
		keyPos := v.pos
		key, err := v.str(true)
		if err != nil {
			return err
		}
		if err := v.checkKey(key, keyStart, keyPos, &seen); err != nil {
			return err
		}
		v.skipSpace()
		if v.pos >= len(v.data) || v.data[v.pos] != ':' {
			return v.fail("expected ':' after object key")
		}
		v.pos++
		v.skipSpace()
		valStart := v.pos
		if err := v.value(); err != nil {
			return err
		}
		valEnd := v.pos
		v.skipSpace()
		if v.pos >= len(v.data) {
			return v.fail("unexpected end of JSON in object")
		}
		if root && (v.data[v.pos] == ',' || v.data[v.pos] == '}') {
			v.top = append(v.top, member{name: key, value: v.data[valStart:valEnd]})
		}
		switch v.data[v.pos] {
		case ',':
			v.pos++
		case '}':
			v.pos++
			v.keys = v.keys[:keyStart]
			v.depth--
			return nil
		default:
			return v.fail("expected ',' or '}' in object")
		}
	}
}

// smallObject is the number of keys up to which keys are compared pairwise.
const smallObject = 16

func (v *validator) checkKey(key []byte, keyStart, keyPos int, seen *map[string]struct{}) error {
	n := len(v.keys) - keyStart
	if n < smallObject {
		for _, k := range v.keys[keyStart:] {
			if bytes.EqualFold(k, key) {
				return v.dupKey(k, key, keyPos)
			}
		}
		v.keys = append(v.keys, key)
		if n+1 == smallObject {
			*seen = make(map[string]struct{}, 2*smallObject)
			for _, k := range v.keys[keyStart:] {
				(*seen)[string(bytes.ToLower(k))] = struct{}{}
			}
		}
		return nil
	}
	lk := string(bytes.ToLower(key))
	if _, dup := (*seen)[lk]; dup {
		for _, k := range v.keys[keyStart:] {
			if bytes.EqualFold(k, key) {
				return v.dupKey(k, key, keyPos)
			}
		}
		return v.dupKey(key, key, keyPos)
	}
	(*seen)[lk] = struct{}{}
	v.keys = append(v.keys, key)
	return nil
}

func (v *validator) dupKey(prev, key []byte, pos int) error {
	if bytes.Equal(prev, key) {
		return &syntaxError{offset: pos, msg: fmt.Sprintf("duplicate object key %q", truncate(key))}
	}
	return &syntaxError{offset: pos, msg: fmt.Sprintf("object keys %q and %q differ only in case", truncate(prev), truncate(key))}
}

func truncate(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "…"
	}
	return string(b)
}

func (v *validator) array() error {
	if err := v.enter(); err != nil {
		return err
	}
	v.pos++ // '['
	v.skipSpace()
	if v.pos < len(v.data) && v.data[v.pos] == ']' {
		v.pos++
		v.depth--
		return nil
	}
	for {
		if err := v.value(); err != nil {
			return err
		}
		v.skipSpace()
		if v.pos >= len(v.data) {
			return v.fail("unexpected end of JSON in array")
		}
		switch v.data[v.pos] {
		case ',':
			v.pos++
		case ']':
			v.pos++
			v.depth--
			return nil
		default:
			return v.fail("expected ',' or ']' in array")
		}
	}
}

// Valid reports whether data is one JSON value that passes the gateway's strict rules
// (no duplicate or case-colliding keys, no lone surrogates, valid UTF-8, depth limit).
func Valid(data []byte, maxDepth int) error {
	if !utf8.Valid(data) {
		return &syntaxError{offset: invalidUTF8Offset(data), msg: "invalid UTF-8"}
	}
	v := validatorPool.Get().(*validator)
	defer validatorPool.Put(v)
	v.reset(data, maxDepth)
	if err := v.value(); err != nil {
		return err
	}
	v.skipSpace()
	if v.pos != len(data) {
		return v.fail("trailing data after JSON value")
	}
	return nil
}

func invalidUTF8Offset(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}
