package jsonrpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// The functions in this file read and edit JSON objects that already passed Decode or
// Valid, without decoding them whole. Edits keep every other byte as it was.

// ErrNotObject is returned when a raw value is not a JSON object.
var ErrNotObject = errors.New("not a JSON object")

// skip returns the index just past the value starting at i (after white space).
func skip(d []byte, i int) int {
	i = skipWS(d, i)
	if i >= len(d) {
		return i
	}
	switch d[i] {
	case '"':
		i++
		for i < len(d) {
			switch d[i] {
			case '\\':
				i += 2
			case '"':
				return i + 1
			default:
				i++
			}
		}
		return i
	case '{', '[':
		depth := 0
		for i < len(d) {
			switch d[i] {
			case '"':
				i = skip(d, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default:
		for i < len(d) {
			switch d[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return i
	}
}

func skipWS(d []byte, i int) int {
	for i < len(d) && (d[i] == ' ' || d[i] == '\t' || d[i] == '\n' || d[i] == '\r') {
		i++
	}
	return i
}

// Skip returns the index just past the JSON value that starts at or after i (white space
// first is skipped). d must hold valid JSON, as every message that passed Decode does.
func Skip(d []byte, i int) int { return skip(d, i) }

// SkipSpace returns the index of the first byte at or after i that is not JSON white space.
func SkipSpace(d []byte, i int) int { return skipWS(d, i) }

// span locates one member of an object: the key's start and the value's bounds.
type span struct{ keyStart, valStart, valEnd int }

// each calls fn for every member of obj with its key as written (quotes included); fn
// returns false to stop. Keys are not unescaped here, so a look-up allocates nothing.
func each(obj []byte, fn func(rawKey []byte, s span) bool) error {
	i := skipWS(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return ErrNotObject
	}
	i = skipWS(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return nil
	}
	for i < len(obj) {
		i = skipWS(obj, i)
		ks := i
		ke := skip(obj, i)
		if ke-ks < 2 || obj[ks] != '"' {
			return fmt.Errorf("bad key at byte %d", ks)
		}
		key := obj[ks:ke]
		i = skipWS(obj, ke)
		i++ // ':'
		vs := skipWS(obj, i)
		ve := skip(obj, vs)
		if !fn(key, span{keyStart: ks, valStart: vs, valEnd: ve}) {
			return nil
		}
		i = skipWS(obj, ve)
		if i < len(obj) && obj[i] == ',' {
			i++
			continue
		}
		break
	}
	return nil
}

// keyIs reports whether the quoted raw key, once unescaped, is key.
func keyIs(raw []byte, key string) bool {
	body := raw[1 : len(raw)-1]
	if bytes.IndexByte(body, '\\') < 0 {
		return string(body) == key
	}
	k, err := unquote(raw)
	return err == nil && k == key
}

// Lookup returns the raw value of member key of obj.
func Lookup(obj []byte, key string) ([]byte, bool) {
	var out []byte
	found := false
	each(obj, func(k []byte, s span) bool {
		if keyIs(k, key) {
			out, found = obj[s.valStart:s.valEnd], true
			return false
		}
		return true
	})
	return out, found
}

// LookupString returns member key of obj when it is a string.
func LookupString(obj []byte, key string) (string, bool) {
	raw, ok := Lookup(obj, key)
	if !ok || len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	s, err := unquote(raw)
	return s, err == nil
}

// LookupPath follows keys through nested objects.
func LookupPath(obj []byte, keys ...string) ([]byte, bool) {
	cur := obj
	for _, k := range keys {
		v, ok := Lookup(cur, k)
		if !ok {
			return nil, false
		}
		cur = v
	}
	return cur, true
}

// Set returns obj with member key set to the raw value val: replaced in place when present,
// appended otherwise. obj itself is not modified.
func Set(obj []byte, key string, val []byte) ([]byte, error) {
	var at span
	found := false
	if err := each(obj, func(k []byte, s span) bool {
		if keyIs(k, key) {
			at, found = s, true
			return false
		}
		return true
	}); err != nil {
		return nil, err
	}
	if found {
		out := make([]byte, 0, len(obj)-(at.valEnd-at.valStart)+len(val))
		out = append(out, obj[:at.valStart]...)
		out = append(out, val...)
		return append(out, obj[at.valEnd:]...), nil
	}
	end := bytes.LastIndexByte(obj, '}')
	if end < 0 {
		return nil, ErrNotObject
	}
	empty := len(bytes.TrimSpace(obj[bytes.IndexByte(obj, '{')+1:end])) == 0
	out := make([]byte, 0, len(obj)+len(key)+len(val)+4)
	out = append(out, bytes.TrimRight(obj[:end], " \t\r\n")...)
	if !empty {
		out = append(out, ',')
	}
	out = AppendQuote(out, key)
	out = append(out, ':')
	out = append(out, val...)
	return append(out, obj[end:]...), nil
}

// Delete returns obj without member key.
func Delete(obj []byte, key string) ([]byte, error) {
	var at span
	found := false
	var prevEnd int = -1
	var lastEnd int
	if err := each(obj, func(k []byte, s span) bool {
		if keyIs(k, key) {
			at, found = s, true
			prevEnd = lastEnd
			return false
		}
		lastEnd = s.valEnd
		return true
	}); err != nil {
		return nil, err
	}
	if !found {
		return obj, nil
	}
	out := make([]byte, 0, len(obj))
	rest := skipWS(obj, at.valEnd)
	if rest < len(obj) && obj[rest] == ',' {
		// Remove "key":value, (the comma after it).
		out = append(out, obj[:at.keyStart]...)
		return append(out, obj[skipWS(obj, rest+1):]...), nil
	}
	if prevEnd > 0 {
		// Last member: remove the comma before it.
		out = append(out, obj[:prevEnd]...)
		return append(out, obj[at.valEnd:]...), nil
	}
	out = append(out, obj[:at.keyStart]...)
	return append(out, obj[at.valEnd:]...), nil
}

// Keys returns the member names of obj in order.
func Keys(obj []byte) []string {
	var ks []string
	each(obj, func(k []byte, _ span) bool {
		if u, err := unquote(k); err == nil {
			ks = append(ks, u)
		}
		return true
	})
	return ks
}

// Elements calls fn for each element of the JSON array arr.
func Elements(arr []byte, fn func(elem []byte) bool) error {
	i := skipWS(arr, 0)
	if i >= len(arr) || arr[i] != '[' {
		return errors.New("not a JSON array")
	}
	i = skipWS(arr, i+1)
	if i < len(arr) && arr[i] == ']' {
		return nil
	}
	for i < len(arr) {
		s := skipWS(arr, i)
		e := skip(arr, s)
		if !fn(arr[s:e]) {
			return nil
		}
		i = skipWS(arr, e)
		if i < len(arr) && arr[i] == ',' {
			i++
			continue
		}
		break
	}
	return nil
}

// SetMeta returns obj with member key of its _meta object set to val, creating _meta
// when obj has none (or one that is not an object).
func SetMeta(obj []byte, key string, val []byte) ([]byte, error) {
	meta, ok := Lookup(obj, "_meta")
	if !ok || len(meta) == 0 || meta[0] != '{' {
		meta = []byte("{}")
	}
	nm, err := Set(meta, key, val)
	if err != nil {
		return nil, err
	}
	return Set(obj, "_meta", nm)
}

// Quote returns s as a JSON string.
func Quote(s string) json.RawMessage { return AppendQuote(nil, s) }
