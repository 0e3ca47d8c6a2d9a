package audit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	trail "github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/guard"
	auditguard "github.com/portcullis-mcp/portcullis/internal/guards/audit"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
	"github.com/portcullis-mcp/portcullis/internal/store/sqlite"
)

// BenchmarkAuditJSONL is the guard's cost per call (two events) with the JSONL file sink,
// called from many goroutines as a gateway is: batches amortize the fsync.
func BenchmarkAuditJSONL(b *testing.B) {
	for _, bc := range []struct {
		name   string
		noSync bool
	}{{"fsync", false}, {"nosync", true}} {
		b.Run(bc.name, func(b *testing.B) {
			f, err := trail.OpenFile(trail.FileOptions{Path: filepath.Join(b.TempDir(), "audit.jsonl"), RotateBytes: 64 << 20, NoSync: bc.noSync})
			if err != nil {
				b.Fatal(err)
			}
			br, err := trail.NewBroker([]trail.Sink{f}, trail.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer br.Close()
			result := json.RawMessage(`{"content":[{"type":"text","text":"hello world"}]}`)
			h := auditguard.New(br, auditguard.Options{})(guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
				return &jsonrpc.Message{ID: c.Msg.ID, Result: result}, nil
			}))
			b.SetParallelism(16) // 16 x GOMAXPROCS callers in flight
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				c := call(`{"path":"/workspace/README.md","limit":100}`)
				for pb.Next() {
					if _, err := h.Handle(context.Background(), c); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkAuditSerial is one caller at a time: every call waits for its own fsyncs.
func BenchmarkAuditSerial(b *testing.B) {
	f, err := trail.OpenFile(trail.FileOptions{Path: filepath.Join(b.TempDir(), "audit.jsonl")})
	if err != nil {
		b.Fatal(err)
	}
	br, err := trail.NewBroker([]trail.Sink{f}, trail.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	h := auditguard.New(br, auditguard.Options{})(guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
		return &jsonrpc.Message{ID: c.Msg.ID, Result: json.RawMessage(`{}`)}, nil
	}))
	c := call(`{"a":1}`)
	b.ReportAllocs()
	for b.Loop() {
		h.Handle(context.Background(), c)
	}
}

// BenchmarkAuditStore is the guard's cost per call (two events) with the SQLite store
// sink (the default), with its journal (the default) and without (a transaction per
// batch), from one caller per CPU and from 16: it reports the process's CPU time per call,
// which is what a gateway sharing its machine pays.
func BenchmarkAuditStore(b *testing.B) {
	for _, journal := range []bool{true, false} {
		for _, par := range []int{1, 16} {
			b.Run(fmt.Sprintf("journal=%v/callers=%dxGOMAXPROCS", journal, par), func(b *testing.B) {
				dir := b.TempDir()
				st, err := sqlite.Open(context.Background(), filepath.Join(dir, "p.db"))
				if err != nil {
					b.Fatal(err)
				}
				defer st.Close()
				var s *trail.StoreSink
				if journal {
					s, err = trail.OpenStoreJournal(context.Background(), st, "bench", trail.JournalOptions{Path: filepath.Join(dir, "j")})
				} else {
					s, err = trail.OpenStore(context.Background(), st, "bench")
				}
				if err != nil {
					b.Fatal(err)
				}
				br, err := trail.NewBroker([]trail.Sink{s}, trail.Options{})
				if err != nil {
					b.Fatal(err)
				}
				defer br.Close()
				result := json.RawMessage(`{"content":[{"type":"text","text":"hello world"}]}`)
				h := auditguard.New(br, auditguard.Options{})(guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
					return &jsonrpc.Message{ID: c.Msg.ID, Result: result}, nil
				}))
				b.SetParallelism(par)
				b.ReportAllocs()
				cpu0 := cpuTime()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					c := call(`{"path":"/workspace/README.md","limit":100}`)
					for pb.Next() {
						if _, err := h.Handle(context.Background(), c); err != nil {
							b.Error(err)
							return
						}
					}
				})
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				s.Flush(ctx) // the journal's moves are part of the cost
				b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/call")
			})
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
