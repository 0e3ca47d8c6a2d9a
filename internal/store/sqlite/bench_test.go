package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/store"
)

// BenchmarkAppendAudit is the audit trail's insert alone: transactions of 100, 400 and
// 1600 events (a gateway at 1000 calls/s moves 2000 events a second from its journal,
// 400 per transaction at the journal's default interval), each a real 690-byte response
// line, four principals. It reports the process's CPU time per row (cpu-µs/row): the
// inserts, the commits and the WAL checkpoints.
func BenchmarkAppendAudit(b *testing.B) {
	line := []byte(`{"time":"2026-12-03T11:19:33.123456789Z","seq":123456,"id":"d1c24e62f53d0e5320b37f7d02637a08","code":"PC1002I","kind":"response","direction":"inbound","decision":"allowed","principal":"alice","auth_method":"api_key","session":"I2_tmyx-2Hx-tXdIlX6nYg","server":"everything","method":"tools/call","tool":"test_simple_text","request_id":"312","call":"d1c24e62f53d0e5320b37f7d02637a08","latency_us":812,"result_hmac":"hmac-sha256:7e3310a2c2748acfac2951061428499bb709a0215c6f47fb6dc80b2a54bc8f0b","prev":"7e3310a2c2748acfac2951061428499bb709a0215c6f47fb6dc80b2a54bc8f0b","hash":"7e3310a2c2748acfac2951061428499bb709a0215c6f47fb6dc80b2a54bc8f0b"}`)
	principals := []string{"alice", "bob", "carol", "dave"}
	for _, batch := range []int{100, 400, 1600} {
		b.Run(fmt.Sprintf("rows=%d", batch), func(b *testing.B) {
			ctx := context.Background()
			s, err := Open(ctx, filepath.Join(b.TempDir(), "p.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			recs := make([]store.AuditRecord, batch)
			hashes := make([]string, 2*batch)
			for i := range hashes {
				hashes[i] = fmt.Sprintf("%064x", i)
			}
			prev, seq := "genesis", uint64(0)
			t0 := time.Now()
			cpu0 := cpuTime()
			b.ResetTimer()
			for n := 0; n < b.N; n += batch {
				for j := range recs {
					seq++
					h := hashes[seq%uint64(len(hashes))]
					recs[j] = store.AuditRecord{Chain: "bench", Seq: seq, Time: t0.Add(time.Duration(seq) * time.Microsecond),
						Code: "PC1002I", Principal: principals[seq%4], Server: "everything", Method: "tools/call",
						Tool: "test_simple_text", Decision: "allowed", Prev: prev, Hash: h, Line: line}
					prev = h
				}
				if err := s.AppendAudit(ctx, recs); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/1e3/float64(seq), "cpu-µs/row")
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
