package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/portcullis-mcp/portcullis/internal/clientconfig"
	"github.com/portcullis-mcp/portcullis/internal/wrap"
)

func init() {
	register("wrap", "wrap [--client ID] [--file F] [--project DIR] [--config FILE] [--dry-run]   run the servers of MCP clients through portcullis", wrapCmd)
	register("unwrap", "unwrap [--client ID] [--config FILE] [--force]   restore the client configurations wrap changed", unwrapCmd)
}

// defaultWrapConfig is the portcullis configuration wrap maintains.
func defaultWrapConfig() string {
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "portcullis", "portcullis.yaml")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "portcullis.yaml"
	}
	return filepath.Join(home, ".config", "portcullis", "portcullis.yaml")
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// clientFiles reads the client configuration files selected by --client, --file and
// --project. Files that do not exist are left out; a file that exists but cannot be read
// is an error naming it.
func clientFiles(clientID string, files []string, project string) ([]*clientconfig.File, error) {
	if clientID != "" {
		ok := false
		for _, c := range clientconfig.Clients {
			ok = ok || c.Matches(clientID)
		}
		if !ok {
			return nil, fmt.Errorf("unknown client %q (one of %s)", clientID, strings.Join(clientconfig.IDs(), ", "))
		}
	}
	var locs []clientconfig.Location
	if len(files) > 0 {
		for _, f := range files {
			abs, err := filepath.Abs(f)
			if err != nil {
				return nil, err
			}
			c := clientconfig.Detect(abs)
			if clientID != "" {
				for _, k := range clientconfig.Clients {
					if k.Matches(clientID) && (c == nil || !c.Matches(clientID)) {
						c = k
						break
					}
				}
			}
			if c == nil {
				return nil, fmt.Errorf("%s: %w", f, clientconfig.ErrUnknownFormat)
			}
			if _, err := os.Stat(abs); err != nil {
				return nil, err
			}
			locs = append(locs, clientconfig.Location{Client: c, Path: abs})
		}
	} else {
		if project != "" {
			abs, err := filepath.Abs(project)
			if err != nil {
				return nil, err
			}
			project = abs
		}
		for _, l := range clientconfig.Locations(clientconfig.HostEnv(runtime.GOOS), project) {
			if clientID != "" && !l.Client.Matches(clientID) {
				continue
			}
			if _, err := os.Stat(l.Path); err == nil {
				locs = append(locs, l)
			}
		}
	}
	var out []*clientconfig.File
	var errs []error
	for _, l := range locs {
		f, err := clientconfig.Read(l.Client, l.Path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, f)
	}
	return out, errors.Join(errs...)
}

func wrapCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wrap", flag.ContinueOnError)
	fs.SetOutput(stderr)
	client := fs.String("client", "", "only this client ("+strings.Join(clientconfig.IDs(), ", ")+")")
	var files multiFlag
	fs.Var(&files, "file", "a client configuration file (repeatable; default: every client's files on this machine)")
	project := fs.String("project", "", "also the project-level files of this directory (.mcp.json, .cursor/mcp.json, .vscode/mcp.json, ...)")
	cfgPath := fs.String("config", defaultWrapConfig(), "the portcullis configuration the servers are registered in")
	bin := fs.String("portcullis", "", "the portcullis binary clients start (default: this one)")
	dry := fs.Bool("dry-run", false, "show the changes, write nothing")
	force := fs.Bool("force", false, "wrap files changed since they were last wrapped")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "portcullis wrap: unexpected arguments:", fs.Args())
		return 2
	}
	cfg, err := filepath.Abs(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, "portcullis wrap:", err)
		return 1
	}
	exe := *bin
	if exe == "" {
		if exe, err = os.Executable(); err == nil {
			exe, err = filepath.EvalSymlinks(exe)
		}
		if err != nil {
			fmt.Fprintln(stderr, "portcullis wrap: cannot tell where this binary is; name it with --portcullis:", err)
			return 1
		}
	}
	if exe, err = filepath.Abs(exe); err != nil {
		fmt.Fprintln(stderr, "portcullis wrap:", err)
		return 1
	}
	found, err := clientFiles(*client, files, *project)
	if err != nil {
		fmt.Fprintf(stderr, "portcullis wrap: nothing was changed:\n%v\n", err)
		return 1
	}
	if len(found) == 0 {
		fmt.Fprintln(stderr, "portcullis wrap: no client configuration found (name one with --file, or --project DIR)")
		return 1
	}
	plan, err := wrap.Prepare(found, wrap.Options{Config: cfg, Portcullis: exe, Force: *force})
	if err != nil {
		fmt.Fprintf(stderr, "portcullis wrap: nothing was changed: %v\n", err)
		return 1
	}
	n := 0
	for _, f := range plan.Files {
		n += len(f.Changes)
		for _, s := range f.Skipped {
			fmt.Fprintf(stdout, "%s: %s\n", f.File.Path, s)
		}
	}
	if !plan.Changed() {
		fmt.Fprintln(stdout, "nothing to wrap: every server already runs through portcullis")
		return 0
	}
	fmt.Fprint(stdout, plan.Diff())
	if *dry {
		fmt.Fprintf(stdout, "dry run: %d servers would be wrapped; nothing was written\n", n)
		return 0
	}
	if err := plan.Apply(); err != nil {
		fmt.Fprintln(stderr, "portcullis wrap:", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrapped %d servers; registered in %s; backups in %s; undo with `portcullis unwrap --config %s`\n",
		n, cfg, filepath.Dir(wrap.Options{Config: cfg}.StateFile()), cfg)
	return 0
}

func unwrapCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("unwrap", flag.ContinueOnError)
	fs.SetOutput(stderr)
	client := fs.String("client", "", "only the files of this client")
	cfgPath := fs.String("config", defaultWrapConfig(), "the portcullis configuration wrap registered the servers in")
	force := fs.Bool("force", false, "restore files changed since they were wrapped (their current bytes are kept as FILE.unwrapped)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := filepath.Abs(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, "portcullis unwrap:", err)
		return 1
	}
	var clients []string
	if *client != "" {
		for _, c := range clientconfig.Clients {
			if c.Matches(*client) {
				clients = append(clients, c.ID)
			}
		}
	}
	res, err := wrap.Unwrap(wrap.Options{Config: cfg, Force: *force}, clients)
	for _, r := range res {
		fmt.Fprintf(stdout, "%s: %s", r.Path, r.Action)
		if r.Note != "" {
			fmt.Fprintf(stdout, " (%s)", r.Note)
		}
		fmt.Fprintln(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "portcullis unwrap:", err)
		return 1
	}
	if len(res) == 0 {
		fmt.Fprintln(stdout, "nothing to unwrap")
	}
	return 0
}
