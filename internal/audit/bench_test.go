package audit_test

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/store/sqlite"
)

// BenchmarkRecordStore is the audit path of one event into SQLite, as a gateway's calls
// take it: the event built (as the audit guard builds a response), sealed into the chain
// (one encoding, one SHA-256), appended to the store journal, and moved into the store in
// batched transactions (the last batch inside the measured time). Per event: ns/op, allocs
// and the process's CPU time (cpu-µs/event), the mover included.
func BenchmarkRecordStore(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "p.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	s, err := audit.OpenStoreJournal(ctx, st, "bench", audit.JournalOptions{Path: filepath.Join(dir, "j")})
	if err != nil {
		b.Fatal(err)
	}
	br, err := audit.NewBroker([]audit.Sink{s}, audit.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		e := &audit.Event{Code: audit.CodeAllowed, Kind: audit.KindResponse, Direction: "inbound", Decision: audit.Allowed,
			Principal: "alice", AuthMethod: "api_key", Session: "I2_tmyx-2Hx-tXdIlX6nYg", Server: "everything",
			Method: "tools/call", Tool: "test_simple_text", RequestID: "312", Call: "d1c24e62f53d0e5320b37f7d02637a08",
			LatencyMicros: 812, ResultHMAC: "hmac-sha256:7e3310a2c2748acfac2951061428499bb709a0215c6f47fb6dc80b2a54bc8f0b"}
		if err := br.Record(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
	fctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := s.Flush(fctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/1e3/float64(b.N), "cpu-µs/event")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
