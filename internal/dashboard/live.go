package dashboard

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/store"
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
// it skipped (the audit trail itself lost none). With FleetFeed it streams what every
// process sharing the store records, read from the store.
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
	var events <-chan audit.Event
	var sub *audit.Subscription
	var fleet *fleetReader
	var poll <-chan time.Time
	if s.o.FleetFeed > 0 {
		fleet = newFleetReader(r.Context(), s.o.Store, s.o.Now())
		t := time.NewTicker(s.o.FleetFeed)
		defer t.Stop()
		poll = t.C
	} else {
		sub = rec.Subscribe(256)
		defer sub.Close()
		events = sub.C
	}
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
		case <-poll:
			evs, skipped, err := fleet.next(r.Context())
			if err != nil {
				if r.Context().Err() == nil {
					s.log.Warn("the live feed could not read the fleet's audit trail", "err", err)
				}
				continue
			}
			if len(evs) == 0 && skipped == 0 {
				continue
			}
			for i := range evs {
				b, _ := json.Marshal(itemOf(&evs[i]))
				fmt.Fprintf(w, "event: audit\ndata: %s\n\n", b)
			}
			if skipped > 0 {
				fmt.Fprintf(w, "event: skipped\ndata: %d\n\n", skipped)
			}
		case e := <-events:
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

// fleetGrace is how far back each read of the fleet's trail looks past the newest event
// it saw: a replica's events reach the store a moment after their time.
const fleetGrace = 5 * time.Second

// fleetReadLimit bounds one read of the fleet's trail.
var fleetReadLimit = 1000

// fleetReader reads, from the store, the events every chain records after the feed opened.
type fleetReader struct {
	st    store.AuditLog
	since time.Time
	seen  map[string]uint64 // chain -> last seq sent
}

func newFleetReader(ctx context.Context, st store.AuditLog, now time.Time) *fleetReader {
	f := &fleetReader{st: st, since: now.Add(-fleetGrace), seen: map[string]uint64{}}
	if chains, err := st.AuditChains(ctx); err == nil {
		for _, c := range chains {
			if last, err := st.LastAudit(ctx, c); err == nil {
				f.seen[c] = last.Seq
			}
		}
	}
	return f
}

// next returns the events stored since the last read, oldest first, and how many events
// of the chains it knows it did not get (more than one read takes fell between two reads:
// the gaps in their sequence numbers).
func (f *fleetReader) next(ctx context.Context) ([]audit.Event, uint64, error) {
	recs, err := f.st.SearchAudit(ctx, store.AuditQuery{Since: f.since, Limit: fleetReadLimit})
	if err != nil {
		return nil, 0, err
	}
	var fresh []store.AuditRecord
	seqs := map[string][]uint64{}
	for _, r := range recs {
		if r.Seq > f.seen[r.Chain] {
			fresh = append(fresh, r)
			seqs[r.Chain] = append(seqs[r.Chain], r.Seq)
		}
	}
	var skipped uint64
	for chain, ss := range seqs {
		slices.Sort(ss)
		prev := f.seen[chain]
		for _, q := range ss {
			if q > prev+1 {
				skipped += q - prev - 1
			}
			prev = q
		}
		f.seen[chain] = prev
	}
	slices.SortFunc(fresh, func(a, b store.AuditRecord) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		if c := strings.Compare(a.Chain, b.Chain); c != 0 {
			return c
		}
		return cmp.Compare(a.Seq, b.Seq)
	})
	out := make([]audit.Event, 0, len(fresh))
	for _, r := range fresh {
		if t := r.Time.Add(-fleetGrace); t.After(f.since) {
			f.since = t
		}
		var e audit.Event
		if err := json.Unmarshal(r.Line, &e); err != nil {
			continue // verify reports a damaged line; the feed shows the others
		}
		out = append(out, e)
	}
	return out, skipped, nil
}
