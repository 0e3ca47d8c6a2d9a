package streamablehttp

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/portcullis-mcp/portcullis/internal/identity"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

func TestCheckParams(t *testing.T) {
	listing := `{"tools":[{"name":"execute_sql","inputSchema":{"type":"object","properties":{
		"region":{"type":"string","x-mcp-header":"Region"},
		"limit":{"type":"integer","x-mcp-header":"Limit"},
		"opts":{"type":"object","properties":{"dry":{"type":"boolean","x-mcp-header":"Dry"}}},
		"query":{"type":"string"}}}}]}`
	p := identity.Principal{ID: "alice", Method: "apikey"}
	h := &Handler{}
	h.params.learn(p, []byte(listing))
	tests := []struct {
		name    string
		args    string
		headers map[string]string
		wantErr string
	}{
		{"all match", `{"region":"us-west1","limit":42,"opts":{"dry":true},"query":"x"}`, map[string]string{"Mcp-Param-Region": "us-west1", "Mcp-Param-Limit": "42.0", "Mcp-Param-Dry": "true"}, ""},
		{"base64 value", `{"region":"Hello, 世界"}`, map[string]string{"Mcp-Param-Region": "=?base64?SGVsbG8sIOS4lueVjA==?="}, ""},
		{"absent value, no header", `{"query":"x"}`, nil, ""},
		{"null value, no header", `{"region":null}`, nil, ""},
		{"mismatch", `{"region":"us-west1"}`, map[string]string{"Mcp-Param-Region": "eu-west1"}, "does not match"},
		{"missing header", `{"region":"us-west1"}`, nil, "is required"},
		{"number mismatch", `{"limit":42}`, map[string]string{"Mcp-Param-Limit": "43"}, "does not match"},
		{"nested boolean mismatch", `{"opts":{"dry":false}}`, map[string]string{"Mcp-Param-Dry": "true"}, "does not match"},
		{"invalid characters", `{"query":"x"}`, map[string]string{"Mcp-Param-Other": "a\x01b"}, "invalid character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/mcp", nil)
			for k, v := range tt.headers {
				r.Header.Set(k, v)
			}
			params := `{"name":"execute_sql","arguments":` + tt.args + `}`
			m := &jsonrpc.Message{ID: jsonrpc.IntID(1), Method: "tools/call", Params: []byte(params)}
			je := h.checkParams(context.Background(), r, p, m)
			switch {
			case tt.wantErr == "" && je != nil:
				t.Fatalf("unexpected refusal: %v", je)
			case tt.wantErr != "" && (je == nil || je.Code != jsonrpc.CodeHeaderMismatch || !strings.Contains(je.Message, tt.wantErr)):
				t.Fatalf("got %v, want HeaderMismatch containing %q", je, tt.wantErr)
			}
		})
	}
}
