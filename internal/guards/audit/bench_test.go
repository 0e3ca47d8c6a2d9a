package audit_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	trail "github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/guard"
	auditguard "github.com/portcullis-mcp/portcullis/internal/guards/audit"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
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
