package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/clientconfig"
	"github.com/portcullis-mcp/portcullis/internal/config"
	"github.com/portcullis-mcp/portcullis/internal/store"
	"github.com/portcullis-mcp/portcullis/internal/wrap"
)

func init() {
	register("wrap", "wrap [--client ID] [--file F] [--project DIR] [--config FILE] [--gateway URL] [--dry-run]   run the servers of MCP clients through portcullis", wrapCmd)
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
	gatewayURL := fs.String("gateway", "", "the URL of the gateway (portcullis serve) HTTP entries are pointed at (default: from the configuration's listen)")
	httpStdio := fs.Bool("http-stdio", false, "HTTP entries run through `portcullis run` (stdio) too, instead of pointing at the gateway")
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
	opts := wrap.Options{Config: cfg, Portcullis: exe, Force: *force}
	var creds *wrapCredentials
	if !*httpStdio {
		gw, err := gatewayConfig(cfg)
		if err != nil {
			fmt.Fprintf(stderr, "portcullis wrap: nothing was changed: %v\n", err)
			return 1
		}
		if opts.Gateway = *gatewayURL; opts.Gateway == "" {
			opts.Gateway = gw.BaseURL()
		} else if u, err := url.Parse(opts.Gateway); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			fmt.Fprintf(stderr, "portcullis wrap: --gateway %q is not an http(s) URL\n", *gatewayURL)
			return 2
		} else if u.Port() != "" && config.LoopbackAddr(u.Host) {
			opts.Listen = u.Host // a configuration wrap creates listens where the entries point
		}
		creds = &wrapCredentials{cfg: gw, dry: *dry, made: map[string]wrap.Credential{}}
		defer creds.close()
		opts.Credential = creds.get
	}
	plan, err := wrap.Prepare(found, opts)
	if err != nil {
		creds.revokeAll()
		fmt.Fprintf(stderr, "portcullis wrap: nothing was changed: %v\n", err)
		return 1
	}
	n := 0
	for _, f := range plan.Files {
		n += len(f.Changes)
		for _, s := range f.Skipped {
			fmt.Fprintf(stdout, "%s: %s\n", f.File.Path, s)
		}
		for _, s := range f.Notes {
			fmt.Fprintf(stdout, "%s: note: %s\n", f.File.Path, s)
		}
	}
	if !plan.Changed() {
		creds.revokeAll()
		fmt.Fprintln(stdout, "nothing to wrap: every server already runs through portcullis")
		return 0
	}
	fmt.Fprint(stdout, plan.Diff())
	if *dry {
		fmt.Fprintf(stdout, "dry run: %d servers would be wrapped; nothing was written\n", n)
		return 0
	}
	if err := plan.Apply(); err != nil {
		// What was written is in the state (the keys too): unwrap undoes it.
		fmt.Fprintf(stderr, "portcullis wrap: %v (`portcullis unwrap --config %s` undoes what was written)\n", err, cfg)
		return 1
	}
	fmt.Fprintf(stdout, "wrapped %d servers; registered in %s; backups in %s; undo with `portcullis unwrap --config %s`\n",
		n, cfg, filepath.Dir(wrap.Options{Config: cfg}.StateFile()), cfg)
	for _, f := range plan.Files {
		for _, ch := range f.Changes {
			if ch.URL != "" {
				fmt.Fprintf(stdout, "HTTP servers now go through the gateway at %s/mcp/<server>: keep `portcullis serve --config %s` running\n", strings.TrimSuffix(opts.Gateway, "/"), cfg)
				return 0
			}
		}
	}
	return 0
}

// gatewayConfig is the configuration wrap registers servers in, as `portcullis serve`
// will read it (the defaults when wrap creates it: wrap adds servers only, so its listen,
// auth and store are those).
func gatewayConfig(path string) (*config.Config, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return &config.Config{File: path}, nil
	}
	return config.Load(path)
}

// wrapCredentials gives each client an API key of the gateway's store when the gateway
// requires API keys (one per client and wrap, named wrap-<client>), and nothing when it
// runs without authentication.
type wrapCredentials struct {
	cfg  *config.Config
	dry  bool
	st   store.Store
	made map[string]wrap.Credential
}

func (w *wrapCredentials) get(client string) (wrap.Credential, error) {
	a := w.cfg.Auth
	switch {
	case a.Set && a.None:
		return wrap.Credential{}, nil
	case a.Set && !a.APIKeys:
		return wrap.Credential{}, fmt.Errorf("the gateway (%s) authenticates with OIDC tokens or client certificates only, which wrap cannot give a client; enable auth.api_keys, or wrap with --http-stdio", w.cfg.File)
	case w.dry:
		return wrap.Credential{Headers: map[string]string{"Authorization": "Bearer <an API key created for " + client + ">"}}, nil
	}
	if c, ok := w.made[client]; ok {
		return c, nil
	}
	ctx := context.Background()
	if w.st == nil {
		st, _, err := openStore(ctx, w.cfg)
		if err != nil {
			return wrap.Credential{}, err
		}
		w.st = st
	}
	tok, k, err := createKey(ctx, w.st, "wrap-"+client, nil)
	if err != nil {
		return wrap.Credential{}, fmt.Errorf("creating an API key for %s: %w", client, err)
	}
	c := wrap.Credential{Headers: map[string]string{"Authorization": "Bearer " + tok}, KeyID: k.ID}
	w.made[client] = c
	return c, nil
}

// revokeAll revokes the keys made for a wrap that did not happen.
func (w *wrapCredentials) revokeAll() {
	if w == nil || w.st == nil {
		return
	}
	for _, c := range w.made {
		w.st.RevokeKey(context.Background(), c.KeyID, time.Now())
	}
	w.made = map[string]wrap.Credential{}
}

func (w *wrapCredentials) close() {
	if w != nil && w.st != nil {
		w.st.Close()
	}
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
	opts := wrap.Options{Config: cfg, Force: *force}
	// The API keys wrap created are revoked in the configuration's store (read before
	// unwrap removes a configuration it created).
	var st store.Store
	gw, gwErr := gatewayConfig(cfg)
	opts.Revoke = func(id string) error {
		if gwErr != nil {
			return gwErr
		}
		if st == nil {
			var err error
			if st, _, err = openStore(context.Background(), gw); err != nil {
				return err
			}
		}
		return st.RevokeKey(context.Background(), id, time.Now())
	}
	defer func() {
		if st != nil {
			st.Close()
		}
	}()
	res, err := wrap.Unwrap(opts, clients)
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
