package cli

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-mcp/portcullis/internal/store/sqlite"
)

func TestReadiness(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	rd := &readiness{st: st}
	get := func() (int, string) {
		rec := httptest.NewRecorder()
		rd.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := get(); code != http.StatusOK {
		t.Fatalf("with an open store: %d %q, want 200", code, body)
	}
	rd.draining.Store(true)
	if code, body := get(); code != http.StatusServiceUnavailable || !strings.Contains(body, "draining") {
		t.Fatalf("draining: %d %q, want 503 draining", code, body)
	}
	rd.draining.Store(false)
	st.Close()
	if code, body := get(); code != http.StatusServiceUnavailable || !strings.Contains(body, "store") {
		t.Fatalf("with a closed store: %d %q, want 503 naming the store", code, body)
	}
}
