package registry

import (
	"context"
	"testing"

	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

// BenchmarkCallPinned is the hot path: a call of a tool whose definition is pinned and
// known (no store access, no listing).
func BenchmarkCallPinned(b *testing.B) {
	r := newRig(b, "tofu", "s")
	r.up.set("s", "tools/list", "["+addV1+","+echo+"]")
	r.names("s", "tools/list")
	h := r.h
	msg := jsonrpc.NewRequest(jsonrpc.IntID(1), "tools/call", map[string]any{"name": "add", "arguments": map[string]any{"a": 1, "b": 2}})
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := h.Handle(ctx, &guard.Call{Msg: msg, Server: "s", Name: "add"}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkListing checks a listing of 50 pinned tools against the store's pins.
func BenchmarkListing(b *testing.B) {
	r := newRig(b, "tofu", "s")
	items := "["
	for i := range 50 {
		if i > 0 {
			items += ","
		}
		items += `{"name":"tool` + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `","description":"Does a thing with a file.","inputSchema":{"type":"object","properties":{"path":{"type":"string"}}}}`
	}
	r.up.set("s", "tools/list", items+"]")
	r.names("s", "tools/list")
	msg := jsonrpc.NewRequest(jsonrpc.IntID(1), "tools/list", map[string]any{})
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := r.h.Handle(ctx, &guard.Call{Msg: msg, Server: "s"}); err != nil {
			b.Fatal(err)
		}
	}
}
