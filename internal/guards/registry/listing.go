package registry

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	trail "github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/detect"
	"github.com/portcullis-mcp/portcullis/internal/guard"
	auditguard "github.com/portcullis-mcp/portcullis/internal/guards/audit"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
	"github.com/portcullis-mcp/portcullis/internal/pins"
	reg "github.com/portcullis-mcp/portcullis/internal/registry"
	"github.com/portcullis-mcp/portcullis/internal/store"
)

// sep separates a server and a name in listings of several servers.
const sep = "__"

// listing checks every item of a list result against its pin and returns the result
// without the items held back, with collision and imitation findings in the kept items'
// _meta.
// gens are the servers' generations from before the listing was asked.
func (g *Guard) listing(ctx context.Context, c *guard.Call, next guard.Handler, kind, field string, resp *jsonrpc.Message, gens map[string]uint64) (*jsonrpc.Message, error) {
	if err := g.checker.Refresh(ctx); err != nil {
		return nil, g.fault(err)
	}
	arr, ok := jsonrpc.Lookup(resp.Result, field)
	if !ok {
		return resp, nil
	}
	var items [][]byte
	if err := jsonrpc.Elements(arr, func(e []byte) bool { items = append(items, e); return true }); err != nil {
		return g.replace(resp, field, []byte("[]"))
	}
	fanout := c.Server == ""
	var offered map[string]map[string]string // server -> template -> hash, for merged templates
	if fanout && kind == pins.KindTemplate {
		// Merged templates do not say which server offers them: ask each server.
		offered = map[string]map[string]string{}
		for _, s := range g.servers {
			hs, err := g.relist(ctx, c, next, s, kind, true)
			if err != nil {
				g.log.LogAttrs(ctx, slog.LevelWarn, "server's templates could not be checked; they are hidden",
					slog.String("upstream", s), slog.String("err", err.Error()))
				continue
			}
			offered[s] = hs
		}
	}
	cursor, hasCursor := jsonrpc.Lookup(resp.Result, "nextCursor")
	complete := !hasCursor || string(cursor) == "null"
	keep := make([]bool, len(items))
	keys := make([]store.PinKey, len(items))
	seen := map[string]map[string]bool{}
	changed := false
	for i, it := range items {
		name, _ := jsonrpc.LookupString(it, pins.KeyField(kind))
		if name == "" {
			changed = true // an item without a name cannot be pinned: hidden
			continue
		}
		server, local := c.Server, name
		if fanout && kind == pins.KindTemplate {
			keep[i] = g.templateApproved(kind, name, it, offered)
			changed = changed || !keep[i]
			continue
		}
		if fanout {
			j := strings.Index(name, sep)
			if j <= 0 {
				changed = true
				continue
			}
			server, local = name[:j], name[j+len(sep):]
		}
		k := store.PinKey{Server: server, Kind: kind, Name: local}
		keys[i] = k
		gen, known := gens[server]
		if !known {
			gen = ^uint64(0) // a server the gateway does not front: never recorded
		}
		v, _ := g.observe(ctx, c, k, it, gen)
		keep[i] = v.Allowed()
		if !keep[i] {
			changed = true
			g.log.LogAttrs(ctx, slog.LevelWarn, "definition held back from the listing", slog.String("upstream", server),
				slog.String("kind", kind), slog.String("name", local), slog.String("status", v.String()),
				slog.String("principal", c.Principal.ID))
		}
		if seen[server] == nil {
			seen[server] = map[string]bool{}
		}
		seen[server][local] = true
	}
	if complete && !(fanout && kind == pins.KindTemplate) {
		// What a complete listing no longer shows is no longer offered.
		if fanout {
			for _, s := range g.servers {
				g.state.forget(s, kind, seen[s])
			}
		} else {
			g.state.forget(c.Server, kind, seen[c.Server])
		}
	}
	var findings map[int][]detect.Finding
	if kind == pins.KindTool {
		findings = g.toolFindings(items, keys, keep)
	}
	if !changed && len(findings) == 0 {
		return resp, nil
	}
	out := make([]byte, 0, len(arr))
	out = append(out, '[')
	n := 0
	for i, it := range items {
		if !keep[i] {
			continue
		}
		if fs := findings[i]; len(fs) > 0 {
			g.reportFindings(ctx, c, keys[i], fs)
			if ann, err := jsonrpc.SetMeta(it, MetaKey, detect.MarshalFindings(fs)); err == nil {
				it = ann
			}
		}
		if n > 0 {
			out = append(out, ',')
		}
		out = append(out, it...)
		n++
	}
	out = append(out, ']')
	return g.replace(resp, field, out)
}

func (g *Guard) replace(resp *jsonrpc.Message, field string, arr []byte) (*jsonrpc.Message, error) {
	res, err := jsonrpc.Set(resp.Result, field, arr)
	if err != nil {
		return nil, guard.Deny(Name, jsonrpc.CodeGatewayError, "the listing could not be checked against the pins; refused")
	}
	nr := *resp
	nr.Result = res
	return &nr, nil
}

// templateApproved reports whether some server offers exactly this template definition,
// approved (merged listings of several servers); offered is what each server listed.
func (g *Guard) templateApproved(kind, name string, item []byte, offered map[string]map[string]string) bool {
	_, hash, err := pins.Canonical(kind, item, name)
	if err != nil {
		return false
	}
	for s, hs := range offered {
		k := store.PinKey{Server: s, Kind: kind, Name: name}
		if hs[name] == hash && g.checker.Allowed(k, hash) {
			return true
		}
	}
	return false
}

// toolFindings returns, by item, collisions (the same tool name offered by two servers)
// and imitation (a tool name that copies another server's name, or looks prefixed).
func (g *Guard) toolFindings(items [][]byte, keys []store.PinKey, keep []bool) map[int][]detect.Finding {
	out := map[int][]detect.Finding{}
	byName := map[string][]int{}
	for i := range items {
		if keep[i] && keys[i].Server != "" {
			byName[keys[i].Name] = append(byName[keys[i].Name], i)
		}
	}
	for name, is := range byName {
		if len(is) < 2 {
			continue
		}
		for _, i := range is {
			var others []string
			for _, j := range is {
				if keys[j].Server != keys[i].Server {
					others = append(others, keys[j].Server)
				}
			}
			if len(others) == 0 {
				continue
			}
			out[i] = append(out[i], detect.Finding{Detector: Name, Rule: "collision", Severity: detect.Medium, Pointer: "/name",
				Evidence: detect.Evidence(name), Message: fmt.Sprintf("servers %s and %s both offer a tool named %q", keys[i].Server, strings.Join(others, ", "), name)})
		}
	}
	for i := range items {
		if !keep[i] || keys[i].Server == "" {
			continue
		}
		if strings.Contains(keys[i].Name, sep) {
			out[i] = append(out[i], detect.Finding{Detector: Name, Rule: "imitation", Severity: detect.Medium, Pointer: "/name",
				Evidence: detect.Evidence(keys[i].Name), Message: "the tool's name contains \"__\", as if it were another server's tool"})
			continue
		}
		if other := reg.ToolImitates(keys[i].Name, keys[i].Server, g.servers); other != "" {
			out[i] = append(out[i], detect.Finding{Detector: Name, Rule: "imitation", Severity: detect.Medium, Pointer: "/name",
				Evidence: detect.Evidence(keys[i].Name), Message: fmt.Sprintf("the tool's name imitates server %s", other)})
		}
	}
	return out
}

func (g *Guard) reportFindings(ctx context.Context, c *guard.Call, k store.PinKey, fs []detect.Finding) {
	for _, f := range fs {
		g.log.LogAttrs(ctx, slog.LevelWarn, "finding in listing", slog.String("upstream", k.Server), slog.String("tool", k.Name),
			slog.String("rule", f.Rule), slog.String("message", f.Message), slog.String("principal", c.Principal.ID))
		trail.Report(ctx, trail.Finding{Detector: f.Detector, Rule: f.Rule, Severity: f.Severity.String(), Pointer: "/tools/" + k.Server + sep + k.Name + f.Pointer,
			In: "result", Evidence: f.Evidence, Message: f.Message})
	}
}

// callKey carries the call a definition was offered in, for the events it causes.
type callKey struct{}

func withCall(ctx context.Context, c *guard.Call) context.Context {
	return context.WithValue(ctx, callKey{}, c)
}

// maxDiff bounds the diff an event carries.
const maxDiff = 16 << 10

// report records what the checker decided: an alert for a changed definition (a rug
// pull), a warning for a new one held for review. A definition pinned on first use is
// only logged: the pin itself (who, when, what) is its record.
func (g *Guard) report(ctx context.Context, e pins.Event) {
	if e.Verdict == pins.PinnedNow {
		g.log.LogAttrs(ctx, slog.LevelInfo, "pinned on first use", slog.String("upstream", e.Key.Server),
			slog.String("kind", e.Key.Kind), slog.String("name", e.Key.Name), slog.String("hash", e.Hash))
		return
	}
	ev := &trail.Event{Kind: "security", Direction: "outbound", Server: e.Key.Server, Tool: e.Key.Name}
	if c, _ := ctx.Value(callKey{}).(*guard.Call); c != nil {
		ev.Principal, ev.AuthMethod, ev.Session, ev.Method = c.Principal.ID, c.Principal.Method, c.Session, c.Msg.Method
	}
	level := slog.LevelWarn
	switch e.Verdict {
	case pins.New:
		ev.Code, ev.Decision = trail.CodePinReview, trail.Denied
		ev.Message = fmt.Sprintf("%s %q of server %q is new: hidden until a person approves it (portcullis pins approve %s %s)\n%s",
			e.Key.Kind, e.Key.Name, e.Key.Server, e.Key.Server, e.Key.Name, cut(e.Diff))
	case pins.Changed:
		level = slog.LevelError
		ev.Code, ev.Decision = trail.CodeRugPull, trail.Denied
		ev.Message = fmt.Sprintf("%s %q of server %q changed since it was approved (%s; %s -> %s): hidden and its calls refused until a person approves it (portcullis pins approve %s %s)\n%s",
			e.Key.Kind, e.Key.Name, e.Key.Server, strings.Join(e.Fields, ", "), pins.Short(e.Old.Hash), pins.Short(e.Hash),
			e.Key.Server, e.Key.Name, cut(e.Diff))
		ev.Findings = []trail.Finding{{Detector: Name, Rule: "rug-pull", Severity: "critical", Pointer: "/" + strings.Join(e.Fields, ","),
			Message: fmt.Sprintf("definition changed: %s", strings.Join(e.Fields, ", "))}}
	default:
		return
	}
	g.log.LogAttrs(ctx, level, "pin: "+e.Verdict.String(), slog.String("code", ev.Code), slog.String("upstream", e.Key.Server),
		slog.String("kind", e.Key.Kind), slog.String("name", e.Key.Name), slog.String("hash", e.Hash), slog.String("diff", cut(e.Diff)))
	rec := g.rec
	if rec == nil {
		if b := auditguard.Current(); b != nil {
			rec = b
		}
	}
	if rec == nil {
		return
	}
	if err := rec.Record(context.WithoutCancel(ctx), ev); err != nil {
		g.log.Error("could not record a pin event in the audit trail", "code", ev.Code, "err", err)
	}
}

func cut(s string) string {
	if len(s) > maxDiff {
		return s[:maxDiff] + "\n… (cut)"
	}
	return s
}
