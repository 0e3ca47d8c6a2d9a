package audit

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"
)

// Event times are written by a formatter of their own: byte for byte what the layout
// gives, for any time (other zones, leap days, the ends of the years it covers).
func TestAppendTimeMatchesLayout(t *testing.T) {
	zone := time.FixedZone("x", -(9*3600 + 30*60))
	times := []time.Time{
		time.Unix(0, 0), time.Date(2026, 12, 3, 13, 24, 29, 123456789, time.UTC),
		time.Date(2024, 2, 29, 23, 59, 59, 999999999, zone), time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 1, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 6, 1, 0, 0, 0, 0, time.UTC), time.Date(1999, 12, 31, 23, 0, 0, 0, zone),
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		times = append(times, time.Unix(r.Int64N(300000000000)-10000000000, r.Int64N(1e9)).In(zone))
	}
	for _, tm := range times {
		want := tm.UTC().AppendFormat([]byte("x"), timeLayout)
		if got := appendTime([]byte("x"), tm); !bytes.Equal(got, want) {
			t.Fatalf("appendTime(%v) = %s, want %s", tm, got, want)
		}
	}
}
