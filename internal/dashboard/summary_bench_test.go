package dashboard

import (
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/store"
)

// BenchmarkSummaryPage measures what the summary page does with a full window: parse
// 10000 stored events and compute the figures and the charts.
func BenchmarkSummaryPage(b *testing.B) {
	now := time.Now()
	var recs []store.AuditRecord
	var pos audit.Position
	var buf []byte
	for i := range summaryN {
		e := &audit.Event{ID: audit.NewID(), Time: now.Add(-time.Duration(i) * 8 * time.Second), Code: audit.CodeAllowed, Kind: audit.KindResponse,
			Decision: audit.Allowed, Principal: "client", Server: "fs", Method: "tools/call", Tool: "read_file", LatencyMicros: int64(i % 5000)}
		pos, buf = audit.Seal(e, pos, buf)
		recs = append(recs, store.AuditRecord{Seq: e.Seq, Time: e.Time, Code: e.Code, Line: e.AppendCanonical(nil)})
	}
	b.ReportAllocs()
	for b.Loop() {
		s := summarize(now, pointsOf(recs))
		if s.Calls != summaryN {
			b.Fatal(s.Calls)
		}
	}
}
