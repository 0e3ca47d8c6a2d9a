package streamablehttp

import (
	"context"
	"encoding/json"
	"math/big"
	"net/http"
	"strings"
	"sync"

	"github.com/portcullis-mcp/portcullis/internal/identity"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

// A 2026-07-28 tool may mirror some of its arguments into Mcp-Param-{Name} headers
// (x-mcp-header in its input schema). Whoever routes or decides on those headers must see
// what the server will read, so the gateway checks them against the body, using the schemas
// of the tools it listed to that principal.

// paramHeader is one argument mirrored into a header.
type paramHeader struct {
	name string   // the {Name} of Mcp-Param-{Name}
	path []string // properties chain from the schema root
	typ  string   // string, integer or boolean
}

// paramIndex remembers, per principal, the mirrored arguments of each listed tool.
type paramIndex struct {
	mu    sync.Mutex
	tools map[string]map[string][]paramHeader // principal key -> tool name -> headers
}

func principalKey(p identity.Principal) string { return p.Method + "\x00" + p.ID }

// learn records the x-mcp-header annotations of a tools/list result.
func (ix *paramIndex) learn(p identity.Principal, result []byte) {
	tools, ok := jsonrpc.Lookup(result, "tools")
	if !ok {
		return
	}
	found := map[string][]paramHeader{}
	jsonrpc.Elements(tools, func(tool []byte) bool {
		name, _ := jsonrpc.LookupString(tool, "name")
		schema, ok := jsonrpc.Lookup(tool, "inputSchema")
		if name == "" || !ok {
			return true
		}
		var hs []paramHeader
		collectHeaders(schema, nil, &hs, 0)
		found[name] = hs
		return true
	})
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.tools == nil {
		ix.tools = map[string]map[string][]paramHeader{}
	}
	key := principalKey(p)
	if ix.tools[key] == nil {
		ix.tools[key] = map[string][]paramHeader{}
	}
	for k, v := range found {
		ix.tools[key][k] = v
	}
}

func collectHeaders(schema []byte, path []string, out *[]paramHeader, depth int) {
	if depth > 16 {
		return
	}
	props, ok := jsonrpc.Lookup(schema, "properties")
	if !ok || len(props) == 0 || props[0] != '{' {
		return
	}
	for _, k := range jsonrpc.Keys(props) {
		sub, _ := jsonrpc.Lookup(props, k)
		p := append(append([]string(nil), path...), k)
		if h, ok := jsonrpc.LookupString(sub, "x-mcp-header"); ok && h != "" {
			typ, _ := jsonrpc.LookupString(sub, "type")
			*out = append(*out, paramHeader{name: h, path: p, typ: typ})
		}
		collectHeaders(sub, p, out, depth+1)
	}
}

func (ix *paramIndex) lookup(p identity.Principal, tool string) ([]paramHeader, bool) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	hs, ok := ix.tools[principalKey(p)][tool]
	return hs, ok
}

// checkParams validates the Mcp-Param-* headers of a modern tools/call against its body.
// When the tool's schema is not known yet, the principal's tool list is fetched once.
func (h *Handler) checkParams(ctx context.Context, r *http.Request, p identity.Principal, m *jsonrpc.Message) *jsonrpc.Error {
	name, _ := jsonrpc.LookupString(m.Params, "name")
	hs, ok := h.params.lookup(p, name)
	if !ok {
		list := &jsonrpc.Message{ID: jsonrpc.ID(`"portcullis-param-schemas"`), Method: "tools/list"}
		meta, _ := jsonrpc.Lookup(m.Params, "_meta")
		list.Params, _ = jsonrpc.Set([]byte(`{}`), "_meta", meta)
		if resp := h.g.HandleModern(ctx, p, ctxClient{h}, list); resp != nil && resp.Error == nil {
			h.params.learn(p, resp.Result)
		}
		hs, _ = h.params.lookup(p, name)
	}
	args, _ := jsonrpc.Lookup(m.Params, "arguments")
	for _, ph := range hs {
		header := "Mcp-Param-" + ph.name
		vals := r.Header.Values(header)
		raw, present := jsonrpc.LookupPath(args, ph.path...)
		if present && string(raw) == "null" {
			present = false
		}
		if len(vals) > 1 {
			return jsonrpc.Errorf(jsonrpc.CodeHeaderMismatch, "Header mismatch: more than one %s header", header)
		}
		if !present {
			continue
		}
		if len(vals) == 0 {
			return jsonrpc.Errorf(jsonrpc.CodeHeaderMismatch, "Header mismatch: %s header is required: the body has a value for it", header)
		}
		got, err := decodeHeaderValue(strings.TrimSpace(vals[0]))
		if err != nil {
			return jsonrpc.Errorf(jsonrpc.CodeHeaderMismatch, "Header mismatch: %s header: %v", header, err)
		}
		if !paramMatches(got, raw) {
			return jsonrpc.Errorf(jsonrpc.CodeHeaderMismatch, "Header mismatch: %s header value %q does not match the body value %s", header, got, truncateRaw(raw))
		}
	}
	// Headers of other names are not ours to judge, but their characters are.
	for k, vs := range r.Header {
		if !strings.HasPrefix(strings.ToLower(k), "mcp-param-") {
			continue
		}
		for _, v := range vs {
			if _, err := decodeHeaderValue(strings.TrimSpace(v)); err != nil {
				return jsonrpc.Errorf(jsonrpc.CodeHeaderMismatch, "Header mismatch: %s header: %v", k, err)
			}
		}
	}
	return nil
}

// paramMatches compares a decoded header value with the body's raw JSON value: strings
// exactly, numbers numerically (42 and 42.0 are equal), booleans as true/false.
func paramMatches(header string, raw []byte) bool {
	if len(raw) == 0 {
		return false
	}
	switch raw[0] {
	case '"':
		var s string
		return json.Unmarshal(raw, &s) == nil && s == header
	case 't', 'f':
		return string(raw) == header
	default:
		a, ok1 := new(big.Float).SetString(string(raw))
		b, ok2 := new(big.Float).SetString(header)
		return ok1 && ok2 && a.Cmp(b) == 0
	}
}

func truncateRaw(raw []byte) string {
	if len(raw) > 64 {
		return string(raw[:64]) + "…"
	}
	return string(raw)
}
