package cli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/portcullis-mcp/portcullis/internal/clientconfig"
	"github.com/portcullis-mcp/portcullis/internal/config"
	"github.com/portcullis-mcp/portcullis/internal/detect"
	"github.com/portcullis-mcp/portcullis/internal/discover"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
	"github.com/portcullis-mcp/portcullis/internal/sandbox"
	"github.com/portcullis-mcp/portcullis/internal/scan"
	"github.com/portcullis-mcp/portcullis/internal/store"
	"github.com/portcullis-mcp/portcullis/internal/upstream"
)

func init() {
	register("scan", "scan [PATH|URL|--all] [--active] [--static] [--format text|json|sarif] [--output F] [--fail-on high]   check MCP configurations and servers", scanCmd)
}

// storePins reads approved hashes from the store of a gateway configuration.
type storePins struct {
	st     store.Store
	byName map[store.PinKey]string
	loaded bool
}

func (p *storePins) Hash(ctx context.Context, server, kind, name string) (string, bool, error) {
	if !p.loaded {
		all, err := p.st.ListPins(ctx)
		if err != nil {
			return "", false, fmt.Errorf("reading pins: %w", err)
		}
		p.byName = map[store.PinKey]string{}
		for _, pin := range all {
			if pin.Hash != "" {
				p.byName[pin.PinKey] = pin.Hash
			}
		}
		p.loaded = true
	}
	h, ok := p.byName[store.PinKey{Server: server, Kind: kind, Name: name}]
	return h, ok, nil
}

var nameLineRE = regexp.MustCompile(`(?m)^\s*-?\s*name:\s*["']?([^"'\s#]+)`)

// configTargets reads a portcullis configuration's servers as written (no ${} expansion:
// a reference is not a secret in the file).
func configTargets(path string, data []byte) ([]scan.Target, error) {
	var c struct {
		Servers []config.Server `yaml:"servers"`
	}
	if err := yaml.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	lines := map[string]int{}
	for _, m := range nameLineRE.FindAllSubmatchIndex(data, -1) {
		name := string(data[m[2]:m[3]])
		if _, ok := lines[name]; !ok {
			lines[name] = bytes.Count(data[:m[2]], []byte("\n")) + 1
		}
	}
	var out []scan.Target
	for _, s := range c.Servers {
		e := clientconfig.Entry{Name: s.Name, Scope: "gateway", Line: lines[s.Name], Command: s.Command, Args: s.Args, Env: s.Env,
			Cwd: s.Dir, URL: s.URL, Headers: s.Headers}
		switch {
		case s.Command != "":
			e.Transport = clientconfig.Stdio
		case s.Transport == "sse":
			e.Transport = clientconfig.SSE
		default:
			e.Transport = clientconfig.HTTP
		}
		out = append(out, scan.Target{File: path, Entry: e, Registry: s.Name})
	}
	return out, nil
}

// fileTargets turns client entries into scan targets. An entry wrap rewrote to
// `portcullis run --config C NAME`, or to the endpoint of server NAME of the gateway of a
// registry configuration C, is scanned as the server NAME of C (its command or URL as
// registered), located where that server is written in C.
func fileTargets(files []*clientconfig.File, reg *discover.Registry) []scan.Target {
	var out []scan.Target
	wrapped := map[string][]scan.Target{}
	for _, f := range files {
		for _, e := range f.Entries {
			t := scan.Target{Client: f.Client.ID, File: f.Path, Entry: e}
			t.Registry, _ = reg.Lookup(e)
			cfgPath, name := "", ""
			if a := e.Args; len(a) == 4 && a[0] == "run" && a[1] == "--config" {
				cfgPath, name = a[2], a[3]
			} else if file, n, ok := reg.ViaGateway(e); ok {
				cfgPath, name = file, n // an HTTP entry pointed at the gateway's endpoint of the server
			}
			if cfgPath != "" {
				ts, ok := wrapped[cfgPath]
				if !ok {
					if data, err := os.ReadFile(cfgPath); err == nil {
						ts, _ = configTargets(cfgPath, data)
					}
					wrapped[cfgPath] = ts
				}
				for _, u := range ts {
					if u.Entry.Name == name {
						u.Client = f.Client.ID
						u.Entry.Disabled = e.Disabled
						t = u
					}
				}
			}
			out = append(out, t)
		}
	}
	return out
}

var configSandboxes = map[string]*config.Config{}

// configSandbox is the sandbox section of server name in the portcullis configuration at
// path (nil, the default sandbox, when it cannot be read).
func configSandbox(path, name string) *config.Sandbox {
	cfg, ok := configSandboxes[path]
	if !ok {
		cfg, _ = config.Load(path)
		configSandboxes[path] = cfg
	}
	if cfg == nil {
		return nil
	}
	for _, s := range cfg.Servers {
		if s.Name == name {
			return s.Sandbox
		}
	}
	return nil
}

// serverNameOf makes a client's server name usable where a configuration name is expected.
func serverNameOf(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	if b.Len() == 0 {
		return "server"
	}
	return b.String()
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressBar draws "[#####-----] 3/10 name" on a terminal.
func progressBar(w io.Writer) func(done, total int, name string) {
	return func(done, total int, name string) {
		const width = 24
		n := 0
		if total > 0 {
			n = done * width / total
		}
		if done == total {
			fmt.Fprintf(w, "\r\033[K")
			return
		}
		fmt.Fprintf(w, "\r\033[K[%s%s] %d/%d %s", strings.Repeat("#", n), strings.Repeat("-", width-n), done, total, name)
	}
}

func scanCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("scan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	all := fs.Bool("all", false, "every client configuration on this machine (and the current directory's project files)")
	client := fs.String("client", "", "read PATH as this client's format ("+strings.Join(clientconfig.IDs(), ", ")+")")
	cfgPath := fs.String("config", "", "gateway configuration: its servers are the registry, its store holds the pins")
	static := fs.Bool("static", false, "static checks only: start and contact no server")
	active := fs.Bool("active", false, "call tools with injection payloads (inside the sandbox, when configured) to see command execution, traversal and SSRF happen")
	format := fs.String("format", "text", "text, json or sarif")
	output := fs.String("output", "", "write the report to this file (default standard output)")
	failOn := fs.String("fail-on", "high", "exit 1 when a finding is at or above this severity (info, low, medium, high, critical, or none)")
	timeout := fs.Duration("timeout", 60*time.Second, "per server: start, handshake and listings")
	progress := fs.Bool("progress", false, "show the progress bar even when standard error is not a terminal")
	verbose := fs.Bool("v", false, "log what servers write to standard error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	switch *format {
	case "text", "json", "sarif":
	default:
		fmt.Fprintln(stderr, "portcullis scan: --format is text, json or sarif")
		return 2
	}
	threshold := detect.Severity(-1)
	if *failOn != "none" {
		s, err := detect.ParseSeverity(*failOn)
		if err != nil {
			fmt.Fprintln(stderr, "portcullis scan: --fail-on:", err)
			return 2
		}
		threshold = s
	}
	reg, err := discover.LoadRegistry(registryPaths(*cfgPath)...)
	if err != nil {
		fmt.Fprintln(stderr, "portcullis scan:", err)
		return 2
	}
	var targets []scan.Target
	var readErrs []string
	if *all || fs.NArg() == 0 {
		wd, _ := os.Getwd()
		for _, l := range clientconfig.Locations(clientconfig.HostEnv(runtime.GOOS), wd) {
			if _, err := os.Stat(l.Path); err != nil {
				continue
			}
			f, err := clientconfig.Read(l.Client, l.Path)
			if err != nil {
				readErrs = append(readErrs, err.Error())
				continue
			}
			targets = append(targets, fileTargets([]*clientconfig.File{f}, reg)...)
		}
	}
	for _, arg := range fs.Args() {
		if u, err := url.Parse(arg); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
			tr := clientconfig.HTTP
			if strings.HasSuffix(u.Path, "/sse") {
				tr = clientconfig.SSE
			}
			e := clientconfig.Entry{Name: u.Host, Transport: tr, URL: arg}
			t := scan.Target{Entry: e}
			t.Registry, _ = reg.Lookup(e)
			targets = append(targets, t)
			continue
		}
		abs, err := filepath.Abs(arg)
		if err != nil {
			readErrs = append(readErrs, err.Error())
			continue
		}
		st, err := os.Stat(abs)
		if err != nil {
			readErrs = append(readErrs, err.Error())
			continue
		}
		if st.IsDir() {
			for _, l := range clientconfig.Locations(clientconfig.Env{}, abs) {
				if l.Scope != "project" {
					continue
				}
				if _, err := os.Stat(l.Path); err != nil {
					continue
				}
				f, err := clientconfig.Read(l.Client, l.Path)
				if err != nil {
					readErrs = append(readErrs, err.Error())
					continue
				}
				targets = append(targets, fileTargets([]*clientconfig.File{f}, reg)...)
			}
			continue
		}
		c := clientconfig.Detect(abs)
		if *client != "" {
			c = clientconfig.ByID(*client)
			if c == nil {
				fmt.Fprintf(stderr, "portcullis scan: unknown client %q\n", *client)
				return 2
			}
		}
		if c == nil {
			data, err := os.ReadFile(abs)
			if err == nil && bytes.Contains(data, []byte("servers:")) && (strings.HasSuffix(abs, ".yaml") || strings.HasSuffix(abs, ".yml")) {
				if _, err := config.Parse(abs, data); err != nil {
					readErrs = append(readErrs, err.Error())
					continue
				}
				ts, err := configTargets(abs, data)
				if err != nil {
					readErrs = append(readErrs, err.Error())
					continue
				}
				targets = append(targets, ts...)
				continue
			}
			readErrs = append(readErrs, fmt.Sprintf("%s: %v", abs, clientconfig.ErrUnknownFormat))
			continue
		}
		f, err := clientconfig.Read(c, abs)
		if err != nil {
			readErrs = append(readErrs, err.Error())
			continue
		}
		targets = append(targets, fileTargets([]*clientconfig.File{f}, reg)...)
	}
	if len(readErrs) > 0 {
		fmt.Fprintf(stderr, "portcullis scan: %s\n", strings.Join(readErrs, "\nportcullis scan: "))
		if len(targets) == 0 {
			return 2
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	opts := scan.Options{Static: *static, Active: *active, Timeout: *timeout}
	if *verbose {
		opts.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	// Stdio servers start as the gateway starts them (sandbox included, when configured).
	opts.StdioDial = func(t scan.Target, env map[string]string, g scan.Grant) upstream.Dial {
		logger := opts.Logger
		if logger == nil {
			logger = slog.New(slog.DiscardHandler)
		}
		s := config.Server{Name: serverNameOf(t.Entry.Name), Command: t.Entry.Command, Args: t.Entry.Args, Env: env, Dir: t.Entry.Cwd}
		if t.Entry.Scope == "gateway" { // a server of a portcullis configuration: in its own sandbox
			s.Sandbox = configSandbox(t.File, t.Registry)
		}
		// The active checks' canaries are reachable from this sandbox, and from no other.
		extra := sandboxExtra{readWrite: g.ReadWrite}
		for _, f := range g.Forward {
			extra.forward = append(extra.forward, sandbox.Forward{Port: f.Port, Socket: f.Socket})
		}
		// A scan verifies no registry entry: it reports on what it finds.
		return dialerWith(s, jsonrpc.Limits{}, logger, nil, extra)
	}
	if *progress || isTerminal(stderr) {
		opts.Progress = progressBar(stderr)
	}
	if *cfgPath != "" && !*static {
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			fmt.Fprintln(stderr, "portcullis scan:", err)
			return 2
		}
		st, _, err := openStore(ctx, cfg)
		if err != nil {
			fmt.Fprintln(stderr, "portcullis scan:", err)
			return 2
		}
		defer st.Close()
		opts.Pins = &storePins{st: st}
	}
	rep := scan.Run(ctx, targets, opts)
	var w io.Writer = stdout
	if *output != "" {
		f, err := os.Create(*output)
		if err != nil {
			fmt.Fprintln(stderr, "portcullis scan:", err)
			return 2
		}
		defer f.Close()
		w = f
	}
	switch *format {
	case "json":
		err = rep.WriteJSON(w)
	case "sarif":
		err = rep.WriteSARIF(w, version())
	default:
		err = rep.WriteText(w)
	}
	if err != nil {
		fmt.Fprintln(stderr, "portcullis scan:", err)
		return 2
	}
	if m, ok := rep.Max(); ok && threshold >= 0 && m >= threshold {
		return 1
	}
	if len(readErrs) > 0 {
		return 2
	}
	return 0
}
