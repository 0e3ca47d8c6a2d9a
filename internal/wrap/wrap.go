// Package wrap puts the MCP servers of client configurations behind portcullis: each
// server entry is registered in a portcullis configuration and rewritten so that the
// client reaches the same server through the gateway's guards. A stdio entry starts
// `portcullis run --config <it> <name>` (the server's command stays in the portcullis
// configuration; launchers that fetch packages, npx and uvx, get a cache of their own and
// egress to their registry in the sandbox). An HTTP entry stays an HTTP entry and points
// at the gateway's endpoint of that server (`portcullis serve`, /mcp/<name>), with the
// credentials the gateway requires; the server's URL and headers move to the
// configuration.
//
// Every rewritten file is backed up first and recorded in a state file next to the
// portcullis configuration; Unwrap writes the backed-up bytes back, so a wrap followed by
// an unwrap returns every file exactly as it was. Wrapping twice changes nothing the
// second time.
package wrap

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/portcullis-mcp/portcullis/internal/clientconfig"
	"github.com/portcullis-mcp/portcullis/internal/config"
)

// Options say where the portcullis configuration and the state live.
type Options struct {
	Config     string // the portcullis configuration the wrapped servers go to
	Portcullis string // the portcullis binary the clients start (absolute)
	Force      bool   // wrap or unwrap files changed since the last wrap
	// Gateway is the base URL of the gateway serving Config (http://127.0.0.1:8931): HTTP
	// entries are pointed at Gateway/mcp/<name>. Empty: they run through `portcullis run`
	// like stdio entries.
	Gateway string
	// Credential returns what an entry of client sends the gateway (nil when the gateway
	// needs nothing); an error leaves the client's HTTP entries as they are, with the
	// error as the reason.
	Credential func(client string) (Credential, error)
	// Revoke, for Unwrap, revokes an API key wrap created for a client.
	Revoke func(id string) error
	// Listen, when wrap creates the configuration, is written as its listen address (the
	// gateway's address in Gateway).
	Listen string
}

// Credential is how a client authenticates to the gateway.
type Credential struct {
	Headers map[string]string
	KeyID   string // the API key created for the client ("" when none was)
}

// Endpoint is the URL of the gateway's endpoint of server name.
func (o Options) Endpoint(name string) string {
	return strings.TrimSuffix(o.Gateway, "/") + "/mcp/" + name
}

// viaGateway reports whether an entry already points at the gateway (this one, or one
// an earlier wrap pointed entries at).
func (o Options) viaGateway(e clientconfig.Entry, earlier []string) bool {
	if e.Transport == clientconfig.Stdio {
		return false
	}
	for _, g := range append([]string{o.Gateway}, earlier...) {
		if g == "" {
			continue
		}
		base := strings.TrimSuffix(g, "/") + "/mcp"
		if e.URL == base || strings.HasPrefix(e.URL, base+"/") {
			return true
		}
	}
	return false
}

// StateFile is the record of wrapped files, next to the configuration.
func (o Options) StateFile() string { return filepath.Join(o.stateDir(), "wrap-state.json") }

func (o Options) stateDir() string { return filepath.Join(filepath.Dir(o.Config), "wrap") }

// State records what wrap changed.
type State struct {
	Files  []Record `json:"files"`
	Config *Record  `json:"config,omitempty"` // the portcullis configuration
	Keys   []Key    `json:"keys,omitempty"`   // API keys created for clients
	// Gateways are the base URLs HTTP entries were pointed at: an entry under one of
	// them is wrapped already, whatever --gateway says now.
	Gateways []string `json:"gateways,omitempty"`
}

// Key is an API key wrap created for a client to reach the gateway (its id, never the key).
type Key struct {
	ID     string `json:"id"`
	Client string `json:"client"`
}

// Record is one file wrap changed.
type Record struct {
	Path     string    `json:"path"`
	Client   string    `json:"client,omitempty"`
	Backup   string    `json:"backup"`             // the file's bytes before wrap ("" when wrap created it)
	Created  bool      `json:"created,omitempty"`  // wrap created the file
	Original string    `json:"original,omitempty"` // sha256 of the bytes before
	Wrapped  string    `json:"wrapped"`            // sha256 of the bytes wrap wrote
	Mode     uint32    `json:"mode"`
	Servers  []string  `json:"servers,omitempty"`  // names registered in the configuration (for the configuration: the ones wrap added)
	Pointers []string  `json:"pointers,omitempty"` // the entries rewritten
	At       time.Time `json:"at"`
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// LoadState reads the state file (empty when there is none).
func LoadState(path string) (*State, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &State{}, nil
	}
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w (the wrap state is damaged; restore the files from %s by hand)", path, err, filepath.Dir(path))
	}
	return &s, nil
}

func (s *State) save(path string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(path, append(b, '\n'), 0o600)
}

func (s *State) record(path string) *Record {
	for i := range s.Files {
		if s.Files[i].Path == path {
			return &s.Files[i]
		}
	}
	return nil
}

// FilePlan is what wrap does to one client file.
type FilePlan struct {
	File    *clientconfig.File
	Changes []clientconfig.Change
	After   []byte
	Servers []config.Server // registered for this file's entries
	Skipped []string        // entries left alone, with why
	Notes   []string        // wrapped entries the user should look at, with why
	Secret  bool            // an entry gets a credential: the file is written readable by its owner only
}

// Plan is what wrap will do.
type Plan struct {
	Files        []*FilePlan
	ConfigBefore []byte // nil when the configuration does not exist yet
	ConfigAfter  []byte
	added        []string // servers wrap adds to the configuration
	keys         []Key    // API keys created for this plan
	secrets      []string // credential values, never shown in a diff
	opts         Options
	state        *State
}

// IsWrapped reports whether an entry already runs through portcullis (bin, when not
// empty, is the portcullis binary wrap writes).
func IsWrapped(e clientconfig.Entry, bin string) bool {
	b := filepath.Base(e.Command)
	isPC := b == "portcullis" || b == "portcullis.exe" || bin != "" && e.Command == bin
	return isPC && len(e.Args) > 0 && e.Args[0] == "run"
}

var nameClean = regexp.MustCompile(`[^a-z0-9-]+`)

// serverName makes a portcullis server name (1-32 letters, digits, '-') of a client's name.
func serverName(name string) string {
	n := strings.ToLower(name)
	if i := strings.LastIndex(n, "/"); i >= 0 && i < len(n)-1 {
		n = n[i+1:]
	}
	n = strings.Trim(nameClean.ReplaceAllString(n, "-"), "-")
	if len(n) > 28 {
		n = strings.Trim(n[:28], "-")
	}
	if n == "" {
		n = "server"
	}
	return n
}

// sameServer reports whether a registered server is the one an entry asks for: the same
// in every setting, or the same but for the sandbox and cache wrap gives package
// launchers (a server the user registered themselves is theirs to configure).
func sameServer(a, b config.Server) bool {
	same := func(a, b config.Server) bool {
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		return bytes.Equal(ja, jb)
	}
	return same(a, b) || same(withoutFetcher(a), withoutFetcher(b))
}

func withoutFetcher(s config.Server) config.Server {
	f, ok := fetchers[strings.TrimSuffix(filepath.Base(s.Command), ".cmd")]
	if !ok {
		return s
	}
	s.Sandbox = nil
	if _, set := s.Env[f.cacheEnv]; set {
		env := map[string]string{}
		for k, v := range s.Env {
			if k != f.cacheEnv {
				env[k] = v
			}
		}
		if len(env) == 0 {
			env = nil
		}
		s.Env = env
	}
	return s
}

// serverOf is the portcullis server for an entry. Environment variables pass through by
// reference: the client still sets them on `portcullis run`, which hands them on.
func serverOf(name string, e clientconfig.Entry, opts Options) config.Server {
	s := config.Server{Name: name}
	switch e.Transport {
	case clientconfig.Stdio:
		s.Command, s.Args, s.Dir = e.Command, e.Args, e.Cwd
		for _, k := range e.EnvNames() {
			if s.Env == nil {
				s.Env = map[string]string{}
			}
			s.Env[k] = "${" + k + "}"
		}
		fetcherSandbox(&s, opts)
	default:
		s.URL = e.URL
		if e.Transport == clientconfig.SSE {
			s.Transport = "sse"
		}
		if len(e.Headers) > 0 {
			s.Headers = e.Headers
		}
	}
	return s
}

// fetchers are the launchers that fetch a package before they run it: the cache they
// keep it in (an environment variable) and the hosts they fetch from.
var fetchers = map[string]struct {
	cacheEnv string
	egress   []string
}{
	"npx":  {"npm_config_cache", []string{"registry.npmjs.org"}},
	"uvx":  {"UV_CACHE_DIR", []string{"pypi.org", "files.pythonhosted.org"}},
	"bunx": {"BUN_INSTALL_CACHE_DIR", []string{"registry.npmjs.org"}},
}

// fetcherSandbox lets a server started by a package launcher (npx, uvx) work in the
// sandbox, which denies the home directory (where their caches are) and the network: a
// cache of the server's own next to the configuration, writable, and egress to the
// package registry only (through the gateway's proxy). A cache the entry sets already is
// left alone.
func fetcherSandbox(s *config.Server, opts Options) {
	b := strings.TrimSuffix(filepath.Base(s.Command), ".cmd")
	f, ok := fetchers[b]
	if !ok {
		return
	}
	if _, set := s.Env[f.cacheEnv]; set {
		return
	}
	cache := filepath.Join(filepath.Dir(opts.Config), "cache", b+"-"+s.Name)
	if s.Env == nil {
		s.Env = map[string]string{}
	}
	s.Env[f.cacheEnv] = cache
	s.Sandbox = &config.Sandbox{Egress: f.egress, ReadWrite: []string{cache}}
}

// Prepare plans the wrap of files.
func Prepare(files []*clientconfig.File, opts Options) (*Plan, error) {
	if !filepath.IsAbs(opts.Config) || !filepath.IsAbs(opts.Portcullis) {
		return nil, errors.New("wrap: the configuration and the portcullis binary must be absolute paths")
	}
	st, err := LoadState(opts.StateFile())
	if err != nil {
		return nil, err
	}
	p := &Plan{opts: opts, state: st}
	existing := map[string]config.Server{}
	if b, err := os.ReadFile(opts.Config); err == nil {
		p.ConfigBefore = b
		cfg, err := config.Parse(opts.Config, b)
		if err != nil {
			return nil, fmt.Errorf("wrap: the portcullis configuration must be valid before servers are added: %w", err)
		}
		for _, s := range cfg.Servers {
			existing[s.Name] = s
		}
		raw, err := rawServers(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", opts.Config, err)
		}
		for _, s := range raw { // unexpanded, as written
			existing[s.Name] = s
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var added []config.Server
	for _, f := range files {
		fp := &FilePlan{File: f}
		if rec := st.record(f.Path); rec != nil && rec.Wrapped != sum(f.Data) && !opts.Force {
			return nil, fmt.Errorf("%s changed since it was wrapped on %s; run `portcullis unwrap` first, or wrap again with --force (unwrap then restores the file as it is now)",
				f.Path, rec.At.Format(time.RFC3339))
		}
		var cred *Credential
		for _, e := range f.Entries {
			if IsWrapped(e, opts.Portcullis) || opts.viaGateway(e, st.Gateways) {
				fp.Skipped = append(fp.Skipped, fmt.Sprintf("%s: already runs through portcullis", e.Name))
				continue
			}
			toGateway := opts.Gateway != "" && e.Transport != clientconfig.Stdio
			if toGateway && cred == nil {
				c := Credential{}
				if opts.Credential != nil {
					if c, err = opts.Credential(f.Client.ID); err != nil {
						fp.Skipped = append(fp.Skipped, fmt.Sprintf("%s: left as it is: %v", e.Name, err))
						continue
					}
				}
				cred = &c
				if k := (Key{ID: c.KeyID, Client: f.Client.ID}); c.KeyID != "" && !slices.Contains(p.keys, k) {
					p.keys = append(p.keys, k)
					for _, v := range c.Headers {
						p.secrets = append(p.secrets, v)
					}
				}
			}
			if e.EnvFile != "" {
				var note string
				e, note = withEnvFile(e, f.Path)
				if note != "" {
					fp.Notes = append(fp.Notes, e.Name+": "+note)
				}
			}
			base := serverName(e.Name)
			name := base
			for i := 2; ; i++ {
				prev, taken := existing[name]
				want := serverOf(name, e, opts)
				if !taken {
					existing[name] = want
					added = append(added, want)
					break
				}
				if sameServer(prev, want) {
					break // the same server, registered already
				}
				name = fmt.Sprintf("%s-%d", base, i)
			}
			fp.Servers = append(fp.Servers, existing[name])
			if toGateway {
				fp.Changes = append(fp.Changes, clientconfig.Change{Pointer: e.Pointer, URL: opts.Endpoint(name), Headers: cred.Headers})
				fp.Secret = fp.Secret || len(cred.Headers) > 0
				continue
			}
			fp.Changes = append(fp.Changes, clientconfig.Change{Pointer: e.Pointer, Command: opts.Portcullis,
				Args: []string{"run", "--config", opts.Config, name}})
		}
		if len(fp.Changes) > 0 {
			out, err := f.Rewrite(fp.Changes)
			if err != nil {
				return nil, err
			}
			fp.After = out
		} else {
			fp.After = f.Data
		}
		p.Files = append(p.Files, fp)
	}
	p.ConfigAfter = p.ConfigBefore
	if len(added) > 0 {
		out, err := addServers(p.ConfigBefore, added, opts.Listen)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", opts.Config, err)
		}
		if _, err := config.Parse(opts.Config, out); err != nil {
			return nil, fmt.Errorf("wrap: the portcullis configuration would not be valid (nothing written): %w", err)
		}
		p.ConfigAfter = out
		for _, s := range added {
			p.added = append(p.added, s.Name)
		}
	}
	return p, nil
}

// Keys are the API keys created for the plan's clients (revoke them when the plan is not
// applied).
func (p *Plan) Keys() []Key { return p.keys }

// Changed reports whether the plan changes anything.
func (p *Plan) Changed() bool {
	if !bytes.Equal(p.ConfigBefore, p.ConfigAfter) {
		return true
	}
	for _, f := range p.Files {
		if !bytes.Equal(f.File.Data, f.After) {
			return true
		}
	}
	return false
}

// Diff shows the plan as unified diffs, credentials redacted.
func (p *Plan) Diff() string {
	d := p.diff()
	for _, v := range p.secrets {
		if v != "" {
			d = strings.ReplaceAll(d, v, "<redacted: an API key created for the client>")
		}
	}
	return d
}

func (p *Plan) diff() string {
	var b strings.Builder
	if !bytes.Equal(p.ConfigBefore, p.ConfigAfter) {
		b.WriteString(Unified(p.opts.Config, p.ConfigBefore, p.ConfigAfter))
	}
	for _, f := range p.Files {
		if !bytes.Equal(f.File.Data, f.After) {
			b.WriteString(Unified(f.File.Path, f.File.Data, f.After))
		}
	}
	return b.String()
}

// Apply backs up and writes the files of the plan, then records them.
func (p *Plan) Apply() error {
	if !p.Changed() {
		return nil
	}
	dir := p.opts.stateDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	now := time.Now().UTC()
	backup := func(path string, data []byte) (string, error) {
		name := fmt.Sprintf("%s-%s-%s", now.Format("20060102T150405Z"), sum([]byte(path))[:12], filepath.Base(path))
		bp := filepath.Join(dir, name)
		return bp, writeAtomic(bp, data, 0o600)
	}
	// Configuration first: a client must never name a server that is not registered.
	if !bytes.Equal(p.ConfigBefore, p.ConfigAfter) {
		rec := p.state.Config
		if rec == nil {
			rec = &Record{Path: p.opts.Config, Created: p.ConfigBefore == nil, Mode: 0o600, At: now}
			if p.ConfigBefore != nil {
				bp, err := backup(p.opts.Config, p.ConfigBefore)
				if err != nil {
					return err
				}
				rec.Backup, rec.Original = bp, sum(p.ConfigBefore)
			}
			p.state.Config = rec
		}
		if err := os.MkdirAll(filepath.Dir(p.opts.Config), 0o700); err != nil {
			return err
		}
		if err := writeAtomic(p.opts.Config, p.ConfigAfter, 0o600); err != nil {
			return err
		}
		rec.Wrapped = sum(p.ConfigAfter)
		for _, n := range p.added {
			if !contains(rec.Servers, n) {
				rec.Servers = append(rec.Servers, n)
			}
		}
	}
	p.state.Keys = append(p.state.Keys, p.keys...)
	gw := false
	for _, f := range p.Files {
		for _, ch := range f.Changes {
			gw = gw || ch.URL != ""
		}
	}
	if gw && !slices.Contains(p.state.Gateways, p.opts.Gateway) {
		p.state.Gateways = append(p.state.Gateways, p.opts.Gateway)
	}
	if len(p.keys) > 0 || gw {
		if err := p.state.save(p.opts.StateFile()); err != nil {
			return err
		}
	}
	for _, f := range p.Files {
		if bytes.Equal(f.File.Data, f.After) {
			continue
		}
		mode := os.FileMode(0o600)
		if st, err := os.Stat(f.File.Path); err == nil {
			mode = st.Mode().Perm()
		}
		rec := p.state.record(f.File.Path)
		if rec == nil || p.opts.Force {
			bp, err := backup(f.File.Path, f.File.Data)
			if err != nil {
				return err
			}
			if rec == nil {
				p.state.Files = append(p.state.Files, Record{Path: f.File.Path})
				rec = &p.state.Files[len(p.state.Files)-1]
			}
			rec.Backup, rec.Original = bp, sum(f.File.Data)
			rec.Mode = uint32(mode) // what unwrap gives the file back
		}
		rec.Client, rec.At = f.File.Client.ID, now
		if f.Secret {
			// An API key is going into the file: nobody else may read it.
			mode &^= 0o077
		}
		for _, s := range f.Servers {
			if !contains(rec.Servers, s.Name) {
				rec.Servers = append(rec.Servers, s.Name)
			}
		}
		for _, ch := range f.Changes {
			if !contains(rec.Pointers, ch.Pointer) {
				rec.Pointers = append(rec.Pointers, ch.Pointer)
			}
		}
		if err := p.state.save(p.opts.StateFile()); err != nil { // before the file changes
			return err
		}
		if err := writeAtomic(f.File.Path, f.After, mode); err != nil {
			return err
		}
		rec.Wrapped = sum(f.After)
	}
	return p.state.save(p.opts.StateFile())
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// Restored is one file Unwrap handled.
type Restored struct {
	Path   string
	Action string // restored, removed, unchanged, skipped
	Note   string
}

// Unwrap writes back the bytes of every wrapped file (only those of clients when not
// empty) and forgets them. In a file changed since it was wrapped (clients rewrite their
// own files), only the rewritten entries are put back as they were and the other changes
// stay; the configuration loses only the servers wrap added. With Force, a changed file
// gets its original bytes anyway, and its current bytes are kept as FILE.unwrapped.
func Unwrap(opts Options, clients []string) ([]Restored, error) {
	st, err := LoadState(opts.StateFile())
	if err != nil {
		return nil, err
	}
	var out []Restored
	var keep []Record
	var errs []error
	for _, rec := range st.Files {
		if len(clients) > 0 && !contains(clients, rec.Client) {
			keep = append(keep, rec)
			continue
		}
		r, err := restore(rec, opts.Force, restoreEntries)
		out = append(out, r)
		if err != nil {
			errs = append(errs, err)
			keep = append(keep, rec)
		}
	}
	st.Files = keep
	// The API keys of the clients unwrapped: their entries no longer name the gateway.
	var keys []Key
	for _, k := range st.Keys {
		if len(clients) > 0 && !contains(clients, k.Client) {
			keys = append(keys, k)
			continue
		}
		if opts.Revoke != nil {
			if err := opts.Revoke(k.ID); err != nil {
				errs = append(errs, fmt.Errorf("revoking the API key %s of %s: %w (revoke it with `portcullis keys revoke`)", k.ID, k.Client, err))
				keys = append(keys, k)
				continue
			}
		}
		out = append(out, Restored{Path: "API key " + k.ID + " (" + k.Client + ")", Action: "revoked"})
	}
	st.Keys = keys
	if len(keep) == 0 && st.Config != nil {
		r, err := restore(*st.Config, opts.Force, removeServers)
		out = append(out, r)
		if err != nil {
			errs = append(errs, err)
		} else {
			st.Config = nil
		}
	}
	if len(st.Files) == 0 && st.Config == nil && len(st.Keys) == 0 {
		os.Remove(opts.StateFile())
		os.Remove(opts.stateDir()) // when empty
	} else if err := st.save(opts.StateFile()); err != nil {
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

// merge undoes wrap in a file that changed since it was wrapped, keeping the changes.
type merge func(rec Record, cur, orig []byte) (out []byte, remove bool, err error)

// restoreEntries puts the rewritten entries of a client file back as they were.
func restoreEntries(rec Record, cur, orig []byte) ([]byte, bool, error) {
	c := clientconfig.ByID(rec.Client)
	if c == nil || len(rec.Pointers) == 0 {
		return nil, false, errors.New("no record of the entries wrap rewrote")
	}
	now, err := clientconfig.Parse(c, rec.Path, cur)
	if err != nil {
		return nil, false, err
	}
	was, err := clientconfig.Parse(c, rec.Path, orig)
	if err != nil {
		return nil, false, err
	}
	out, err := now.Restore(was, rec.Pointers)
	return out, false, err
}

// removeServers takes the servers wrap added out of the configuration.
func removeServers(rec Record, cur, _ []byte) ([]byte, bool, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(cur, &root); err != nil {
		return nil, false, err
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil, false, errors.New("not a mapping")
	}
	m := root.Content[0]
	left := 0
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != "servers" {
			continue
		}
		list := m.Content[i+1]
		var keep []*yaml.Node
		for _, n := range list.Content {
			name := ""
			for j := 0; j+1 < len(n.Content); j += 2 {
				if n.Content[j].Value == "name" {
					name = n.Content[j+1].Value
				}
			}
			if !contains(rec.Servers, name) {
				keep = append(keep, n)
			}
		}
		list.Content, left = keep, len(keep)
	}
	if left == 0 && rec.Created {
		return nil, true, nil
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&root); err != nil {
		return nil, false, err
	}
	enc.Close()
	return out.Bytes(), false, nil
}

func restore(rec Record, force bool, undo merge) (Restored, error) {
	cur, err := os.ReadFile(rec.Path)
	missing := errors.Is(err, os.ErrNotExist)
	if err != nil && !missing {
		return Restored{Path: rec.Path, Action: "skipped"}, err
	}
	mode := os.FileMode(rec.Mode)
	if mode == 0 {
		mode = 0o600
	}
	if !missing && sum(cur) != rec.Wrapped && !force {
		// Changed since (a client rewrites its own file): undo only what wrap did.
		var orig []byte
		if rec.Backup != "" {
			if orig, err = os.ReadFile(rec.Backup); err != nil {
				return Restored{Path: rec.Path, Action: "skipped"}, fmt.Errorf("%s: backup %s: %w", rec.Path, rec.Backup, err)
			}
		}
		out, remove, err := undo(rec, cur, orig)
		if err != nil {
			return Restored{Path: rec.Path, Action: "skipped", Note: "changed since it was wrapped"},
				fmt.Errorf("%s changed since it was wrapped and its entries cannot be put back (%v); edit it back or run unwrap --force (the current file is kept as %s.unwrapped)", rec.Path, err, rec.Path)
		}
		if remove {
			if err := os.Remove(rec.Path); err != nil {
				return Restored{Path: rec.Path, Action: "skipped"}, err
			}
		} else if err := writeAtomic(rec.Path, out, mode); err != nil {
			return Restored{Path: rec.Path, Action: "skipped"}, err
		}
		if rec.Backup != "" {
			os.Remove(rec.Backup)
		}
		return Restored{Path: rec.Path, Action: "restored", Note: "changed since it was wrapped: only wrap's changes were undone"}, nil
	}
	if !missing && sum(cur) != rec.Wrapped {
		if err := writeAtomic(rec.Path+".unwrapped", cur, 0o600); err != nil {
			return Restored{Path: rec.Path, Action: "skipped"}, err
		}
	}
	if rec.Created {
		if err := os.Remove(rec.Path); err != nil && !missing {
			return Restored{Path: rec.Path, Action: "skipped"}, err
		}
		return Restored{Path: rec.Path, Action: "removed"}, nil
	}
	orig, err := os.ReadFile(rec.Backup)
	if err != nil {
		return Restored{Path: rec.Path, Action: "skipped"}, fmt.Errorf("%s: backup %s: %w", rec.Path, rec.Backup, err)
	}
	if sum(orig) != rec.Original {
		return Restored{Path: rec.Path, Action: "skipped"}, fmt.Errorf("%s: backup %s does not hold the original bytes any more", rec.Path, rec.Backup)
	}
	if err := writeAtomic(rec.Path, orig, mode); err != nil {
		return Restored{Path: rec.Path, Action: "skipped"}, err
	}
	os.Remove(rec.Backup)
	return Restored{Path: rec.Path, Action: "restored"}, nil
}

// writeAtomic writes data to path through a temporary file in the same directory.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// rawServers reads the servers of a configuration as written (no ${} expansion).
func rawServers(data []byte) ([]config.Server, error) {
	var c struct {
		Servers []config.Server `yaml:"servers"`
	}
	if err := yaml.Unmarshal(data, &c); err != nil {
		return nil, err
	}
	return c.Servers, nil
}

// addServers appends servers to the servers: list of a configuration (a new one when
// data is nil), keeping the rest of the file.
func addServers(data []byte, servers []config.Server, listen string) ([]byte, error) {
	var b bytes.Buffer
	if data == nil {
		b.WriteString("# Written by `portcullis wrap`: the MCP servers of your clients, run through portcullis.\n")
		b.WriteString("# `portcullis unwrap` restores the clients and removes this file.\n")
		if listen != "" {
			b.WriteString("# HTTP servers are reached through `portcullis serve --config <this file>`, at /mcp/<name>.\n")
			fmt.Fprintf(&b, "listen: %s\n", q(listen))
		}
		b.WriteString("servers:\n")
		for _, s := range servers {
			b.WriteString(serverYAML(s))
		}
		return b.Bytes(), nil
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, err
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("not a mapping")
	}
	var list *yaml.Node
	m := root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "servers" {
			list = m.Content[i+1]
		}
	}
	if list == nil {
		return nil, errors.New("no servers: list")
	}
	for _, s := range servers {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte("servers:\n"+serverYAML(s)), &doc); err != nil {
			return nil, err
		}
		list.Content = append(list.Content, doc.Content[0].Content[1].Content[0])
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&root); err != nil {
		return nil, err
	}
	enc.Close()
	return out.Bytes(), nil
}

func q(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// serverYAML renders a server as an item of servers: ("  - name: ...").
func serverYAML(s config.Server) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  - name: %s\n", q(s.Name))
	if s.Command != "" {
		fmt.Fprintf(&b, "    command: %s\n", q(s.Command))
		if len(s.Args) > 0 {
			var qs []string
			for _, a := range s.Args {
				qs = append(qs, q(a))
			}
			fmt.Fprintf(&b, "    args: [%s]\n", strings.Join(qs, ", "))
		}
		if s.Dir != "" {
			fmt.Fprintf(&b, "    cwd: %s\n", q(s.Dir))
		}
	}
	if s.URL != "" {
		fmt.Fprintf(&b, "    url: %s\n", q(s.URL))
		if s.Transport != "" {
			fmt.Fprintf(&b, "    transport: %s\n", q(s.Transport))
		}
	}
	if sb := s.Sandbox; sb != nil {
		var parts []string
		for _, l := range []struct {
			key string
			v   []string
		}{{"egress", sb.Egress}, {"read_write", sb.ReadWrite}, {"read_only", sb.ReadOnly}} {
			if len(l.v) == 0 {
				continue
			}
			var qs []string
			for _, v := range l.v {
				qs = append(qs, q(v))
			}
			parts = append(parts, l.key+": ["+strings.Join(qs, ", ")+"]")
		}
		fmt.Fprintf(&b, "    sandbox: {%s}\n", strings.Join(parts, ", "))
	}
	for _, sec := range []struct {
		key string
		m   map[string]string
	}{{"env", s.Env}, {"headers", s.Headers}} {
		if len(sec.m) == 0 {
			continue
		}
		fmt.Fprintf(&b, "    %s:\n", sec.key)
		var keys []string
		for k := range sec.m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "      %s: %s\n", q(k), q(sec.m[k]))
		}
	}
	return b.String()
}
