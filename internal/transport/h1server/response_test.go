package h1server

import (
	"net/http"
	"testing"
	"time"
)

func TestAppendDate(t *testing.T) {
	base := time.Date(2026, 12, 3, 16, 4, 5, 0, time.FixedZone("CET", 3600))
	for _, now := range []time.Time{
		base,
		base.Add(999 * time.Millisecond), // same second: the cached value
		base.Add(time.Second),            // the next one
		base.Add(-time.Hour),             // a clock set back
	} {
		got := string(appendDate([]byte("Date: "), now))
		if want := "Date: " + now.UTC().Format(http.TimeFormat); got != want {
			t.Errorf("appendDate at %v = %q; want %q", now, got, want)
		}
	}
}
