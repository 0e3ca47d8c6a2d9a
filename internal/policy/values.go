package policy

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"

	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

// This file gives CEL lazy views of raw JSON: a rule reading args.path looks up "path" in
// the call's bytes and converts that one value, instead of decoding every argument of every
// call (arguments can be megabytes of file content). Rarer operations (iteration, equality
// of whole maps, conversion) decode the value once and delegate to cel-go's own types.
//
// JSON numbers written without a fraction or exponent that fit in int64 become CEL ints,
// others doubles; CEL compares ints and doubles with each other, so args.amount < 100 and
// args.amount < 99.5 both work.
//
// The bytes must be valid JSON (the gateway only passes messages that are). Scanning is
// bounds-checked: invalid bytes give wrong answers, never a panic or a loop.

var adapter = types.DefaultTypeAdapter

// jsonValue converts one raw JSON value.
func jsonValue(raw []byte) ref.Val {
	if len(raw) == 0 {
		return types.NewErr("empty JSON value")
	}
	switch raw[0] {
	case '{':
		return &rawObject{raw: raw}
	case '[':
		return &rawArray{raw: raw}
	case '"':
		s, err := unquoteJSON(raw)
		if err != nil {
			return types.NewErr("invalid JSON string: %v", err)
		}
		return types.String(s)
	case 't':
		return types.True
	case 'f':
		return types.False
	case 'n':
		return types.NullValue
	}
	return jsonNumber(raw)
}

func jsonNumber(raw []byte) ref.Val {
	if bytes.IndexAny(raw, ".eE") < 0 {
		if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
			return types.Int(n)
		}
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return types.NewErr("invalid JSON number %q", raw)
	}
	return types.Double(f)
}

func unquoteJSON(raw []byte) (string, error) {
	if len(raw) >= 2 && bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), nil
	}
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err
}

// DecodeJSON decodes raw JSON into the Go values conditions see: objects, arrays, strings,
// bools, nil, and numbers as int64 when written without fraction or exponent and float64
// otherwise.
func DecodeJSON(raw []byte) (any, error) { return decodeJSON(raw) }

func decodeJSON(raw []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return fixNumbers(v), nil
}

func fixNumbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		if n, err := v.Int64(); err == nil && !bytes.ContainsAny([]byte(v), ".eE") {
			return n
		}
		f, _ := v.Float64()
		return f
	case map[string]any:
		for k, e := range v {
			v[k] = fixNumbers(e)
		}
	case []any:
		for i, e := range v {
			v[i] = fixNumbers(e)
		}
	}
	return v
}

// Scanning over valid JSON uses the jsonrpc package's helpers.

// members calls fn with each member's raw key (quoted) and raw value; fn returns false to
// stop.
func members(obj []byte, fn func(key, val []byte) bool) {
	i := jsonrpc.SkipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return
	}
	i++
	for {
		i = jsonrpc.SkipSpace(obj, i)
		if i >= len(obj) || obj[i] != '"' {
			return
		}
		ke := jsonrpc.Skip(obj, i)
		key := obj[i:ke]
		i = jsonrpc.SkipSpace(obj, ke)
		if i >= len(obj) || obj[i] != ':' {
			return
		}
		vs := jsonrpc.SkipSpace(obj, i+1)
		ve := jsonrpc.Skip(obj, vs)
		if ve <= vs || !fn(key, obj[vs:ve]) {
			return
		}
		i = jsonrpc.SkipSpace(obj, ve)
		if i >= len(obj) || obj[i] != ',' {
			return
		}
		i++
	}
}

// elements calls fn with each element of arr; fn returns false to stop.
func elements(arr []byte, fn func(val []byte) bool) {
	i := jsonrpc.SkipSpace(arr, 0)
	if i >= len(arr) || arr[i] != '[' {
		return
	}
	i = jsonrpc.SkipSpace(arr, i+1)
	if i < len(arr) && arr[i] == ']' {
		return
	}
	for i < len(arr) {
		vs := jsonrpc.SkipSpace(arr, i)
		ve := jsonrpc.Skip(arr, vs)
		if ve <= vs || !fn(arr[vs:ve]) {
			return
		}
		i = jsonrpc.SkipSpace(arr, ve)
		if i >= len(arr) || arr[i] != ',' {
			return
		}
		i++
	}
}

// keyIs reports whether the raw quoted key equals k.
func keyIs(raw []byte, k string) bool {
	if len(raw) < 2 {
		return false
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1:len(raw)-1]) == k // no allocation: the compiler compares in place
	}
	s, err := unquoteJSON(raw)
	return err == nil && s == k
}

// lookup returns the raw value of member k of obj.
func lookup(obj []byte, k string) ([]byte, bool) {
	var out []byte
	members(obj, func(key, val []byte) bool {
		if keyIs(key, k) {
			out = val
			return false
		}
		return true
	})
	return out, out != nil
}

// rawObject is a CEL map over a raw JSON object.
type rawObject struct {
	raw   []byte
	full  traits.Mapper // decoded on demand
	cache []member      // members looked up so far, found or not
}

type member struct {
	key string
	val ref.Val // nil: absent
}

// maxCached bounds the members one object remembers.
const maxCached = 16

var (
	_ traits.Mapper = (*rawObject)(nil)
	_ traits.Lister = (*rawArray)(nil)
)

func (o *rawObject) decoded() traits.Mapper {
	if o.full == nil {
		v, err := decodeJSON(o.raw)
		m, ok := v.(map[string]any)
		if err != nil || !ok {
			m = map[string]any{}
		}
		o.full = types.NewStringInterfaceMap(adapter, m)
	}
	return o.full
}

func (o *rawObject) ConvertToNative(t reflect.Type) (any, error) {
	return o.decoded().ConvertToNative(t)
}

func (o *rawObject) ConvertToType(t ref.Type) ref.Val {
	switch t {
	case types.MapType:
		return o
	case types.TypeType:
		return types.MapType
	}
	return types.NewErr("type conversion error from map to '%s'", t)
}

func (o *rawObject) Equal(other ref.Val) ref.Val { return o.decoded().Equal(other) }
func (o *rawObject) Type() ref.Type              { return types.MapType }
func (o *rawObject) Value() any                  { return o.decoded().Value() }
func (o *rawObject) Iterator() traits.Iterator   { return o.decoded().Iterator() }

func (o *rawObject) Size() ref.Val {
	if o.full != nil {
		return o.full.Size()
	}
	n := 0
	members(o.raw, func(_, _ []byte) bool { n++; return true })
	return types.Int(n)
}

func (o *rawObject) Contains(key ref.Val) ref.Val {
	v, found := o.Find(key)
	if !found && v != nil {
		return v
	}
	return types.Bool(found)
}

func (o *rawObject) Get(key ref.Val) ref.Val {
	v, found := o.Find(key)
	if !found {
		return types.ValOrErr(v, "no such key: %v", key)
	}
	return v
}

func (o *rawObject) Find(key ref.Val) (ref.Val, bool) {
	k, ok := key.(types.String)
	if !ok {
		return o.decoded().Find(key)
	}
	for i := range o.cache {
		if o.cache[i].key == string(k) {
			return o.cache[i].val, o.cache[i].val != nil
		}
	}
	var v ref.Val
	if raw, found := lookup(o.raw, string(k)); found {
		v = jsonValue(raw)
	}
	if len(o.cache) < maxCached {
		o.cache = append(o.cache, member{key: string(k), val: v})
	}
	return v, v != nil
}

// reset empties o for reuse, keeping its cache's memory.
func (o *rawObject) reset() {
	clear(o.cache)
	*o = rawObject{cache: o.cache[:0]}
}

// rawArray is a CEL list over a raw JSON array.
type rawArray struct {
	raw  []byte
	full traits.Lister
	size int // the number of elements plus one; 0: not counted yet
}

func (a *rawArray) decoded() traits.Lister {
	if a.full == nil {
		v, err := decodeJSON(a.raw)
		l, ok := v.([]any)
		if err != nil || !ok {
			l = []any{}
		}
		a.full = types.NewDynamicList(adapter, l)
	}
	return a.full
}

func (a *rawArray) ConvertToNative(t reflect.Type) (any, error) {
	return a.decoded().ConvertToNative(t)
}

func (a *rawArray) ConvertToType(t ref.Type) ref.Val {
	switch t {
	case types.ListType:
		return a
	case types.TypeType:
		return types.ListType
	}
	return types.NewErr("type conversion error from list to '%s'", t)
}

func (a *rawArray) Equal(other ref.Val) ref.Val    { return a.decoded().Equal(other) }
func (a *rawArray) Type() ref.Type                 { return types.ListType }
func (a *rawArray) Value() any                     { return a.decoded().Value() }
func (a *rawArray) Iterator() traits.Iterator      { return a.decoded().Iterator() }
func (a *rawArray) Add(other ref.Val) ref.Val      { return a.decoded().Add(other) }
func (a *rawArray) Contains(value ref.Val) ref.Val { return a.decoded().Contains(value) }

func (a *rawArray) Size() ref.Val {
	if a.full != nil {
		return a.full.Size()
	}
	if a.size == 0 {
		n := 0
		elements(a.raw, func([]byte) bool { n++; return true })
		a.size = n + 1
	}
	return types.Int(a.size - 1)
}

// Get decodes the array: comprehensions walk lists by index, and rescanning the bytes for
// each index would be quadratic.
func (a *rawArray) Get(index ref.Val) ref.Val { return a.decoded().Get(index) }

// principalValue is the CEL map for principal: id, groups, method, claims.
type principalValue struct {
	p      *Principal
	groups ref.Val // converted on first use
	full   traits.Mapper
}

func (v *principalValue) decoded() traits.Mapper {
	if v.full == nil {
		claims := v.p.Claims
		if claims == nil {
			claims = map[string]any{}
		}
		groups := v.p.Groups
		if groups == nil {
			groups = []string{}
		}
		v.full = types.NewStringInterfaceMap(adapter, map[string]any{
			"id": v.p.ID, "groups": groups, "method": v.p.Method, "claims": claims,
		})
	}
	return v.full
}

func (v *principalValue) ConvertToNative(t reflect.Type) (any, error) {
	return v.decoded().ConvertToNative(t)
}

func (v *principalValue) ConvertToType(t ref.Type) ref.Val {
	switch t {
	case types.MapType:
		return v
	case types.TypeType:
		return types.MapType
	}
	return types.NewErr("type conversion error from map to '%s'", t)
}

func (v *principalValue) Equal(other ref.Val) ref.Val { return v.decoded().Equal(other) }
func (v *principalValue) Type() ref.Type              { return types.MapType }
func (v *principalValue) Value() any                  { return v.decoded().Value() }
func (v *principalValue) Iterator() traits.Iterator   { return v.decoded().Iterator() }
func (v *principalValue) Size() ref.Val               { return types.Int(4) }

func (v *principalValue) Contains(key ref.Val) ref.Val {
	_, found := v.Find(key)
	return types.Bool(found)
}

func (v *principalValue) Get(key ref.Val) ref.Val {
	val, found := v.Find(key)
	if !found {
		return types.ValOrErr(val, "no such key: %v", key)
	}
	return val
}

func (v *principalValue) Find(key ref.Val) (ref.Val, bool) {
	k, ok := key.(types.String)
	if !ok {
		return nil, false
	}
	switch k {
	case "id":
		return types.String(v.p.ID), true
	case "method":
		return types.String(v.p.Method), true
	case "groups":
		if v.groups == nil {
			g := v.p.Groups
			if g == nil {
				g = []string{}
			}
			v.groups = types.NewStringList(adapter, g)
		}
		return v.groups, true
	case "claims":
		if v.p.Claims == nil {
			return emptyMap, true
		}
		return types.NewStringInterfaceMap(adapter, v.p.Claims), true
	}
	return nil, false
}

var emptyMap = types.NewStringInterfaceMap(adapter, map[string]any{})
