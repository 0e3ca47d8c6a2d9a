package metrics

import (
	"bytes"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func TestExposition(t *testing.T) {
	r := NewRegistry()
	c := r.NewCounterVec("x_calls_total", "Calls.", "server", "tool")
	h := r.NewHistogramVec("x_seconds", "Latency.", []float64{0.1, 1}, "server")
	c.Inc("fs", `we"ird`)
	c.Add(2, "fs", "read")
	h.Observe(0.05, "fs")
	h.Observe(0.5, "fs")
	h.Observe(5, "fs")
	r.OnScrape(func(w io.Writer) { Gauge(w, "x_queue_bytes", 12, "sink", "webhook") })
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	want := `# HELP x_calls_total Calls.
# TYPE x_calls_total counter
x_calls_total{server="fs",tool="read"} 2
x_calls_total{server="fs",tool="we\"ird"} 1
# HELP x_seconds Latency.
# TYPE x_seconds histogram
x_seconds_bucket{server="fs",le="0.1"} 1
x_seconds_bucket{server="fs",le="1"} 2
x_seconds_bucket{server="fs",le="+Inf"} 3
x_seconds_sum{server="fs"} 5.55
x_seconds_count{server="fs"} 3
x_queue_bytes{sink="webhook"} 12
`
	if got := rec.Body.String(); got != want {
		t.Errorf("exposition:\n%s\nwant:\n%s", got, want)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("content type %q", ct)
	}
}

func TestCardinalityBound(t *testing.T) {
	r := NewRegistry()
	c := r.NewCounterVec("y_total", "Y.", "tool")
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range MaxSeries {
				c.Inc(fmt.Sprint(g, "-", i))
			}
		}()
	}
	wg.Wait()
	var b bytes.Buffer
	r.Write(&b)
	if n := strings.Count(b.String(), "\ny_total{"); n > MaxSeries+1 {
		t.Errorf("%d series", n)
	}
	if c.Value("other") == 0 {
		t.Errorf("nothing counted as other")
	}
}
