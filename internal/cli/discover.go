package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/portcullis-mcp/portcullis/internal/clientconfig"
	"github.com/portcullis-mcp/portcullis/internal/discover"
)

func init() {
	register("discover", "discover [--config FILE] [--project DIR] [--file F] [--no-probe] [--ports P,..] [--format text|json]   find every MCP server on this machine, and Shadow MCP", discoverCmd)
}

func parsePorts(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 1 || a > 65535 {
			return nil, fmt.Errorf("bad port %q", part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a || b > 65535 {
				return nil, fmt.Errorf("bad port range %q", part)
			}
		}
		for p := a; p <= b; p++ {
			out = append(out, p)
		}
	}
	return out, nil
}

// registryPaths are the gateway configurations whose servers make the registry: --config
// when given, else the one wrap maintains.
func registryPaths(flagValue string) []string {
	if flagValue != "" {
		return []string{flagValue}
	}
	return []string{defaultWrapConfig()}
}

func discoverCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("discover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "gateway configuration whose servers are the registry (default "+defaultWrapConfig()+")")
	var projects, files multiFlag
	fs.Var(&projects, "project", "a project directory whose project-level client files are read too (repeatable; default: the current directory)")
	fs.Var(&files, "file", "another client configuration file (repeatable)")
	noProbe := fs.Bool("no-probe", false, "do not probe loopback ports for MCP endpoints")
	ports := fs.String("ports", "", "probe these ports (e.g. 3000,8000-8100) instead of every listening loopback port")
	format := fs.String("format", "text", "text or json")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *format != "text" && *format != "json" {
		fmt.Fprintln(stderr, "portcullis discover: --format is text or json")
		return 2
	}
	reg, err := discover.LoadRegistry(registryPaths(*cfgPath)...)
	if err != nil {
		fmt.Fprintln(stderr, "portcullis discover:", err)
		return 1
	}
	opts := discover.Options{Env: clientconfig.HostEnv(runtime.GOOS), Registry: reg, Probe: !*noProbe}
	if len(projects) == 0 {
		if wd, err := os.Getwd(); err == nil {
			projects = append(projects, wd)
		}
	}
	for _, p := range projects {
		abs, _ := filepath.Abs(p)
		opts.Projects = append(opts.Projects, abs)
	}
	for _, f := range files {
		abs, _ := filepath.Abs(f)
		opts.Files = append(opts.Files, abs)
	}
	if *ports != "" {
		if opts.Ports, err = parsePorts(*ports); err != nil {
			fmt.Fprintln(stderr, "portcullis discover:", err)
			return 2
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := discover.Run(ctx, opts)
	if err != nil {
		fmt.Fprintln(stderr, "portcullis discover:", err)
		return 1
	}
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
		return 0
	}
	writeDiscovery(stdout, res)
	return 0
}

func writeDiscovery(w io.Writer, res *discover.Result) {
	shadow := 0
	for _, s := range res.Servers {
		if s.Shadow() {
			shadow++
		}
	}
	unlisted := 0
	for _, e := range res.Endpoints {
		if !e.Mentioned {
			unlisted++
		}
	}
	fmt.Fprintf(w, "%d configured servers (%d Shadow MCP: not in the registry); %d MCP endpoints on loopback (%d in no configuration)\n\n",
		len(res.Servers), shadow, len(res.Endpoints), unlisted)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STATUS\tCLIENT\tSCOPE\tSERVER\tCOMMAND OR URL\tENV\tFILE")
	for _, s := range res.Servers {
		status := "registered"
		switch {
		case s.Wrapped && s.Registered:
			status = "wrapped"
		case s.Shadow():
			status = "SHADOW"
		}
		if s.Disabled {
			status += " (disabled)"
		}
		target := s.URL
		if len(s.Command) > 0 {
			target = strings.Join(s.Command, " ")
		}
		if len(target) > 70 {
			target = target[:67] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s:%d\n", status, s.Client, s.Scope, s.Name, target, strings.Join(s.EnvNames, ","), s.File, s.Line)
	}
	tw.Flush()
	if len(res.Endpoints) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "STATUS\tENDPOINT\tTRANSPORT\tSERVER\tPROCESS")
		for _, e := range res.Endpoints {
			status := "configured"
			if !e.Mentioned {
				status = "UNLISTED"
			}
			info := e.ServerInfo
			if e.Auth {
				info = "(authentication required)"
			}
			proc := ""
			if e.PID > 0 {
				proc = fmt.Sprintf("%s (pid %d)", e.Process, e.PID)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", status, e.URL, e.Transport, info, proc)
		}
		tw.Flush()
	}
	for _, p := range res.Problems {
		fmt.Fprintf(w, "\nproblem: %s: %s\n", p.File, p.Err)
	}
}
