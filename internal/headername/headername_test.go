package headername

import (
	"net/textproto"
	"testing"
)

func TestCanonical(t *testing.T) {
	names := []string{
		"mcp-session-id", "MCP-Protocol-Version", "mcp-protocol-version", "Mcp-Session-Id",
		"content-type", "CONTENT-LENGTH", "host", "accept", "user-agent", "last-event-id",
		"x-powered-by", "te", "TE", "x-custom-thing", "Mcp-Param-Region", "mcp-param-region",
		"a", "", "bad name", "héader", "Content_Type", "x-very-long-header-name-indeed",
	}
	for _, n := range append(names, common[:]...) {
		if got, want := Canonical(n), textproto.CanonicalMIMEHeaderKey(n); got != want {
			t.Errorf("Canonical(%q) = %q; want %q", n, got, want)
		}
	}
}

func TestCanonicalCommonNamesDoNotAllocate(t *testing.T) {
	names := []string{"mcp-session-id", "MCP-Protocol-Version", "content-type", "Accept", "host"}
	if n := testing.AllocsPerRun(100, func() {
		for _, s := range names {
			Canonical(s)
		}
	}); n != 0 {
		t.Errorf("Canonical of common names: %v allocations; want 0", n)
	}
}

func BenchmarkCanonical(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Canonical("mcp-protocol-version")
	}
}
