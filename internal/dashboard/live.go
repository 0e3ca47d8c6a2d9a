package dashboard

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/audit"
)

// feedItem is what the live feed sends of an event: no arguments, results or their
// hashes.
type feedItem struct {
	Time      string          `json:"time"`
	Seq       uint64          `json:"seq"`
	Code      string          `json:"code"`
	Kind      string          `json:"kind"`
	Decision  string          `json:"decision,omitempty"`
	Principal string          `json:"principal,omitempty"`
	Server    string          `json:"server,omitempty"`
	Method    string          `json:"method,omitempty"`
	Tool      string          `json:"tool,omitempty"`
	Guard     string          `json:"guard,omitempty"`
	Latency   string          `json:"latency,omitempty"`
	Message   string          `json:"message,omitempty"`
	Findings  []audit.Finding `json:"findings,omitempty"`
}

func itemOf(e *audit.Event) feedItem {
	it := feedItem{Time: e.Time.UTC().Format("2006-01-02 15:04:05Z"), Seq: e.Seq, Code: e.Code, Kind: e.Kind, Decision: e.Decision,
		Principal: e.Principal, Server: e.Server, Method: e.Method, Tool: e.Tool, Guard: e.Guard, Message: e.Message, Findings: e.Findings}
	if e.LatencyMicros > 0 {
		it.Latency = fmt.Sprintf("%.1f ms", float64(e.LatencyMicros)/1000)
	}
	return it
}

// liveEvents streams the events this gateway records, as server-sent events, until the
// page goes away or the server shuts down. A feed that falls behind says how many events
// it skipped (the audit trail itself lost none).
func (s *Server) liveEvents(w http.ResponseWriter, r *http.Request) {
	rec := s.recorder()
	if rec == nil {
		http.Error(w, "dashboard: the audit trail is off; there is no live feed (enable guards.audit)", http.StatusServiceUnavailable)
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	sub := rec.Subscribe(256)
	defer sub.Close()
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 2000\n: connected\n\n")
	if err := rc.Flush(); err != nil {
		return
	}
	tick := time.NewTicker(15 * time.Second)
	defer tick.Stop()
	var dropped uint64
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		case <-tick.C:
			if s.sess.from(r) == nil { // logged out or expired: the stream ends too
				return
			}
			fmt.Fprint(w, ": keep-alive\n\n")
		case e := <-sub.C:
			b, _ := json.Marshal(itemOf(&e))
			fmt.Fprintf(w, "id: %d\nevent: audit\ndata: %s\n\n", e.Seq, b)
			if d := sub.Dropped(); d > dropped {
				fmt.Fprintf(w, "event: skipped\ndata: %d\n\n", d-dropped)
				dropped = d
			}
		}
		rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := rc.Flush(); err != nil {
			return
		}
	}
}
