// Package metrics keeps the gateway's counters and histograms and writes them in the
// Prometheus text exposition format (version 0.0.4) for /metrics.
//
// It is written by hand rather than with client_golang: the gateway needs a handful of
// counter and histogram families with fixed label names, and the exposition format is
// small and stable; this keeps the binary and its dependency tree small.
//
// Label values come from clients (tool names) and servers; each family holds at most
// MaxSeries label sets, and further ones are counted under the value "other".
package metrics

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// MaxSeries bounds the label sets of one family.
const MaxSeries = 2000

// Registry holds metric families.
type Registry struct {
	mu       sync.Mutex
	families []family
	collect  []func(w io.Writer)
}

type family interface {
	name() string
	write(w io.Writer)
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{} }

// Default is the registry the gateway's metrics live in.
var Default = NewRegistry()

func (r *Registry) add(f family) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.families = append(r.families, f)
}

// OnScrape registers fn, which writes metrics of its own (in the exposition format) on
// every scrape, after the registered families.
func (r *Registry) OnScrape(fn func(w io.Writer)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.collect = append(r.collect, fn)
}

// Write writes every family.
func (r *Registry) Write(w io.Writer) {
	r.mu.Lock()
	fams := slices.Clone(r.families)
	collect := slices.Clone(r.collect)
	r.mu.Unlock()
	slices.SortFunc(fams, func(a, b family) int { return strings.Compare(a.name(), b.name()) })
	for _, f := range fams {
		f.write(w)
	}
	for _, fn := range collect {
		fn(w)
	}
}

// Handler serves the registry.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		r.Write(w)
	})
}

// Handler serves Default.
func Handler() http.Handler { return Default.Handler() }

type vec[T any] struct {
	n, help, typ string
	labels       []string
	mu           sync.RWMutex
	series       map[string]*T
	keys         map[string][]string
	mk           func() *T
}

func newVec[T any](n, help, typ string, labels []string, mk func() *T) *vec[T] {
	return &vec[T]{n: n, help: help, typ: typ, labels: labels, series: map[string]*T{}, keys: map[string][]string{}, mk: mk}
}

func (v *vec[T]) name() string { return v.n }

func (v *vec[T]) get(values []string) *T {
	if len(values) != len(v.labels) {
		panic(fmt.Sprintf("metrics: %s takes %d labels, got %d", v.n, len(v.labels), len(values)))
	}
	key := strings.Join(values, "\xff")
	v.mu.RLock()
	s := v.series[key]
	v.mu.RUnlock()
	if s != nil {
		return s
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if s = v.series[key]; s != nil {
		return s
	}
	if len(v.series) >= MaxSeries {
		values = slices.Repeat([]string{"other"}, len(values))
		key = strings.Join(values, "\xff")
		if s = v.series[key]; s != nil {
			return s
		}
	}
	s = v.mk()
	v.series[key] = s
	v.keys[key] = slices.Clone(values)
	return s
}

func (v *vec[T]) each(fn func(labels string, s *T)) {
	v.mu.RLock()
	keys := make([]string, 0, len(v.series))
	for k := range v.series {
		keys = append(keys, k)
	}
	v.mu.RUnlock()
	slices.Sort(keys)
	for _, k := range keys {
		v.mu.RLock()
		s, vals := v.series[k], v.keys[k]
		v.mu.RUnlock()
		fn(labelString(v.labels, vals, "", ""), s)
	}
}

func (v *vec[T]) header(w io.Writer) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", v.n, v.help, v.n, v.typ)
}

var labelEscape = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)

func labelString(names, values []string, extraName, extraValue string) string {
	if len(names) == 0 && extraName == "" {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n)
		b.WriteString(`="`)
		b.WriteString(labelEscape.Replace(values[i]))
		b.WriteByte('"')
	}
	if extraName != "" {
		if len(names) > 0 {
			b.WriteByte(',')
		}
		b.WriteString(extraName)
		b.WriteString(`="`)
		b.WriteString(extraValue)
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// CounterVec is a family of counters.
type CounterVec struct{ v *vec[atomic.Uint64] }

// NewCounterVec registers a counter family in r.
func (r *Registry) NewCounterVec(name, help string, labels ...string) *CounterVec {
	c := &CounterVec{newVec(name, help, "counter", labels, func() *atomic.Uint64 { return new(atomic.Uint64) })}
	r.add(c)
	return c
}

func (c *CounterVec) name() string { return c.v.n }

// Inc adds one to the counter with these label values.
func (c *CounterVec) Inc(values ...string) { c.v.get(values).Add(1) }

// Add adds n.
func (c *CounterVec) Add(n uint64, values ...string) { c.v.get(values).Add(n) }

// Value returns the counter's value (tests).
func (c *CounterVec) Value(values ...string) uint64 { return c.v.get(values).Load() }

func (c *CounterVec) write(w io.Writer) {
	c.v.header(w)
	c.v.each(func(labels string, s *atomic.Uint64) {
		fmt.Fprintf(w, "%s%s %d\n", c.v.n, labels, s.Load())
	})
}

// DefaultBuckets suit call latencies in seconds, from 1 ms to a minute.
var DefaultBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

type histogram struct {
	mu      sync.Mutex
	buckets []float64
	counts  []uint64
	count   uint64
	sum     float64
}

// HistogramVec is a family of histograms.
type HistogramVec struct {
	v       *vec[histogram]
	buckets []float64
}

// NewHistogramVec registers a histogram family in r.
func (r *Registry) NewHistogramVec(name, help string, buckets []float64, labels ...string) *HistogramVec {
	h := &HistogramVec{buckets: buckets}
	h.v = newVec(name, help, "histogram", labels, func() *histogram {
		return &histogram{buckets: buckets, counts: make([]uint64, len(buckets))}
	})
	r.add(h)
	return h
}

func (h *HistogramVec) name() string { return h.v.n }

// Observe records one value.
func (h *HistogramVec) Observe(x float64, values ...string) {
	s := h.v.get(values)
	i, _ := slices.BinarySearch(s.buckets, x)
	s.mu.Lock()
	if i < len(s.counts) {
		s.counts[i]++
	}
	s.count++
	s.sum += x
	s.mu.Unlock()
}

// Count returns how many values were observed (tests).
func (h *HistogramVec) Count(values ...string) uint64 {
	s := h.v.get(values)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

func (h *HistogramVec) write(w io.Writer) {
	h.v.header(w)
	h.v.mu.RLock()
	keys := make([]string, 0, len(h.v.series))
	for k := range h.v.series {
		keys = append(keys, k)
	}
	h.v.mu.RUnlock()
	slices.Sort(keys)
	for _, k := range keys {
		h.v.mu.RLock()
		s, vals := h.v.series[k], h.v.keys[k]
		h.v.mu.RUnlock()
		s.mu.Lock()
		counts, count, sum := slices.Clone(s.counts), s.count, s.sum
		s.mu.Unlock()
		var cum uint64
		for i, b := range s.buckets {
			cum += counts[i]
			fmt.Fprintf(w, "%s_bucket%s %d\n", h.v.n, labelString(h.v.labels, vals, "le", formatFloat(b)), cum)
		}
		fmt.Fprintf(w, "%s_bucket%s %d\n", h.v.n, labelString(h.v.labels, vals, "le", "+Inf"), count)
		ls := labelString(h.v.labels, vals, "", "")
		fmt.Fprintf(w, "%s_sum%s %s\n%s_count%s %d\n", h.v.n, ls, formatFloat(sum), h.v.n, ls, count)
	}
}

func formatFloat(f float64) string {
	if math.IsInf(f, 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// Gauge writes one gauge sample line (for OnScrape collectors).
func Gauge(w io.Writer, name string, value float64, labels ...string) {
	var names, values []string
	for i := 0; i+1 < len(labels); i += 2 {
		names = append(names, labels[i])
		values = append(values, labels[i+1])
	}
	fmt.Fprintf(w, "%s%s %s\n", name, labelString(names, values, "", ""), formatFloat(value))
}

// The gateway's metrics.
var (
	Calls = Default.NewCounterVec("portcullis_calls_total",
		"Requests through the gateway by direction, server, method and decision (allowed, denied, failed).",
		"direction", "server", "method", "decision")
	Refusals = Default.NewCounterVec("portcullis_refusals_total",
		"Requests refused, by the guard that refused them and the JSON-RPC error code.", "guard", "code")
	Latency = Default.NewHistogramVec("portcullis_call_duration_seconds",
		"Time from receiving a request to releasing its answer, by server and tool.", DefaultBuckets, "server", "tool")
	UpstreamErrors = Default.NewCounterVec("portcullis_upstream_errors_total",
		"Requests a server could not answer (unreachable, timed out, crashed), by server and error code.", "server", "code")
	Findings = Default.NewCounterVec("portcullis_findings_total",
		"Detector findings by detector and severity.", "detector", "severity")
	AuditEvents = Default.NewCounterVec("portcullis_audit_events_total",
		"Audit events by result: recorded, or refused because no sink recorded them.", "result")
)
