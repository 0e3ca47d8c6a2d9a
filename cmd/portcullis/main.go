// Command portcullis is a security gateway for the Model Context Protocol.
package main

import (
	"os"
	"runtime"

	"github.com/portcullis-mcp/portcullis/internal/cli"
)

// Heap profiling is off unless serve --pprof turns it on: nothing reads it otherwise. A
// rate set with GODEBUG=memprofilerate=N is kept.
func init() {
	if runtime.MemProfileRate == 512<<10 {
		runtime.MemProfileRate = 0
	}
}

func main() { os.Exit(cli.Main(os.Args[1:])) }
