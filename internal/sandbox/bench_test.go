package sandbox

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// echoServer answers each line of stdin with the same line, as a stdio MCP server
// answers each request with one response.
func echoServer() {
	in := bufio.NewReader(os.Stdin)
	for {
		l, err := in.ReadBytes('\n')
		if err != nil {
			return
		}
		os.Stdout.Write(l)
	}
}

type echoProc struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

// launcher is the portcullis binary the benchmarks start servers with: its start-up (all
// of the gateway's package initialization, twice) is what a real server pays.
var launcher = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "portcullis-bench-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "portcullis")
	cmd := exec.Command("go", "build", "-o", bin, "../../cmd/portcullis")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v\n%s", err, out)
	}
	return bin, nil
})

func startEcho(b *testing.B, sandboxed bool) *echoProc {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe, "echo-server")
	if sandboxed {
		bin, err := launcher()
		if err != nil {
			b.Fatal(err)
		}
		if err := Wrap(Options{Name: "bench", Require: All, Launcher: bin, Logger: slog.New(slog.DiscardHandler)})(cmd); err != nil {
			b.Fatal(err)
		}
	}
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	return &echoProc{cmd: cmd, in: in, out: bufio.NewReader(out)}
}

var request = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"` + strings.Repeat("x", 200) + `"}}}` + "\n"

func (p *echoProc) roundTrip(b *testing.B) {
	if _, err := io.WriteString(p.in, request); err != nil {
		b.Fatal(err)
	}
	if _, err := p.out.ReadString('\n'); err != nil {
		b.Fatal(err)
	}
}

func (p *echoProc) stop() {
	p.in.Close()
	p.cmd.Wait()
}

// BenchmarkStart measures starting a server and its first answer, directly and in the
// sandbox: the difference is the sandbox's start-up cost.
func BenchmarkStart(b *testing.B) {
	for _, sandboxed := range []bool{false, true} {
		name := map[bool]string{false: "direct", true: "sandboxed"}[sandboxed]
		b.Run(name, func(b *testing.B) {
			if sandboxed && len(Probe().Missing(All)) > 0 {
				b.Skip("this kernel lacks a protection")
			}
			for b.Loop() {
				p := startEcho(b, sandboxed)
				p.roundTrip(b)
				p.stop()
			}
		})
	}
}

// BenchmarkCall measures one request and response over the server's stdio, directly
// and in the sandbox: the difference is the sandbox's cost per call.
func BenchmarkCall(b *testing.B) {
	for _, sandboxed := range []bool{false, true} {
		name := map[bool]string{false: "direct", true: "sandboxed"}[sandboxed]
		b.Run(name, func(b *testing.B) {
			if sandboxed && len(Probe().Missing(All)) > 0 {
				b.Skip("this kernel lacks a protection")
			}
			p := startEcho(b, sandboxed)
			defer p.stop()
			p.roundTrip(b)
			for b.Loop() {
				p.roundTrip(b)
			}
		})
	}
}
