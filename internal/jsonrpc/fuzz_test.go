package jsonrpc

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzDecode checks that Decode never panics, that anything it accepts is valid JSON that
// encoding/json reads the same way, and that encoding and decoding again is stable.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":[1,2,{"b":null}]}}}`,
		`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":1}}`,
		`{"jsonrpc":"2.0","id":"s","result":{"content":[{"type":"text","text":"\u00e9\ud83d\ude00"}]}}`,
		`{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"bad","data":{"x":1}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"a","method":"b"}`,
		`{"jsonrpc":"2.0","id":1,"method":"a","params":{"k":1,"K":2}}`,
		`[1]`, `{}`, `"x"`, `{"a":"\ud800"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data, Limits{MaxBytes: 1 << 16, MaxDepth: 32})
		if err != nil {
			if _, ok := err.(*DecodeError); !ok {
				t.Fatalf("error of type %T", err)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		out := m.Marshal()
		m2, err := Decode(out, Limits{MaxBytes: 1 << 20, MaxDepth: 33})
		if err != nil {
			t.Fatalf("re-decoding %q: %v", out, err)
		}
		if m2.Method != m.Method || string(m2.ID) != string(m.ID) || string(m2.Params) != string(m.Params) || string(m2.Result) != string(m.Result) {
			t.Fatalf("round trip changed the message: %q -> %q", data, out)
		}
		// What we accept, encoding/json reads with the same method.
		var env struct {
			Method string `json:"method"`
		}
		if err := json.Unmarshal(data, &env); err == nil && env.Method != m.Method {
			t.Fatalf("method disagrees with encoding/json: %q vs %q", m.Method, env.Method)
		}
	})
}

func FuzzObjectEdits(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":{"c":[1,"x"]}}`), "b")
	f.Fuzz(func(t *testing.T, obj []byte, key string) {
		if Valid(obj, 32) != nil || len(obj) == 0 || obj[0] != '{' || !utf8.ValidString(key) {
			return
		}
		del, err := Delete(obj, key)
		if err != nil {
			return
		}
		if Valid(del, 32) != nil {
			t.Fatalf("Delete(%q,%q) produced invalid JSON %q", obj, key, del)
		}
		set, err := Set(obj, key, []byte(`"v"`))
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := LookupString(set, key); !ok || v != "v" {
			t.Fatalf("Set then Lookup failed on %q: %q", obj, set)
		}
	})
}
