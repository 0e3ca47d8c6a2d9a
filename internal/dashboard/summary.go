package dashboard

import (
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/pins"
	"github.com/portcullis-mcp/portcullis/internal/store"
)

// Summary is the summary page's figures over the last 24 hours of this store's trail.
type Summary struct {
	Calls, Allowed, Denied, Failed int
	Findings                       int
	PendingApprovals               int
	BlockedPins                    int
	P50, P95, P99                  string // latency of answered calls
	Hours                          []Bar  // calls per hour, by decision
	Latency                        []Bar  // answered calls per latency bucket
	Max, LatMax                    int
	Truncated                      bool // more events than were read
}

// Bar is one bar of a chart, with its geometry computed here: the chart is plain SVG,
// drawn on the server.
type Bar struct {
	Label                  string
	Allowed, Denied, Fail  int
	Total                  int
	X                      int
	YA, HA, YD, HD, YF, HF int // allowed, denied, failed: y and height of each part
	LabelX                 int
	ShowLabel              bool
}

const (
	chartH     = 160
	summaryN   = 10000
	barW       = 24
	barGap     = 6
	latBuckets = 8
	latStep    = 64
)

var latencyEdges = []time.Duration{time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond, 100 * time.Millisecond,
	500 * time.Millisecond, 2 * time.Second, 10 * time.Second}
var latencyLabels = []string{"<1ms", "<5ms", "<20ms", "<100ms", "<500ms", "<2s", "<10s", "≥10s"}

// point is what the summary reads of an event: a light decoding of the stored line.
type point struct {
	Time          time.Time  `json:"time"`
	Kind          string     `json:"kind"`
	Decision      string     `json:"decision"`
	LatencyMicros int64      `json:"latency_us"`
	Findings      []struct{} `json:"findings"`
}

func (p *point) Latency() time.Duration { return time.Duration(p.LatencyMicros) * time.Microsecond }

// pointsOf decodes stored events for the summary (an unreadable line is left out; the
// audit view shows it).
func pointsOf(recs []store.AuditRecord) []point {
	out := make([]point, 0, len(recs))
	for _, rc := range recs {
		var p point
		if json.Unmarshal(rc.Line, &p) == nil {
			out = append(out, p)
		}
	}
	return out
}

func summarize(now time.Time, evs []point) Summary {
	var sum Summary
	start := now.Truncate(time.Hour).Add(-23 * time.Hour)
	sum.Hours = make([]Bar, 24)
	sum.Latency = make([]Bar, latBuckets)
	var lats []time.Duration
	for i := range evs {
		e := &evs[i]
		if len(e.Findings) > 0 {
			sum.Findings++
		}
		if e.Kind != audit.KindResponse {
			continue
		}
		sum.Calls++
		h := int(e.Time.Sub(start) / time.Hour)
		b := &Bar{}
		if h >= 0 && h < 24 {
			b = &sum.Hours[h]
		}
		switch e.Decision {
		case audit.Allowed:
			sum.Allowed++
			b.Allowed++
			lat := e.Latency()
			lats = append(lats, lat)
			i, _ := slices.BinarySearch(latencyEdges, lat+1)
			sum.Latency[i].Allowed++
		case audit.Denied:
			sum.Denied++
			b.Denied++
		default:
			sum.Failed++
			b.Fail++
		}
	}
	if len(lats) > 0 {
		slices.Sort(lats)
		pct := func(p float64) string {
			d := lats[min(len(lats)-1, int(p*float64(len(lats))))]
			switch {
			case d >= time.Second:
				d = d.Round(10 * time.Millisecond)
			case d >= time.Millisecond:
				d = d.Round(10 * time.Microsecond)
			}
			return d.String()
		}
		sum.P50, sum.P95, sum.P99 = pct(0.50), pct(0.95), pct(0.99)
	}
	sum.Max = layout(sum.Hours, func(i int) string { return start.Add(time.Duration(i) * time.Hour).Format("15h") }, 3, barW+barGap)
	sum.LatMax = layout(sum.Latency, func(i int) string { return latencyLabels[i] }, 1, latStep)
	return sum
}

// layout computes the bars' geometry, scaled to the tallest; it returns the tallest total.
func layout(bars []Bar, label func(int) string, every, step int) int {
	top := 1
	for i := range bars {
		b := &bars[i]
		b.Total = b.Allowed + b.Denied + b.Fail
		top = max(top, b.Total)
	}
	for i := range bars {
		b := &bars[i]
		b.Label = label(i)
		b.ShowLabel = i%every == 0
		b.X = 40 + i*step
		b.LabelX = b.X + barW/2
		base, acc, y := 10+chartH, 0, 10+chartH
		part := func(n int) (int, int) { // cumulative, so the stack's height is exact
			acc += n
			yt := base - acc*chartH/top
			if n > 0 && yt == y {
				yt--
			}
			h := y - yt
			y = yt
			return yt, h
		}
		b.YA, b.HA = part(b.Allowed)
		b.YD, b.HD = part(b.Denied)
		b.YF, b.HF = part(b.Fail)
	}
	return top
}

func (s *Server) summary(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	now := s.o.Now()
	recs, err := s.o.Store.SearchAudit(ctx, store.AuditQuery{Since: now.Truncate(time.Hour).Add(-23 * time.Hour), Limit: summaryN})
	if err != nil {
		s.fail(w, "reading the audit trail", err)
		return
	}
	sum := summarize(now, pointsOf(recs))
	sum.Truncated = len(recs) == summaryN
	pending, err := s.o.Store.ListApprovals(ctx, store.ApprovalPending, 0)
	if err != nil {
		s.fail(w, "reading approvals", err)
		return
	}
	sum.PendingApprovals = len(pending)
	es, err := pins.List(ctx, s.o.Store, "")
	if err != nil {
		s.fail(w, "reading pins", err)
		return
	}
	for _, e := range es {
		if e.Blocked() {
			sum.BlockedPins++
		}
	}
	s.render(w, r, "summary", map[string]any{"S": sum, "ChartW": 40 + 24*(barW+barGap), "LatW": 40 + latBuckets*latStep, "ChartH": chartH + 40})
}
