package dashboard

import (
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/store"
)

func TestSummarize(t *testing.T) {
	now := time.Date(2026, 12, 3, 8, 30, 0, 0, time.UTC)
	ev := func(ago time.Duration, decision string, lat time.Duration) store.AuditRecord {
		e := &audit.Event{ID: "x", Code: "c", Hash: "h", Time: now.Add(-ago), Kind: audit.KindResponse, Decision: decision, LatencyMicros: lat.Microseconds()}
		return store.AuditRecord{Line: e.AppendCanonical(nil)}
	}
	request := &audit.Event{Time: now, Kind: audit.KindRequest, Findings: []audit.Finding{{Detector: "d", Severity: "high"}}}
	recs := []store.AuditRecord{
		ev(time.Minute, audit.Allowed, 500*time.Microsecond),
		ev(2*time.Minute, audit.Allowed, 3*time.Millisecond),
		ev(3*time.Minute, audit.Denied, 0),
		ev(2*time.Hour, audit.Allowed, 3*time.Second),
		ev(2*time.Hour, audit.Failed, 0),
		{Line: request.AppendCanonical(nil)}, // requests are not counted twice
		{Line: []byte("not an event")},
	}
	s := summarize(now, pointsOf(recs))
	if s.Calls != 5 || s.Allowed != 3 || s.Denied != 1 || s.Failed != 1 || s.Findings != 1 {
		t.Errorf("counts %+v", s)
	}
	last, earlier := s.Hours[23], s.Hours[21]
	if last.Allowed != 2 || last.Denied != 1 || earlier.Allowed != 1 || earlier.Fail != 1 {
		t.Errorf("hours: last %+v, two hours before %+v", last, earlier)
	}
	if s.Latency[0].Allowed != 1 || s.Latency[1].Allowed != 1 || s.Latency[6].Allowed != 1 {
		t.Errorf("latency buckets %+v", s.Latency)
	}
	if s.P50 != "3ms" || s.P99 != "3s" {
		t.Errorf("p50 %s p99 %s", s.P50, s.P99)
	}
	// The tallest bar fills the chart; parts stack without overlapping.
	if last.HA+last.HD != chartH || last.YD+last.HD != last.YA {
		t.Errorf("geometry %+v", last)
	}
}
