package approval

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
	"github.com/portcullis-mcp/portcullis/internal/store"
)

// Arguments returns the canonical JSON of what a call asks the server to do: the
// arguments of tools/call and prompts/get ({} when absent), the params of any other
// request without its _meta and the 2026-07-28 retry fields. Canonical: object keys
// sorted, no insignificant space, numbers as written. Two calls with the same canonical
// arguments ask for the same thing; an approval is bound to their hash.
func Arguments(m *jsonrpc.Message) ([]byte, error) {
	var raw []byte
	switch m.Method {
	case "tools/call", "prompts/get":
		v, ok := jsonrpc.Lookup(m.Params, "arguments")
		if !ok || string(v) == "null" {
			return []byte("{}"), nil
		}
		if len(v) == 0 || v[0] != '{' {
			return nil, fmt.Errorf("%s: arguments must be an object", m.Method)
		}
		raw = v
	default:
		if len(m.Params) == 0 || string(m.Params) == "null" {
			return []byte("{}"), nil
		}
		raw = stripRetry(m.Params)
		raw, _ = jsonrpc.Delete(raw, "_meta")
	}
	return Canonical(raw)
}

// Canonical re-encodes JSON with sorted object keys and numbers kept as written.
func Canonical(raw []byte) ([]byte, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("arguments are not JSON: %w", err)
	}
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// Hash is the hex SHA-256 of canonical arguments.
func Hash(canonical []byte) string {
	s := sha256.Sum256(canonical)
	return hex.EncodeToString(s[:])
}

// Binding is what an approval of call c with canonical arguments args is bound to.
func Binding(c *guard.Call, args []byte) store.ApprovalBinding {
	return store.ApprovalBinding{
		Principal: c.Principal.ID, PrincipalMethod: c.Principal.Method,
		Server: c.Server, Method: c.Msg.Method, Tool: c.Name, ArgsHash: Hash(args),
	}
}

// stripRetry removes the 2026-07-28 retry fields (requestState, inputResponses) from
// params: they are the gateway's, never the server's.
func stripRetry(params []byte) []byte {
	out := params
	for _, k := range []string{"requestState", "inputResponses"} {
		if _, ok := jsonrpc.Lookup(out, k); ok {
			if o, err := jsonrpc.Delete(out, k); err == nil {
				out = o
			}
		}
	}
	return out
}
