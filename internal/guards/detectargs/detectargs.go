// Package detectargs is the guard that inspects the arguments of tools/call (and
// prompts/get) before they reach the server: path traversal, SSRF, command injection,
// secrets and canary tokens leaving in arguments (seed risks 3, 4, 5, 7). A call with a
// finding at or above the block severity (default high) is refused with the findings in the
// error data; findings below it are logged. What each parameter is (a path, a URL, a
// command) comes from the tool's listing as it passed through the gateway, or from the
// parameter's name when the tool was never listed.
package detectargs

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	trail "github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/detect"
	"github.com/portcullis-mcp/portcullis/internal/detect/canary"
	"github.com/portcullis-mcp/portcullis/internal/detect/cmdinj"
	"github.com/portcullis-mcp/portcullis/internal/detect/pathtrav"
	"github.com/portcullis-mcp/portcullis/internal/detect/secrets"
	"github.com/portcullis-mcp/portcullis/internal/detect/ssrf"
	"github.com/portcullis-mcp/portcullis/internal/detect/toolinfo"
	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

// Name is the guard's name in configuration and refusals.
const Name = "detect-args"

// Config is the guard's configuration section.
type Config struct {
	Roots           []string        `yaml:"roots"`            // allowed roots for path arguments; none: no root restriction
	ResolveSymlinks bool            `yaml:"resolve_symlinks"` // follow symlinks of local paths
	AllowHosts      []string        `yaml:"allow_hosts"`      // hosts SSRF checks never flag ("x.example", ".example" for subdomains)
	AllowCIDRs      []string        `yaml:"allow_cidrs"`      // address ranges SSRF checks never flag
	AllowPrivate    bool            `yaml:"allow_private"`    // private ranges allowed (loopback and metadata never)
	Resolve         bool            `yaml:"resolve"`          // resolve host names (a DNS lookup per URL argument)
	ResolveTimeout  time.Duration   `yaml:"resolve_timeout"`  // default 500ms
	CommandTools    []string        `yaml:"command_tools"`    // "server/tool" globs of tools that run commands (besides those detected)
	Block           detect.Severity `yaml:"block"`            // refuse at or above (default high)
	// Approve, when set, holds calls with a finding at or above it (and below block) for a
	// person's approval (guard.Hold; the approval guard asks). Unset: such calls pass.
	Approve    *detect.Severity `yaml:"approve"`
	Disable    []string         `yaml:"disable"`     // detectors off: pathtrav, ssrf, cmdinj, canary, secrets
	CanaryFile string           `yaml:"canary_file"` // canary tokens and decoy tools (default $PORTCULLIS_CANARY_FILE)
	// ClientRoots: with no roots configured, path arguments must stay in the roots the
	// client declared (roots/list, asked once per session and again after
	// notifications/roots/list_changed). Default true; false turns it off.
	ClientRoots        *bool         `yaml:"client_roots"`
	ClientRootsTimeout time.Duration `yaml:"client_roots_timeout"` // default 2s; a client that does not answer gets no root restriction
}

// Extra scans every string argument (canary tokens).
type Extra func(value, pointer string) []detect.Finding

// Options are what New needs besides the configuration.
type Options struct {
	Catalog *toolinfo.Catalog // tools as listed; nil: a catalog of its own
	Extras  []Extra
	Decoys  map[string]canary.Canary // decoy tools by name: a call is refused as a critical alert
	Logger  *slog.Logger
}

// shared keeps listings across reloads.
var shared = toolinfo.NewCatalog()

func init() {
	guard.Register(Name, true, func(cfg guard.Config, env guard.Env) (guard.Middleware, error) {
		c := Config{Block: detect.High}
		if cfg != nil {
			if err := cfg.Decode(&c); err != nil {
				return nil, err
			}
		}
		o := Options{Catalog: shared, Logger: env.Logger}
		if !slices.Contains(c.Disable, "canary") {
			f, err := canaries(c.CanaryFile)
			if err != nil {
				return nil, err
			}
			if s := canary.NewScanner(f); s != nil {
				o.Extras = append(o.Extras, s.Scan)
			}
			o.Decoys = f.Decoys()
		}
		return New(c, o)
	})
}

// canaries loads the canary file (path, or $PORTCULLIS_CANARY_FILE); nil when none.
func canaries(path string) (*canary.File, error) {
	if path == "" {
		path = os.Getenv(canary.EnvFile)
	}
	if path == "" {
		return nil, nil
	}
	f, err := canary.Load(path)
	if err != nil {
		return nil, fmt.Errorf("canary_file: %w", err)
	}
	return f, nil
}

// Guard is the configured guard.
type Guard struct {
	c       Config
	paths   *pathtrav.Checker
	urls    *ssrf.Checker
	catalog *toolinfo.Catalog
	extras  []Extra
	decoys  map[string]canary.Canary
	off     map[string]bool
	roots   *clientRoots // nil: roots configured, or client roots off
	log     *slog.Logger
	lists   *recorded
}

// recorded is the SHA-256 of the tools listing each server's last Record put into the
// catalog: every session of a stateful server lists the same tools, and parsing them again
// was a tenth of a session's start.
type recorded struct {
	mu   sync.Mutex
	last map[string][sha256.Size]byte
}

// Compile checks a configuration and builds the checks.
func Compile(c Config, o Options) (*Guard, error) {
	var prefixes []netip.Prefix
	for _, s := range c.AllowCIDRs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("allow_cidrs: %w", err)
		}
		prefixes = append(prefixes, p)
	}
	for _, r := range c.Roots {
		if !strings.HasPrefix(r, "/") && !strings.HasPrefix(r, "~") && !(len(r) > 2 && r[1] == ':') {
			return nil, fmt.Errorf("roots: %q is not an absolute path", r)
		}
	}
	for _, g := range c.CommandTools {
		if _, err := path.Match(g, ""); err != nil {
			return nil, fmt.Errorf("command_tools: bad pattern %q", g)
		}
	}
	off := map[string]bool{}
	for _, d := range c.Disable {
		switch d {
		case "pathtrav", "ssrf", "cmdinj", "canary", "secrets":
			off[d] = true
		default:
			return nil, fmt.Errorf("disable: unknown detector %q (pathtrav, ssrf, cmdinj, canary, secrets)", d)
		}
	}
	if c.ResolveTimeout < 0 {
		return nil, fmt.Errorf("resolve_timeout must not be negative")
	}
	if c.Approve != nil && *c.Approve >= c.Block {
		return nil, fmt.Errorf("approve (%s) must be below block (%s): calls at block are refused, not held", *c.Approve, c.Block)
	}
	if c.ClientRootsTimeout < 0 {
		return nil, fmt.Errorf("client_roots_timeout must not be negative")
	}
	if c.ClientRootsTimeout == 0 {
		c.ClientRootsTimeout = 2 * time.Second
	}
	if o.Catalog == nil {
		o.Catalog = toolinfo.NewCatalog()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	g := &Guard{
		c:       c,
		paths:   pathtrav.New(pathtrav.Options{Roots: c.Roots, ResolveSymlinks: c.ResolveSymlinks}),
		urls:    ssrf.New(ssrf.Options{AllowHosts: c.AllowHosts, AllowPrefixes: prefixes, AllowPrivate: c.AllowPrivate, Resolve: c.Resolve, Timeout: c.ResolveTimeout}),
		catalog: o.Catalog,
		extras:  o.Extras,
		decoys:  o.Decoys,
		off:     off,
		log:     o.Logger.With("guard", Name),
		lists:   &recorded{last: map[string][sha256.Size]byte{}},
	}
	if len(c.Roots) == 0 && (c.ClientRoots == nil || *c.ClientRoots) && !off["pathtrav"] {
		g.roots = newClientRoots(c.ClientRootsTimeout, c.ResolveSymlinks)
	}
	return g, nil
}

// New returns the guard as a middleware.
func New(c Config, o Options) (guard.Middleware, error) {
	g, err := Compile(c, o)
	if err != nil {
		return nil, err
	}
	return func(next guard.Handler) guard.Handler { return &handler{g: g, next: next} }, nil
}

type handler struct {
	g    *Guard
	next guard.Handler
}

func (h *handler) Handle(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
	m := c.Msg
	if c.Direction != guard.Inbound {
		return h.next.Handle(ctx, c)
	}
	if m.Method == "notifications/roots/list_changed" && h.g.roots != nil {
		h.g.roots.forget(c.Session)
	}
	if !m.IsRequest() {
		return h.next.Handle(ctx, c)
	}
	switch m.Method {
	case "tools/list":
		resp, err := h.next.Handle(ctx, c)
		if err == nil && resp != nil && resp.Error == nil {
			h.g.Record(c.Server, resp.Result)
		}
		return resp, err
	case "tools/call", "prompts/get":
	default:
		return h.next.Handle(ctx, c)
	}
	var fs []detect.Finding
	if d, ok := h.g.decoys[c.Name]; ok && m.Method == "tools/call" {
		fs = append(fs, canary.DecoyCalled(d, "/name"))
	}
	args, ok := jsonrpc.Lookup(m.Params, "arguments")
	if ok && len(args) > 0 && args[0] == '{' {
		paths := h.g.paths
		if h.g.roots != nil {
			paths = h.g.roots.checker(ctx, c, h.g.log)
		}
		fs = append(fs, h.g.check(ctx, paths, c.Server, c.Name, m.Method == "tools/call", args)...)
	}
	if len(fs) == 0 {
		return h.next.Handle(ctx, c)
	}
	if r := h.report(ctx, c, fs); r != nil {
		return nil, r
	}
	return h.next.Handle(ctx, c)
}

// report records and logs the findings in a call's arguments, adds the hold for those at
// the approval severity, and returns the refusal when some block the call. (Apart from
// Handle, so that the rest of the chain does not run on top of this frame.)
func (h *handler) report(ctx context.Context, c *guard.Call, fs []detect.Finding) *guard.Refusal {
	m := c.Msg
	block := detect.AtLeast(fs, h.g.c.Block)
	for _, f := range fs { // into the call's audit event, allowed or not
		ptr := f.Pointer
		if p, ok := strings.CutPrefix(ptr, "/arguments"); ok && (p == "" || p[0] == '/') {
			ptr = p
		}
		trail.Report(ctx, trail.Finding{Detector: f.Detector, Rule: f.Rule, Severity: f.Severity.String(), Pointer: ptr,
			In: "arguments", Evidence: f.Evidence, Message: f.Message})
	}
	for _, f := range fs {
		level, msg := slog.LevelWarn, "finding in arguments"
		if f.Severity == detect.Critical {
			level, msg = slog.LevelError, "ALERT: critical finding in arguments"
		}
		h.g.log.LogAttrs(ctx, level, msg, slog.String("upstream", c.Server), slog.String("method", m.Method),
			slog.String("tool", c.Name), slog.String("principal", c.Principal.ID), slog.String("detector", f.Detector),
			slog.String("rule", f.Rule), slog.String("severity", f.Severity.String()), slog.String("pointer", f.Pointer),
			slog.String("message", f.Message), slog.Bool("blocked", len(block) > 0))
	}
	if len(block) == 0 {
		if a := h.g.c.Approve; a != nil {
			if held := detect.AtLeast(fs, *a); len(held) > 0 {
				c.Holds = append(c.Holds, Hold(held))
			}
		}
		return nil
	}
	return Refusal(m.Method, c.Name, block)
}

// Hold is the hold for findings at the approval severity: the person asked sees what was
// found and where.
func Hold(fs []detect.Finding) guard.Hold {
	top := fs[0]
	for _, f := range fs[1:] {
		if f.Severity > top.Severity {
			top = f
		}
	}
	reason := fmt.Sprintf("%s finding (%s) at %s: %s", top.Severity, top.Detector, top.Pointer, top.Message)
	if len(fs) > 1 {
		reason += fmt.Sprintf(", and %d more", len(fs)-1)
	}
	return guard.Hold{Guard: Name, Reason: reason}
}

// Refusal is the refusal for blocking findings.
func Refusal(method, tool string, fs []detect.Finding) *guard.Refusal {
	top := fs[0]
	for _, f := range fs[1:] {
		if f.Severity > top.Severity {
			top = f
		}
	}
	arg := strings.TrimPrefix(strings.TrimPrefix(top.Pointer, "/arguments"), "/")
	if i := strings.IndexByte(arg, '/'); i >= 0 {
		arg = arg[:i]
	}
	what := method
	if tool != "" {
		what = fmt.Sprintf("%s of %q", method, tool)
	}
	msg := fmt.Sprintf("%s was refused: %s (argument %q)", what, top.Message, arg)
	if len(fs) > 1 {
		msg += fmt.Sprintf(", and %d more finding(s)", len(fs)-1)
	}
	r := guard.Deny(Name, jsonrpc.CodeDenied, "%s", msg)
	r.Data = map[string]any{"findings": detect.Data(fs)}
	return r
}

// Record remembers the tools of a tools/list result. With server "" (a merged listing of
// several servers), names are "server__tool".
func (g *Guard) Record(server string, result []byte) {
	arr, ok := jsonrpc.Lookup(result, "tools")
	if !ok {
		return
	}
	sum := sha256.Sum256(arr)
	g.lists.mu.Lock()
	last, seen := g.lists.last[server]
	g.lists.mu.Unlock()
	if seen && last == sum {
		return // the catalog holds exactly these definitions
	}
	defer func() {
		g.lists.mu.Lock()
		if _, ok := g.lists.last[server]; ok || len(g.lists.last) < maxRecordedServers {
			g.lists.last[server] = sum
		}
		g.lists.mu.Unlock()
	}()
	jsonrpc.Elements(arr, func(item []byte) bool {
		t, ok := toolinfo.Parse(item)
		if !ok {
			return true
		}
		s := server
		if s == "" {
			if i := strings.Index(t.Name, "__"); i > 0 {
				s, t.Name = t.Name[:i], t.Name[i+2:]
			}
		}
		g.catalog.Put(s, t)
		return true
	})
}

// maxRecordedServers bounds the listings Record remembers (one per server name).
const maxRecordedServers = 1024

// Check returns the findings for the arguments (a raw JSON object) of a call of tool on
// server. isTool is false for prompts/get (arguments are text for a prompt template).
func (g *Guard) Check(ctx context.Context, server, tool string, isTool bool, args []byte) []detect.Finding {
	return g.check(ctx, g.paths, server, tool, isTool, args)
}

func (g *Guard) check(ctx context.Context, paths *pathtrav.Checker, server, tool string, isTool bool, args []byte) []detect.Finding {
	t, ok := g.catalog.Get(server, tool)
	if !ok {
		t = toolinfo.Generic(tool, jsonrpc.Keys(args))
	}
	if !t.Command && len(g.c.CommandTools) > 0 {
		for _, pat := range g.c.CommandTools {
			if m, _ := path.Match(pat, server+"/"+tool); m {
				t.Command = true
				break
			}
		}
		if t.Command {
			t = withCommand(t, jsonrpc.Keys(args))
		}
	}
	var out []detect.Finding
	detect.Walk(args, func(v *detect.Value) bool {
		p := v.Path()
		if len(p) == 0 {
			return true
		}
		param := p[0]
		ptr := "/arguments" + v.Pointer()
		role := toolinfo.Text
		if isTool {
			role = t.RoleOf(param)
		}
		if !g.off["pathtrav"] {
			out = append(out, paths.Check(v.Text, ptr, toolinfo.IsPathLike(role, param))...)
		}
		if !g.off["secrets"] {
			for _, f := range secrets.Default.Scan(v.Text, ptr) {
				if f.Rule == secrets.TokenRule {
					continue // ids, hashes and cursors are random-looking too
				}
				f.Message = "a secret is leaving in the arguments: " + f.Message
				out = append(out, f)
			}
		}
		if !g.off["ssrf"] {
			out = append(out, g.urls.Check(ctx, v.Text, ptr, role == toolinfo.URL)...)
		}
		if !g.off["cmdinj"] && isTool {
			switch role {
			case toolinfo.CommandLine:
				out = append(out, cmdinj.Check(v.Text, ptr, cmdinj.CommandLine)...)
			case toolinfo.CommandArg:
				out = append(out, cmdinj.Check(v.Text, ptr, cmdinj.CommandArg)...)
			}
		}
		for _, e := range g.extras {
			out = append(out, e(v.Text, ptr)...)
		}
		return true
	})
	return out
}

func withCommand(t toolinfo.Tool, params []string) toolinfo.Tool {
	g := toolinfo.Generic("exec", params) // a name that marks it as running commands
	g.Name = t.Name
	g.Description = t.Description
	return g
}
