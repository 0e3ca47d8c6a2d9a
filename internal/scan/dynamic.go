package scan

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/clientconfig"
	"github.com/portcullis-mcp/portcullis/internal/detect"
	"github.com/portcullis-mcp/portcullis/internal/detect/poisoning"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
	"github.com/portcullis-mcp/portcullis/internal/pins"
	"github.com/portcullis-mcp/portcullis/internal/upstream"
)

// Pins gives the approved definition hashes of a registered server.
type Pins interface {
	// Hash returns the approved hash of a definition (kind as in package pins), and false
	// when it has none.
	Hash(ctx context.Context, server, kind, name string) (string, bool, error)
}

// Options tune a scan.
type Options struct {
	Static  bool          // only static checks (no server is started or contacted)
	Active  bool          // call tools with injection payloads
	Timeout time.Duration // per server (start, handshake, listings); default 60s
	Pins    Pins          // nil: no pin comparison
	Logger  *slog.Logger
	// Progress, when set, is told before each server is scanned.
	Progress func(done, total int, server string)
	// HTTPClient reaches HTTP servers (default: a client that follows no redirects).
	HTTPClient *http.Client
	// Environ is the environment stdio servers start with (default upstream.Environ).
	Environ func(extra map[string]string) []string
	// StdioDial, when set, starts stdio servers (the command line passes the gateway's own
	// dialer, so that a scanned server starts exactly as `portcullis run` would start it,
	// sandbox included). env is the entry's environment with references resolved; g is
	// what the sandbox must grant besides, for the active checks' canaries.
	StdioDial func(t Target, env map[string]string, g Grant) upstream.Dial
}

// Grant is what a scanned server's sandbox grants for the active checks, and nothing
// else does: the directory of the canary file and of the command-injection markers
// (read and write), and the canary listener's port on the sandbox's loopback.
type Grant struct {
	ReadWrite []string
	Forward   []Forward
}

// Forward is a loopback port inside the sandbox that reaches the unix socket Socket of
// the scanner (see sandbox.Forward).
type Forward struct {
	Port   int
	Socket string
}

// Listing is what a server lists.
type Listing struct {
	Instructions string
	Tools        []json.RawMessage
	Prompts      []json.RawMessage
	Resources    []json.RawMessage
	Templates    []json.RawMessage
}

// Run scans targets and returns the report.
func Run(ctx context.Context, targets []Target, opts Options) *Report {
	if opts.Timeout <= 0 {
		opts.Timeout = 60 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if opts.Environ == nil {
		opts.Environ = upstream.Environ
	}
	rep := &Report{}
	var shadow []poisoning.Tool
	var shadowOwner []struct {
		res  *Result
		name string
	}
	// The same server configured in several clients is started once; its findings are
	// reported at each place, and it is not its own shadow.
	type done struct {
		res     *Result
		listing *Listing
	}
	seen := map[string]done{}
	for i, t := range targets {
		if opts.Progress != nil {
			opts.Progress(i, len(targets), t.Entry.Name)
		}
		res := &Result{Target: t, Server: t.Entry.Name, File: t.File}
		res.Findings = append(res.Findings, Static(t)...)
		if opts.Static || t.Entry.Disabled {
			rep.Results = append(rep.Results, res)
			continue
		}
		res.Dynamic = true
		key := identity(t.Entry)
		if prev, ok := seen[key]; ok {
			res.Tools, res.Prompts, res.Res, res.Error = prev.res.Tools, prev.res.Prompts, prev.res.Res, prev.res.Error
			for _, f := range prev.res.dynamic {
				loc := t.loc()
				loc.Item, loc.Pointer = f.Location.Item, f.Location.Pointer
				f.Location = loc
				res.Findings = append(res.Findings, f)
			}
			rep.Results = append(rep.Results, res)
			continue
		}
		n := len(res.Findings)
		l, err := scanServer(ctx, t, opts, res)
		if err != nil {
			res.Error = err.Error()
			res.Findings = append(res.Findings, Finding{Rule: "unscanned", Severity: detect.Medium, Location: t.loc(),
				Message: "the server could not be checked: " + err.Error()})
		}
		res.dynamic = append([]Finding(nil), res.Findings[n:]...)
		seen[key] = done{res, l}
		if l != nil {
			for _, raw := range l.Tools {
				_, tool := poisoning.Default.CheckTool(raw)
				tool.Server = t.Entry.Name
				shadow = append(shadow, tool)
				shadowOwner = append(shadowOwner, struct {
					res  *Result
					name string
				}{res, tool.Name})
			}
		}
		rep.Results = append(rep.Results, res)
	}
	for i, f := range poisoning.Shadowing(shadow) {
		o := shadowOwner[i]
		loc := o.res.Target.loc()
		loc.Item, loc.Pointer = "tool:"+o.name, f.Pointer
		o.res.Findings = append(o.res.Findings, Finding{Rule: "shadowing", Severity: f.Severity, Message: f.Message,
			Evidence: f.Evidence, Location: loc, Detector: f.Detector + "/" + f.Rule})
	}
	if opts.Progress != nil {
		opts.Progress(len(targets), len(targets), "")
	}
	return rep
}

// identity is what makes two entries the same server.
func identity(e clientconfig.Entry) string {
	b, _ := json.Marshal([]any{e.Transport, e.Command, e.Args, e.Env, e.Cwd, e.URL, e.Headers})
	return string(b)
}

// incoming answers what a server asks the scanner: nothing is granted.
func incoming(_ context.Context, m *jsonrpc.Message) *jsonrpc.Message {
	if m.IsRequest() {
		if m.Method == "ping" {
			return jsonrpc.NewResult(m.ID, map[string]any{})
		}
		return jsonrpc.NewError(m.ID, &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: "the scanner does not offer " + m.Method})
	}
	return nil
}

// expandEnv resolves ${VAR} and $VAR references of a client configuration from this
// process's environment.
func expandEnv(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = os.Expand(v, func(name string) string {
			if strings.Contains(name, ":") { // ${input:...}, ${env:X}
				if n, ok := strings.CutPrefix(name, "env:"); ok {
					return os.Getenv(n)
				}
				return ""
			}
			return os.Getenv(name)
		})
	}
	return out
}

// Dial returns the upstream dialer of a target; g is what its sandbox grants besides.
func Dial(t Target, opts Options, g Grant) upstream.Dial {
	e := t.Entry
	lim := jsonrpc.Limits{}
	switch e.Transport {
	case clientconfig.Stdio:
		if opts.StdioDial != nil {
			return opts.StdioDial(t, expandEnv(e.Env), g)
		}
		so := upstream.StdioOptions{Name: e.Name, Command: e.Command, Args: e.Args, Env: opts.Environ(expandEnv(e.Env)),
			Dir: e.Cwd, Limits: lim, Logger: opts.Logger}
		return func(ctx context.Context, in upstream.Incoming) (upstream.Transport, error) {
			return upstream.StartStdio(ctx, so, in)
		}
	default:
		h := http.Header{}
		for k, v := range expandEnv(e.Headers) {
			h.Set(k, v)
		}
		ho := upstream.HTTPOptions{Client: opts.HTTPClient, Header: h, Limits: lim, Name: e.Name}
		if e.Transport == clientconfig.SSE {
			return func(ctx context.Context, in upstream.Incoming) (upstream.Transport, error) {
				return upstream.NewSSE(ctx, e.URL, ho, in)
			}
		}
		return func(ctx context.Context, in upstream.Incoming) (upstream.Transport, error) {
			return upstream.NewStreamableHTTP(e.URL, ho, in)
		}
	}
}

// Connect opens an MCP session with a target; g is what its sandbox grants besides.
func Connect(ctx context.Context, t Target, opts Options, g Grant) (*upstream.Conn, error) {
	hello := upstream.Hello{ProtocolVersion: "2025-11-25", ClientInfo: json.RawMessage(`{"name":"portcullis-scan","version":"1"}`)}
	conn := upstream.NewConn(t.Entry.Name, Dial(t, opts, g), hello, incoming, opts.Logger)
	conn.MinBackoff, conn.MaxBackoff = time.Hour, time.Hour // a scan does not restart servers
	if err := conn.Start(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

func scanServer(parent context.Context, t Target, opts Options, res *Result) (*Listing, error) {
	ctx, cancel := context.WithTimeout(parent, opts.Timeout)
	defer cancel()
	if t.Entry.Transport != clientconfig.Stdio {
		res.Findings = append(res.Findings, CheckHTTP(ctx, t, opts)...)
	}
	// The active checks' canaries exist before the server starts: its sandbox must let it
	// reach them (and only them), or a traversal or SSRF would go unseen.
	var c *canaries
	var g Grant
	if opts.Active {
		var err error
		if c, err = newCanaries(); err != nil {
			return nil, fmt.Errorf("active checks: %w", err)
		}
		defer c.close()
		g = c.grant()
	}
	conn, err := Connect(ctx, t, opts, g)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	l, err := List(ctx, conn)
	if err != nil {
		return nil, err
	}
	for _, raw := range l.Tools {
		name, _ := jsonrpc.LookupString(raw, "name")
		res.Tools = append(res.Tools, name)
	}
	res.Prompts, res.Res = len(l.Prompts), len(l.Resources)+len(l.Templates)
	res.Findings = append(res.Findings, CheckListing(t, l)...)
	if opts.Pins != nil && t.Registry != "" {
		pf, err := comparePins(ctx, t, l, opts.Pins)
		if err != nil {
			return l, err
		}
		res.Findings = append(res.Findings, pf...)
	}
	if opts.Active {
		actx, acancel := context.WithTimeout(parent, 10*opts.Timeout) // many calls, each bounded
		defer acancel()
		af, err := Active(actx, t, conn, l, c)
		res.Findings = append(res.Findings, af...)
		if err != nil {
			return l, fmt.Errorf("active checks: %w", err)
		}
	}
	return l, nil
}

// List reads every listing of a server (following cursors).
func List(ctx context.Context, conn *upstream.Conn) (*Listing, error) {
	l := &Listing{}
	info := conn.Info()
	if info != nil {
		l.Instructions = info.Instructions
	}
	for _, x := range []struct {
		cap, method, field string
		dst                *[]json.RawMessage
	}{
		{"tools", "tools/list", "tools", &l.Tools},
		{"prompts", "prompts/list", "prompts", &l.Prompts},
		{"resources", "resources/list", "resources", &l.Resources},
		{"resources", "resources/templates/list", "resourceTemplates", &l.Templates},
	} {
		if info != nil && !info.Has(x.cap) {
			continue
		}
		cursor := ""
		for page := 0; page < 100; page++ {
			params := map[string]any{}
			if cursor != "" {
				params["cursor"] = cursor
			}
			resp, err := conn.Call(ctx, jsonrpc.NewRequest(jsonrpc.IntID(int64(page+1)), x.method, params))
			if err != nil {
				return l, fmt.Errorf("%s: %w", x.method, err)
			}
			if resp.Error != nil {
				if x.method == "resources/templates/list" && resp.Error.Code == jsonrpc.CodeMethodNotFound {
					break
				}
				return l, fmt.Errorf("%s: %s (code %d)", x.method, resp.Error.Message, resp.Error.Code)
			}
			arr, _ := jsonrpc.Lookup(resp.Result, x.field)
			if err := jsonrpc.Elements(arr, func(e []byte) bool {
				*x.dst = append(*x.dst, json.RawMessage(append([]byte(nil), e...)))
				return true
			}); err != nil && len(arr) > 0 {
				return l, fmt.Errorf("%s: bad %s: %w", x.method, x.field, err)
			}
			cursor, _ = jsonrpc.LookupString(resp.Result, "nextCursor")
			if cursor == "" {
				break
			}
		}
	}
	return l, nil
}

// CheckListing runs the listing detectors on what a server lists.
func CheckListing(t Target, l *Listing) []Finding {
	var out []Finding
	add := func(item string, fs []detect.Finding) {
		for _, f := range fs {
			if f.Severity < detect.Low {
				continue
			}
			loc := t.loc()
			loc.Item, loc.Pointer = item, f.Pointer
			rule := "tool-poisoning"
			if f.Rule == "shadowing" {
				rule = "shadowing"
			}
			out = append(out, Finding{Rule: rule, Severity: f.Severity, Message: f.Message, Evidence: f.Evidence,
				Location: loc, Detector: f.Detector + "/" + f.Rule})
		}
	}
	if l.Instructions != "" {
		add("instructions", poisoning.Default.CheckText(l.Instructions, ""))
	}
	for _, x := range []struct {
		kind, key string
		items     []json.RawMessage
	}{{"tool", "name", l.Tools}, {"prompt", "name", l.Prompts}, {"resource", "uri", l.Resources}, {"template", "uriTemplate", l.Templates}} {
		for _, raw := range x.items {
			name, _ := jsonrpc.LookupString(raw, x.key)
			fs, _ := poisoning.Default.CheckTool(raw)
			add(x.kind+":"+name, fs)
		}
	}
	return out
}

func comparePins(ctx context.Context, t Target, l *Listing, p Pins) ([]Finding, error) {
	var out []Finding
	for _, x := range []struct {
		kind, item string
		items      []json.RawMessage
	}{{pins.KindTool, "tool", l.Tools}, {pins.KindPrompt, "prompt", l.Prompts}, {pins.KindTemplate, "template", l.Templates}} {
		for _, raw := range x.items {
			name, _ := jsonrpc.LookupString(raw, pins.KeyField(x.kind))
			_, hash, err := pins.Canonical(x.kind, raw, "")
			if err != nil {
				continue
			}
			want, ok, err := p.Hash(ctx, t.Registry, x.kind, name)
			if err != nil {
				return out, err
			}
			loc := t.loc()
			loc.Item = x.item + ":" + name
			switch {
			case !ok:
				out = append(out, Finding{Rule: "unpinned", Severity: detect.Info, Location: loc, Message: "the definition has no approved pin"})
			case want != hash:
				out = append(out, Finding{Rule: "pin-mismatch", Severity: detect.High, Location: loc, Evidence: pins.Short(hash),
					Message: fmt.Sprintf("the definition differs from its pin %s (a rug pull?); see `portcullis pins diff`", pins.Short(want))})
			}
		}
	}
	return out, nil
}
