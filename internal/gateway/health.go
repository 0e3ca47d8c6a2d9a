package gateway

import (
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/metrics"
)

// health is what the gateway last saw of each server: whether the last start or call
// reached it, and when it last did. /metrics reports it (portcullis_upstream_up).
var health struct {
	servers sync.Map // name -> *serverHealth
	once    sync.Once
}

type serverHealth struct {
	up       atomic.Bool
	lastOK   atomic.Int64 // unix nanoseconds of the last success
	failures atomic.Uint64
}

func healthOf(server string) *serverHealth {
	if h, ok := health.servers.Load(server); ok {
		return h.(*serverHealth)
	}
	health.once.Do(func() { metrics.Default.OnScrape(writeHealth) })
	h, _ := health.servers.LoadOrStore(server, &serverHealth{})
	return h.(*serverHealth)
}

// reached records that server answered (a handshake or a call, even with an error of its own).
func reached(server string) {
	h := healthOf(server)
	h.up.Store(true)
	h.lastOK.Store(time.Now().UnixNano())
}

// unreachable records that server could not be reached or did not answer in time.
func unreachable(server string) {
	h := healthOf(server)
	h.up.Store(false)
	h.failures.Add(1)
}

func writeHealth(w io.Writer) {
	var names []string
	health.servers.Range(func(k, _ any) bool { names = append(names, k.(string)); return true })
	slices.Sort(names)
	hs := make([]*serverHealth, len(names))
	for i, n := range names {
		hs[i] = healthOf(n)
	}
	if len(names) == 0 {
		return
	}
	io.WriteString(w, "# HELP portcullis_upstream_up Whether the last handshake or call reached the server (1) or not (0).\n# TYPE portcullis_upstream_up gauge\n")
	for i, n := range names {
		v := 0.0
		if hs[i].up.Load() {
			v = 1
		}
		metrics.Gauge(w, "portcullis_upstream_up", v, "server", n)
	}
	io.WriteString(w, "# HELP portcullis_upstream_last_success_timestamp_seconds When the server last answered (Unix time; 0: never).\n# TYPE portcullis_upstream_last_success_timestamp_seconds gauge\n")
	for i, n := range names {
		metrics.Gauge(w, "portcullis_upstream_last_success_timestamp_seconds", float64(hs[i].lastOK.Load())/1e9, "server", n)
	}
	io.WriteString(w, "# HELP portcullis_upstream_unreachable_total Handshakes and calls that did not reach the server or timed out.\n# TYPE portcullis_upstream_unreachable_total counter\n")
	for i, n := range names {
		metrics.Gauge(w, "portcullis_upstream_unreachable_total", float64(hs[i].failures.Load()), "server", n)
	}
}
