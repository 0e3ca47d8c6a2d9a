// Package cli implements the portcullis command line, one file per command.
package cli

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"sort"
	"strings"

	"github.com/portcullis-mcp/portcullis/internal/config"
)

// Version is set at build time with -ldflags "-X ...cli.Version=v1.2.3".
var Version = ""

type command struct {
	usage string
	run   func(args []string, stdout, stderr io.Writer) int
}

var commands = map[string]command{}

// hidden are commands the gateway runs itself (the sandbox launcher), not in the usage.
var hidden = map[string]func(args []string) int{}

func register(name, usage string, run func(args []string, stdout, stderr io.Writer) int) {
	commands[name] = command{usage: usage, run: run}
}

// Main runs the command line and returns the exit code.
func Main(args []string) int { return run(args, os.Stdout, os.Stderr) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if h, ok := hidden[args[0]]; ok {
		return h(args[1:])
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "portcullis: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	return c.run(args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "portcullis: a security gateway for the Model Context Protocol\n\nUsage:")
	var names []string
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  portcullis %s\n", commands[n].usage)
	}
}

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	switch strings.ToLower(cfg.Log.Level) {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func init() {
	register("version", "version", func(args []string, stdout, stderr io.Writer) int {
		fmt.Fprintf(stdout, "portcullis %s\n", version())
		return 0
	})
}
