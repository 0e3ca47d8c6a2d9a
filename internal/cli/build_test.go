package cli

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/portcullis-mcp/portcullis/internal/config"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

// The client for HTTP servers never follows a redirect: it would carry the call and the
// injected credentials to another place.
func TestUpstreamClientDoesNotFollowRedirects(t *testing.T) {
	var followed bool
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { followed = true }))
	defer elsewhere.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL, http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	opts := httpOptions(config.Server{Name: "s", URL: srv.URL, Headers: map[string]string{"Authorization": "Bearer secret"}}, jsonrpc.Limits{}, nil, nil)
	resp, err := opts.Client.Post(srv.URL, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if followed || resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("redirect followed=%v status=%d", followed, resp.StatusCode)
	}
}
