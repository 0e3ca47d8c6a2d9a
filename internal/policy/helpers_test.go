package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"cel.dev/cel-go/common/types"
)

// evalBoth evaluates a condition with args as the lazy raw JSON view and as decoded values,
// and formats both results (errors as "error", whatever the message).
func evalBoth(t *testing.T, cond, args string) (lazy, eager string) {
	t.Helper()
	e, err := env()
	if err != nil {
		t.Fatal(err)
	}
	checked, iss := e.Compile(cond)
	if iss != nil && iss.Err() != nil {
		t.Fatalf("%s: %v", cond, iss.Err())
	}
	prg, err := e.Program(checked)
	if err != nil {
		t.Fatal(err)
	}
	decoded, err := decodeJSON([]byte(args))
	if err != nil {
		t.Fatalf("%s: %v", args, err)
	}
	format := func(v any) string {
		out, _, err := prg.Eval(map[string]any{"args": v})
		if err != nil || types.IsError(out) {
			return "error"
		}
		return fmt.Sprintf("%v", out.Value())
	}
	return format(&rawObject{raw: []byte(args)}), format(types.DefaultTypeAdapter.NativeToValue(decoded))
}

// jsonValid reports whether doc is valid JSON without duplicate keys in its top-level
// object (the gateway rejects those before any guard sees them).
func jsonValid(doc []byte) bool {
	if !json.Valid(doc) {
		return false
	}
	d := json.NewDecoder(bytes.NewReader(doc))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		return false
	}
	seen := map[string]bool{}
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return false
		}
		k := tok.(string)
		if seen[k] {
			return false
		}
		seen[k] = true
		var skip json.RawMessage
		if err := d.Decode(&skip); err != nil {
			return false
		}
	}
	return true
}
