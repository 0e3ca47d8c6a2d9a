package streamablehttp

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

func TestWriteEvent(t *testing.T) {
	big := `{"text":"` + strings.Repeat("x", 5000) + `"}`
	for _, tc := range []struct {
		name, stream string
		seq          int
		msg          *jsonrpc.Message
		pre, want    string
	}{
		{"no id", "", 0, jsonrpc.NewResult(jsonrpc.IntID(1), json.RawMessage(`{}`)), "",
			"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n"},
		{"id", "k3", 12, jsonrpc.NewResult(jsonrpc.IntID(2), json.RawMessage(`{}`)), "",
			"id: k3_12\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}\n\n"},
		{"after other events, larger than the buffer", "a", 0, jsonrpc.NewResult(jsonrpc.IntID(3), json.RawMessage(big)), "retry: 1000\n\n",
			"retry: 1000\n\nid: a_0\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":" + big + "}\n\n"},
	} {
		var b bytes.Buffer
		b.WriteString(tc.pre)
		writeEvent(&b, tc.stream, tc.seq, tc.msg)
		if b.String() != tc.want {
			t.Errorf("%s: wrote %q; want %q", tc.name, b.String(), tc.want)
		}
	}
}
