package cli

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/store"
)

// readiness answers /readyz: a replica is ready while it is not draining and its store
// answers. A load balancer or Kubernetes takes a replica out of rotation on 503 before
// SIGTERM's drain ends, so no new session lands on a replica that is going away.
type readiness struct {
	st       store.Store
	draining atomic.Bool
}

func (rd *readiness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if rd.draining.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "draining\n")
		return
	}
	if rd.st != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		// The pins version is the cheapest read every store has; it touches the database.
		if _, err := rd.st.PinsVersion(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "store unavailable: "+err.Error()+"\n")
			return
		}
	}
	io.WriteString(w, "ready\n")
}
