// Package detectlistings is the guard that inspects what servers list before the model
// reads it (seed risk 2, tool poisoning and shadowing): tools/list, prompts/list,
// resources/list, resources/templates/list, and the instructions of initialize. An item
// with a finding at or above the hide severity (default high) is removed from the
// listing; one at or above the flag severity (default medium) is kept and its findings
// are listed in the item's _meta ("io.portcullis/findings") and logged. Dangerous server
// instructions are removed. With several servers, a tool that copies another server's
// tool (its name, or its description under another name) is flagged as shadowing.
package detectlistings

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"

	trail "github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/detect"
	"github.com/portcullis-mcp/portcullis/internal/detect/canary"
	"github.com/portcullis-mcp/portcullis/internal/detect/poisoning"
	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

// Name is the guard's name in configuration and refusals.
const Name = "detect-listings"

// MetaKey lists findings in a flagged item's _meta.
const MetaKey = "io.portcullis/findings"

// Config is the guard's configuration section.
type Config struct {
	Hide       detect.Severity `yaml:"hide"`        // remove items at or above (default high)
	Flag       detect.Severity `yaml:"flag"`        // annotate items at or above (default medium)
	CanaryFile string          `yaml:"canary_file"` // its decoy tools are added to tools/list (default $PORTCULLIS_CANARY_FILE)
}

func init() {
	guard.Register(Name, true, func(cfg guard.Config, env guard.Env) (guard.Middleware, error) {
		var c Config
		if cfg != nil {
			if err := cfg.Decode(&c); err != nil {
				return nil, err
			}
		}
		g, err := Compile(c, env.Logger)
		if err != nil {
			return nil, err
		}
		path := c.CanaryFile
		if path == "" {
			path = os.Getenv(canary.EnvFile)
		}
		if path != "" {
			f, err := canary.Load(path)
			if err != nil {
				return nil, fmt.Errorf("canary_file: %w", err)
			}
			for name := range f.Decoys() {
				g.decoys = append(g.decoys, name)
			}
			sort.Strings(g.decoys)
		}
		return g.Middleware(), nil
	})
}

// Guard is the configured guard.
type Guard struct {
	c      Config
	d      *poisoning.Detector
	log    *slog.Logger
	decoys []string // decoy tools to list (see canary.DecoyTool); detect-args refuses their calls
	seen   *verdicts
}

// WithDecoys returns the guard listing decoy tools of these names.
func (g *Guard) WithDecoys(names ...string) *Guard {
	c := *g
	c.decoys = names
	return &c
}

// Compile fills defaults and checks the configuration.
func Compile(c Config, logger *slog.Logger) (*Guard, error) {
	if c.Hide == detect.Info {
		c.Hide = detect.High
	}
	if c.Flag == detect.Info {
		c.Flag = detect.Medium
	}
	if c.Flag > c.Hide {
		return nil, fmt.Errorf("flag (%s) must not be above hide (%s)", c.Flag, c.Hide)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Guard{c: c, d: poisoning.Default, log: logger.With("guard", Name), seen: &verdicts{}}, nil
}

var listField = map[string]string{
	"tools/list":               "tools",
	"prompts/list":             "prompts",
	"resources/list":           "resources",
	"resources/templates/list": "resourceTemplates",
}

// Middleware returns the guard around next.
func (g *Guard) Middleware() guard.Middleware {
	return func(next guard.Handler) guard.Handler {
		return guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
			m := c.Msg
			field, isList := listField[m.Method]
			if c.Direction != guard.Inbound || !m.IsRequest() || !isList && m.Method != "initialize" {
				return next.Handle(ctx, c)
			}
			resp, err := next.Handle(ctx, c)
			if err != nil || resp == nil || resp.Error != nil || len(resp.Result) == 0 {
				return resp, err
			}
			var out []byte
			if isList {
				out = g.Filter(ctx, c, field, resp.Result)
			} else {
				out = g.Instructions(ctx, c, resp.Result)
			}
			if &out[0] == &resp.Result[0] && len(out) == len(resp.Result) {
				return resp, nil
			}
			nr := *resp
			nr.Result = out
			return &nr, nil
		})
	}
}

func (g *Guard) logFindings(ctx context.Context, c *guard.Call, item string, fs []detect.Finding, action string) {
	for _, f := range fs { // into the listing's audit event; the pointer is within the item
		trail.Report(ctx, trail.Finding{Detector: f.Detector, Rule: f.Rule, Severity: f.Severity.String(), Pointer: f.Pointer,
			In: "listing", Evidence: f.Evidence, Message: item + " (" + action + "): " + f.Message})
	}
	for _, f := range fs {
		g.log.LogAttrs(ctx, slog.LevelWarn, "finding in listing", slog.String("upstream", c.Server), slog.String("method", c.Msg.Method),
			slog.String("item", item), slog.String("principal", c.Principal.ID), slog.String("detector", f.Detector),
			slog.String("rule", f.Rule), slog.String("severity", f.Severity.String()), slog.String("pointer", f.Pointer),
			slog.String("message", f.Message), slog.String("action", action))
	}
}

// Filter returns a list result without the items to hide and with flagged items
// annotated; the same slice when nothing changed.
func (g *Guard) Filter(ctx context.Context, c *guard.Call, field string, result []byte) []byte {
	arr, ok := jsonrpc.Lookup(result, field)
	if !ok {
		return result
	}
	var items [][]byte
	if err := jsonrpc.Elements(arr, func(e []byte) bool { items = append(items, e); return true }); err != nil {
		return result
	}
	findings := make([][]detect.Finding, len(items))
	var tools []poisoning.Tool
	for i, it := range items {
		fs, t := g.seen.check(g.d, it)
		if field == "tools" {
			t.Server = c.Server
			if c.Server == "" {
				if k := strings.Index(t.Name, "__"); k > 0 {
					t.Server, t.Name = t.Name[:k], t.Name[k+2:]
				}
			}
			tools = append(tools, t)
		}
		findings[i] = fs
	}
	if field == "tools" {
		for i, f := range poisoning.Shadowing(tools) {
			findings[i] = append(findings[i], f)
		}
	}
	changed := false
	out := make([]byte, 0, len(arr))
	out = append(out, '[')
	kept := 0
	for i, it := range items {
		name, _ := jsonrpc.LookupString(it, "name")
		if name == "" {
			name, _ = jsonrpc.LookupString(it, "uri")
		}
		fs := detect.AtLeast(findings[i], g.c.Flag)
		sev, _ := detect.Max(fs)
		switch {
		case len(fs) > 0 && sev >= g.c.Hide:
			g.logFindings(ctx, c, name, fs, "hidden")
			changed = true
			continue
		case len(fs) > 0:
			g.logFindings(ctx, c, name, fs, "flagged")
			it = annotate(it, fs)
			changed = true
		}
		if kept > 0 {
			out = append(out, ',')
		}
		out = append(out, it...)
		kept++
	}
	// Decoy tools go on the first page only, named as the gateway names the others.
	if _, paged := jsonrpc.Lookup(c.Msg.Params, "cursor"); field == "tools" && len(g.decoys) > 0 && !paged {
		prefix := ""
		if c.Server == "" && len(tools) > 0 && tools[0].Server != "" {
			prefix = tools[0].Server + "__"
		}
		for _, d := range g.decoys {
			if kept > 0 {
				out = append(out, ',')
			}
			out = append(out, canary.DecoyTool(prefix+d)...)
			kept++
		}
		changed = true
	}
	if !changed {
		return result
	}
	out = append(out, ']')
	res, err := jsonrpc.Set(result, field, out)
	if err != nil {
		return []byte(`{"` + field + `":[]}`) // fail closed: nothing unchecked
	}
	return res
}

// Instructions removes dangerous server instructions from an initialize result.
func (g *Guard) Instructions(ctx context.Context, c *guard.Call, result []byte) []byte {
	ins, ok := jsonrpc.LookupString(result, "instructions")
	if !ok || ins == "" {
		return result
	}
	fs := detect.AtLeast(g.d.CheckText(ins, "/instructions"), g.c.Flag)
	if len(fs) == 0 {
		return result
	}
	if sev, _ := detect.Max(fs); sev >= g.c.Hide {
		g.logFindings(ctx, c, "instructions", fs, "removed")
		if res, err := jsonrpc.Delete(result, "instructions"); err == nil {
			return res
		}
		return result
	}
	g.logFindings(ctx, c, "instructions", fs, "flagged")
	return result
}

func annotate(item []byte, fs []detect.Finding) []byte {
	out, err := jsonrpc.SetMeta(item, MetaKey, detect.MarshalFindings(fs))
	if err != nil {
		return item
	}
	return out
}
