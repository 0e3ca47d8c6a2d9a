package streamablehttp_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/portcullis-mcp/portcullis/internal/gateway"
	"github.com/portcullis-mcp/portcullis/internal/identity"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
	"github.com/portcullis-mcp/portcullis/internal/transport/streamablehttp"
)

// A refusal of the authenticator is answered with its status and challenge, and nothing
// reaches a server.
func TestAuthenticationRefusals(t *testing.T) {
	a := serverA()
	auth := func(r *http.Request) (identity.Principal, error) {
		switch r.Header.Get("X-Test") {
		case "scope":
			return identity.Principal{}, &identity.Error{Status: http.StatusForbidden, Challenge: `Bearer error="insufficient_scope", scope="mcp:tools"`, Reason: "token lacks scope mcp:tools"}
		case "bad":
			return identity.Principal{}, &identity.Error{Status: http.StatusUnauthorized, Challenge: `Bearer error="invalid_token"`, Reason: "token expired"}
		case "plain":
			return identity.Principal{}, errors.New("who are you?")
		}
		return identity.Principal{ID: "alice", Method: "apikey"}, nil
	}
	f := newFront(t, streamablehttp.Options{Authenticate: auth}, gateway.Options{}, a)
	for _, tc := range []struct {
		hdr       string
		status    int
		challenge string
	}{
		{"scope", http.StatusForbidden, `Bearer error="insufficient_scope", scope="mcp:tools"`},
		{"bad", http.StatusUnauthorized, `Bearer error="invalid_token"`},
		{"plain", http.StatusUnauthorized, ""},
	} {
		resp := f.post(initBody, "X-Test", tc.hdr)
		if got := resp.Header.Get("WWW-Authenticate"); got != tc.challenge {
			t.Errorf("%s: WWW-Authenticate %q, want %q", tc.hdr, got, tc.challenge)
		}
		wantError(t, resp, tc.status, jsonrpc.CodeInvalidRequest)
	}
	if tr := a.Traffic(); len(tr) != 0 {
		t.Errorf("server saw %v from refused requests", methods(tr))
	}
	f.initialize()
}
