package h1server

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
)

func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkServe compares a keep-alive POST /mcp round trip served by the fast path and
// by net/http (the fallback), with a handler that reads the body and answers 200 bytes.
// The client is the same raw keep-alive connection in both, so the difference is the
// server's. Server CPU per request: go test -bench Serve -benchtime 20000x -cpuprofile.
func BenchmarkServe(b *testing.B) {
	reply := make([]byte, 200)
	handler := func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(reply)
	}
	req := []byte(post(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}`,
		"Accept: application/json, text/event-stream", "Content-Type: application/json",
		"Mcp-Session-Id: 0123456789abcdef", "Mcp-Protocol-Version: 2025-11-25"))
	for _, path := range []string{"fast", "std"} {
		b.Run(path, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			std := &http.Server{Handler: http.HandlerFunc(handler)}
			if path == "fast" {
				s := &Server{Handler: http.HandlerFunc(handler), Fallback: std, Target: "/mcp"}
				go s.Serve(ln)
				defer s.Close()
			} else {
				go std.Serve(ln)
				defer std.Close()
			}
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReader(c)
			b.ReportAllocs()
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			b.StopTimer()
			// Process CPU (client and server) per round trip: steadier than wall time on
			// a shared machine.
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}
