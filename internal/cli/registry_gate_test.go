package cli

import (
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/portcullis-mcp/portcullis/internal/registry"
)

// TestPinnedTransport: an HTTPS server whose registry entry pins its certificate key is
// reached with that key and refused with another, even when its certificate is trusted.
func TestPinnedTransport(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	logger := slog.New(slog.DiscardHandler)
	get := func(pin string) error {
		tr := pinnedTransport(&registry.Entry{Name: "remote", URL: srv.URL, SPKI: []string{pin}}, logger)
		tr.TLS.RootCAs = roots // the test server's certificate is trusted; only the pin decides
		req, _ := http.NewRequest("GET", srv.URL, nil)
		resp, err := tr.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := get(registry.SPKI(srv.Certificate())); err != nil {
		t.Fatalf("the pinned key: %v", err)
	}
	if err := get("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="); err == nil || !strings.Contains(err.Error(), "refused by the registry") {
		t.Fatalf("another key: %v", err)
	}
}
