// Command portcullis is a security gateway for the Model Context Protocol.
package main

import (
	"os"

	"github.com/portcullis-mcp/portcullis/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:])) }
