package jsonrpc

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestDecodeRejects(t *testing.T) {
	deep := strings.Repeat("[", 100) + strings.Repeat("]", 100)
	tests := []struct {
		name, in string
		code     int
		msg      string
		id       string
	}{
		{"duplicate top-level key", `{"jsonrpc":"2.0","id":1,"method":"a","method":"b"}`, CodeParseError, `duplicate object key "method"`, "1"},
		{"duplicate nested key", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok","arguments":{"p":1,"p":2}}}`, CodeParseError, `duplicate object key "p"`, "1"},
		{"duplicate after unescape", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok","n\u0061me":"evil"}}`, CodeParseError, `duplicate object key "name"`, "1"},
		{"case collision", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok","Name":"evil"}}`, CodeParseError, "differ only in case", "1"},
		{"invalid utf8", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\xff\"}", CodeParseError, "invalid UTF-8", ""},
		{"lone surrogate", `{"jsonrpc":"2.0","id":1,"method":"a\ud800"}`, CodeParseError, "lone surrogate", "1"},
		{"batch", `[{"jsonrpc":"2.0","id":1,"method":"a"}]`, CodeInvalidRequest, "batch", ""},
		{"deep", `{"jsonrpc":"2.0","id":1,"method":"a","params":{"x":` + deep + `}}`, CodeParseError, "nesting deeper than 64", "1"},
		{"not object", `42`, CodeInvalidRequest, "must be a JSON object", ""},
		{"bad version", `{"jsonrpc":"1.0","id":1,"method":"a"}`, CodeInvalidRequest, `"jsonrpc" must be "2.0"`, "1"},
		{"no method", `{"jsonrpc":"2.0","id":1}`, CodeInvalidRequest, "needs", "1"},
		{"object id", `{"jsonrpc":"2.0","id":{},"method":"a"}`, CodeInvalidRequest, "string or a number", ""},
		{"null id request", `{"jsonrpc":"2.0","id":null,"method":"a"}`, CodeInvalidRequest, "must not be null", ""},
		{"scalar params", `{"jsonrpc":"2.0","id":1,"method":"a","params":3}`, CodeInvalidRequest, "params", "1"},
		{"trailing", `{"jsonrpc":"2.0","id":1,"method":"a"} {}`, CodeParseError, "trailing data", "1"},
		{"truncated", `{"jsonrpc":"2.0","id":7,"method":"a","params":{"x":`, CodeParseError, "parse error", "7"},
		{"result and error", `{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"x"}}`, CodeInvalidRequest, "both", "1"},
		{"control char", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\nb\"}", CodeParseError, "control character", "1"},
		{"bad number", `{"jsonrpc":"2.0","id":01,"method":"a"}`, CodeParseError, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.in), Limits{})
			de, ok := err.(*DecodeError)
			if !ok {
				t.Fatalf("Decode(%s) = %v, want a DecodeError", tt.in, err)
			}
			if de.Code != tt.code || !strings.Contains(de.Msg, tt.msg) {
				t.Errorf("got code %d %q, want %d containing %q", de.Code, de.Msg, tt.code, tt.msg)
			}
			if string(de.ID) != tt.id {
				t.Errorf("id = %q, want %q", de.ID, tt.id)
			}
		})
	}
}

func TestDecodeSizeLimit(t *testing.T) {
	in := `{"jsonrpc":"2.0","id":1,"method":"a","params":{"x":"` + strings.Repeat("a", 200) + `"}}`
	if _, err := Decode([]byte(in), Limits{MaxBytes: 100}); err == nil || !strings.Contains(err.Error(), "exceeds the limit of 100 bytes") {
		t.Fatalf("err = %v", err)
	}
	if _, err := Decode([]byte(in), Limits{MaxBytes: 1000}); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeKinds(t *testing.T) {
	tests := []struct {
		in                 string
		req, notif, resp   bool
		method, id, params string
	}{
		{`{"jsonrpc":"2.0","id":"a\"b","method":"tools/call","params":{"name":"x"}}`, true, false, false, "tools/call", `"a\"b"`, `{"name":"x"}`},
		{` { "method" : "notifications/initialized" , "jsonrpc" : "2.0" } `, false, true, false, "notifications/initialized", "", ""},
		{`{"jsonrpc":"2.0","id":-1.5e3,"result":{"ok":true}}`, false, false, true, "", "-1.5e3", ""},
		{`{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}`, false, false, true, "", "null", ""},
		{`{"jsonrpc":"2.0","id":1,"method":"m\u00e9thode","params":[1,2]}`, true, false, false, "méthode", "1", "[1,2]"},
		{`{"jsonrpc":"2.0","id":1,"method":"a","params":{"emoji":"\ud83d\ude00"}}`, true, false, false, "a", "1", `{"emoji":"\ud83d\ude00"}`},
	}
	for _, tt := range tests {
		m, err := Decode([]byte(tt.in), Limits{})
		if err != nil {
			t.Fatalf("Decode(%s): %v", tt.in, err)
		}
		if m.IsRequest() != tt.req || m.IsNotification() != tt.notif || m.IsResponse() != tt.resp {
			t.Errorf("%s: kinds req=%v notif=%v resp=%v", tt.in, m.IsRequest(), m.IsNotification(), m.IsResponse())
		}
		if m.Method != tt.method || string(m.ID) != tt.id || string(m.Params) != tt.params {
			t.Errorf("%s: got method %q id %q params %q", tt.in, m.Method, m.ID, m.Params)
		}
	}
}

// Params and results are forwarded byte for byte: spacing, key order and number spelling
// survive a round trip.
func TestRoundTripKeepsRawBytes(t *testing.T) {
	params := `{ "b" : 1.50, "a":[ 1e2 ,"\u00e9"],"z":{} }`
	in := `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":` + params + `,"extra":1}`
	m, err := Decode([]byte(in), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	out := m.Marshal()
	m2, err := Decode(out, Limits{})
	if err != nil {
		t.Fatalf("re-decode %s: %v", out, err)
	}
	if string(m2.Params) != params {
		t.Errorf("params changed: %s", m2.Params)
	}
	if bytes.Contains(out, []byte("extra")) {
		t.Errorf("unknown envelope member was forwarded: %s", out)
	}
	var generic map[string]any
	if err := json.Unmarshal(out, &generic); err != nil {
		t.Fatalf("output is not JSON: %v", err)
	}
}

func TestObjectEdits(t *testing.T) {
	obj := []byte(`{"name":"read", "arguments":{"path":"/x"},"_meta":{}}`)
	if v, ok := LookupString(obj, "name"); !ok || v != "read" {
		t.Fatalf("LookupString = %q %v", v, ok)
	}
	if v, ok := LookupPath(obj, "arguments", "path"); !ok || string(v) != `"/x"` {
		t.Fatalf("LookupPath = %s %v", v, ok)
	}
	set, _ := Set(obj, "name", Quote("fs__read"))
	if string(set) != `{"name":"fs__read", "arguments":{"path":"/x"},"_meta":{}}` {
		t.Errorf("Set replace = %s", set)
	}
	add, _ := Set([]byte(`{"a":1}`), "b", []byte(`2`))
	if string(add) != `{"a":1,"b":2}` {
		t.Errorf("Set append = %s", add)
	}
	addEmpty, _ := Set([]byte(`{ }`), "b", []byte(`2`))
	if string(addEmpty) != `{"b":2 }` && string(addEmpty) != `{"b":2}` {
		t.Errorf("Set on empty = %s", addEmpty)
	}
	for _, tt := range []struct{ in, key, want string }{
		{`{"a":1,"b":2,"c":3}`, "a", `{"b":2,"c":3}`},
		{`{"a":1,"b":2,"c":3}`, "b", `{"a":1,"c":3}`},
		{`{"a":1,"b":2,"c":3}`, "c", `{"a":1,"b":2}`},
		{`{"a":1}`, "a", `{}`},
		{`{"a":1}`, "x", `{"a":1}`},
	} {
		got, _ := Delete([]byte(tt.in), tt.key)
		if string(got) != tt.want {
			t.Errorf("Delete(%s, %s) = %s, want %s", tt.in, tt.key, got, tt.want)
		}
	}
	var n int
	Elements([]byte(`[ {"a":[1,2]}, "x,y" ,3]`), func([]byte) bool { n++; return true })
	if n != 3 {
		t.Errorf("Elements counted %d", n)
	}
}

func TestLookupEscapedKeys(t *testing.T) {
	obj := []byte(`{"n\u0061me":"x","plain":1}`)
	if v, ok := LookupString(obj, "name"); !ok || v != "x" {
		t.Fatalf("escaped key not found: %q %v", v, ok)
	}
	if _, ok := Lookup(obj, "n\\u0061me"); ok {
		t.Fatal("a key must be compared unescaped, not as written")
	}
	if got := Keys(obj); len(got) != 2 || got[0] != "name" {
		t.Fatalf("Keys = %q", got)
	}
}

func BenchmarkLookup(b *testing.B) {
	obj := []byte(`{"_meta":{"progressToken":1},"name":"read_file","arguments":{"path":"/workspace/a.txt"}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := Lookup(obj, "arguments"); !ok {
			b.Fatal("missing")
		}
	}
}

func TestSetMeta(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`{"a":1}`, `{"a":1,"_meta":{"k":true}}`},
		{`{"_meta":{"x":1},"a":1}`, `{"_meta":{"x":1,"k":true},"a":1}`},
		{`{"_meta":null}`, `{"_meta":{"k":true}}`},
	} {
		got, err := SetMeta([]byte(tt.in), "k", []byte("true"))
		if err != nil || string(got) != tt.want {
			t.Errorf("SetMeta(%s) = %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}
