// Package authz is the guard that decides who may call what (seed risk 6, privilege
// abuse): CEL rules over the principal, the server, the tool, prompt or resource, the
// method, the tool's annotations and the call's arguments, compiled once by package policy.
//
// Calls (tools/call, prompts/get, resources/read, completion/complete and every other
// request) are decided before they reach the server: deny refuses, approve puts a hold on
// the call (guard.Hold) for the approval guard to settle, allow passes. Listings (tools/list, prompts/list, resources/list,
// resources/templates/list) are filtered after the server answers, so that a principal
// never sees what it may not use. Notifications and server-to-client messages pass.
package authz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/portcullis-mcp/portcullis/internal/config"
	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
	"github.com/portcullis-mcp/portcullis/internal/policy"
)

// Name is the guard's name in configuration and refusals.
const Name = "authz"

// shared keeps tool annotations across reloads: a reload builds a new guard, and the
// annotations are a property of the servers, not of the policy.
var shared = NewAnnotations()

func init() {
	guard.Register(Name, false, func(cfg guard.Config, env guard.Env) (guard.Middleware, error) {
		p, err := Load(cfg)
		if err != nil {
			return nil, err
		}
		if env.Logger != nil {
			for _, w := range p.Warnings() {
				env.Logger.Warn("authz policy: "+w.Msg, "guard", Name, "rule", w.Name, "index", w.Index)
			}
		}
		return New(p, Options{Annotations: shared, Logger: env.Logger}), nil
	})
}

// Load decodes a configuration section and compiles its policy. Errors in rules point at
// the rule (file:line) when the section can locate them.
func Load(cfg guard.Config) (*policy.Policy, error) {
	var c policy.Config
	if cfg != nil {
		if err := cfg.Decode(&c); err != nil {
			return nil, err
		}
	}
	p, err := policy.Compile(c)
	if err != nil {
		return nil, Locate(cfg, err)
	}
	return p, nil
}

// locator is what config.Section offers to place an error in the file.
type locator interface {
	Errorf(field, format string, args ...any) error
}

// Locate turns the *policy.Error values in err into errors at their place in the file.
func Locate(cfg guard.Config, err error) error {
	loc, ok := cfg.(locator)
	if !ok {
		return err
	}
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	out := make([]error, 0, len(list))
	for _, e := range list {
		out = append(out, locate1(loc, e))
	}
	return errors.Join(out...)
}

func locate1(loc locator, err error) error {
	var pe *policy.Error
	if !errors.As(err, &pe) {
		return err
	}
	if pe.Index < 0 {
		return loc.Errorf(pe.Field, "%s", pe.Msg)
	}
	located := loc.Errorf("rules", "rule %q: %s", pe.Name, pe.Msg)
	var ce *config.Error
	if errors.As(located, &ce) {
		if pe.Line > 0 {
			ce.Line, ce.Column = pe.Line, pe.Column
		}
		ce.Field = fmt.Sprintf("guards.%s.rules[%d]", Name, pe.Index)
		if pe.Field != "" {
			ce.Field += "." + pe.Field
		}
	}
	return located
}

// Options parameterize the guard.
type Options struct {
	// Annotations remembers tool annotations seen in listings; nil: a store of its own.
	Annotations *Annotations
	Logger      *slog.Logger
}

// New returns the guard for a compiled policy.
func New(p *policy.Policy, o Options) guard.Middleware {
	if o.Annotations == nil {
		o.Annotations = NewAnnotations()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return func(next guard.Handler) guard.Handler {
		return &authz{p: p, next: next, ann: o.Annotations, log: o.Logger.With("guard", Name)}
	}
}

type authz struct {
	p    *policy.Policy
	next guard.Handler
	ann  *Annotations
	log  *slog.Logger
}

// passed are requests the guard never decides: the protocol's own housekeeping.
var passed = map[string]bool{"initialize": true, "ping": true}

func (g *authz) Handle(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
	m := c.Msg
	if c.Direction != guard.Inbound || !m.IsRequest() || passed[m.Method] {
		return g.next.Handle(ctx, c)
	}
	if callMethod, ok := policy.ListMethods[m.Method]; ok {
		resp, err := g.next.Handle(ctx, c)
		if err != nil || resp == nil || resp.Error != nil || len(resp.Result) == 0 {
			return resp, err
		}
		return g.filter(c, callMethod, resp), nil
	}
	in := policy.Input{Principal: principal(c), Server: c.Server, Tool: c.Name, Method: m.Method}
	if m.Method == "tools/call" || m.Method == "prompts/get" {
		if raw, ok := jsonrpc.Lookup(m.Params, "arguments"); ok {
			switch {
			case len(raw) > 0 && raw[0] == '{':
				in.Args = raw
			case string(raw) == "null":
			default:
				return nil, guard.Deny(Name, jsonrpc.CodeInvalidParams, "%s: arguments must be an object", m.Method)
			}
		}
	}
	if m.Method == "tools/call" && g.p.UsesAnnotations() {
		in.Annotations, _ = g.ann.Get(c.Server, c.Name)
	}
	d := g.p.Decide(&in)
	if d.Effect == policy.Allow {
		return g.next.Handle(ctx, c)
	}
	if d.Effect == policy.Approve {
		// Held: the approval guard asks a person and passes the call on only if approved.
		c.Holds = append(c.Holds, Hold(d))
		return g.next.Handle(ctx, c)
	}
	if d.Err != nil {
		g.log.LogAttrs(ctx, slog.LevelWarn, "rule failed to evaluate; it failed closed",
			slog.String("rule", d.Rule), slog.String("principal", in.Principal.ID), slog.String("upstream", in.Server),
			slog.String("method", in.Method), slog.String("tool", in.Tool), slog.String("err", d.Err.Error()))
	}
	return nil, Refusal(d, &in)
}

// Hold is the hold for an approve decision.
func Hold(d policy.Decision) guard.Hold {
	reason := "no rule allows it; default approve"
	if d.Index >= 0 {
		reason = fmt.Sprintf("rule %q", d.Rule)
		if d.Err != nil {
			reason += " (its condition failed, which counts as matching)"
		}
	}
	if d.Message != "" {
		reason += ": " + d.Message
	}
	return guard.Hold{Guard: Name, Reason: reason, Approvers: d.Approvers}
}

// Refusal is the refusal for a decision that is not allow. An approve decision is held
// (Hold), not refused; its refusal is for tools that explain the policy.
func Refusal(d policy.Decision, in *policy.Input) *guard.Refusal {
	what := describe(in)
	rule := d.Rule
	if d.Index < 0 {
		rule = "default"
	}
	var r *guard.Refusal
	switch {
	case d.Effect == policy.Approve && d.Index < 0:
		r = guard.Deny(Name, jsonrpc.CodeApprovalRequired, "%s by %q needs human approval (no rule allows it; default approve)", what, in.Principal.ID)
	case d.Effect == policy.Approve:
		r = guard.Deny(Name, jsonrpc.CodeApprovalRequired, "%s by %q needs human approval (rule %q)", what, in.Principal.ID, d.Rule)
	case d.Index < 0:
		r = guard.Deny(Name, jsonrpc.CodeDenied, "%s is not allowed for %q: no rule allows it (default deny)", what, in.Principal.ID)
	case d.Err != nil:
		r = guard.Deny(Name, jsonrpc.CodeDenied, "%s is denied for %q: rule %q could not be evaluated, and a deny rule that fails counts as matching", what, in.Principal.ID, d.Rule)
	default:
		r = guard.Deny(Name, jsonrpc.CodeDenied, "%s is denied for %q by rule %q", what, in.Principal.ID, d.Rule)
	}
	if d.Message != "" {
		r.Message += ": " + d.Message
	}
	r.Data = map[string]any{"rule": rule, "effect": d.Effect.String()}
	return r
}

func describe(in *policy.Input) string {
	var b strings.Builder
	b.WriteString(in.Method)
	if in.Tool != "" {
		fmt.Fprintf(&b, " of %q", in.Tool)
	}
	if in.Server != "" {
		fmt.Fprintf(&b, " on server %q", in.Server)
	}
	return b.String()
}

func principal(c *guard.Call) policy.Principal {
	return policy.Principal{ID: c.Principal.ID, Groups: c.Principal.Groups, Method: c.Principal.Method, Claims: c.Principal.Claims}
}

// listShape says where a list result keeps its items and their names.
var listShape = map[string]struct{ field, key string }{
	"tools/list":               {"tools", "name"},
	"prompts/list":             {"prompts", "name"},
	"resources/list":           {"resources", "uri"},
	"resources/templates/list": {"resourceTemplates", "uriTemplate"},
}

// sep separates a server and a name in listings of several servers.
const sep = "__"

// filter removes from a list result the items the principal may not use, deciding each as
// the call that would use it, with any arguments. Tool annotations are recorded on the way.
// With one server (c.Server set) names are the server's own; with several, tool and prompt
// names are prefixed "server__", and resources are decided with no server (rules limited to
// servers do not show them; reading them is decided with the right server).
func (g *authz) filter(c *guard.Call, callMethod string, resp *jsonrpc.Message) *jsonrpc.Message {
	shape := listShape[c.Msg.Method]
	arr, ok := jsonrpc.Lookup(resp.Result, shape.field)
	if !ok {
		return resp
	}
	p := principal(c)
	out := make([]byte, 0, len(arr))
	out = append(out, '[')
	kept, dropped := 0, 0
	err := jsonrpc.Elements(arr, func(item []byte) bool {
		name, ok := jsonrpc.LookupString(item, shape.key)
		server, local := c.Server, name
		if ok && server == "" && shape.key == "name" {
			if i := strings.Index(name, sep); i > 0 {
				server, local = name[:i], name[i+len(sep):]
			}
		}
		in := policy.Input{Principal: p, Server: server, Tool: local, Method: callMethod}
		if ok && c.Msg.Method == "tools/list" {
			raw, _ := jsonrpc.Lookup(item, "annotations")
			in.Annotations = g.ann.Record(server, local, raw)
		}
		if !ok {
			dropped++ // an item without a name cannot be decided
			return true
		}
		if visible, _ := g.p.Visible(&in); !visible {
			dropped++
			return true
		}
		if kept > 0 {
			out = append(out, ',')
		}
		out = append(out, item...)
		kept++
		return true
	})
	if err != nil {
		// Not an array: nothing the client could use as a listing; pass it as the server
		// sent it would show what the policy has not checked.
		out = []byte("[]")
	} else if dropped == 0 {
		return resp
	} else {
		out = append(out, ']')
	}
	res, serr := jsonrpc.Set(resp.Result, shape.field, out)
	if serr != nil {
		return jsonrpc.NewError(resp.ID, jsonrpc.Errorf(jsonrpc.CodeGatewayError, "the listing could not be filtered"))
	}
	nr := *resp
	nr.Result = res
	return &nr
}

// Annotations remembers the annotations of tools as listed, by server and tool, with MCP's
// defaults filled in (policy.AnnotationDefaults). It is safe for concurrent use.
type Annotations struct {
	mu sync.RWMutex
	m  map[string]annotationEntry
}

type annotationEntry struct {
	raw string
	ann map[string]any
}

// maxAnnotations bounds the tools remembered; beyond it new tools get the defaults.
const maxAnnotations = 1 << 16

// NewAnnotations returns an empty store.
func NewAnnotations() *Annotations {
	return &Annotations{m: map[string]annotationEntry{}}
}

var defaults = policy.AnnotationDefaults(nil)

// Get returns the annotations of a tool, and whether it was ever listed. A tool never
// listed gets the defaults: destructive and open-world, as MCP says of a tool that does not
// say otherwise.
func (a *Annotations) Get(server, tool string) (map[string]any, bool) {
	a.mu.RLock()
	e, ok := a.m[server+"\x00"+tool]
	a.mu.RUnlock()
	if !ok {
		return defaults, false
	}
	return e.ann, true
}

// Record remembers the raw annotations object of a listed tool (nil or not an object: none)
// and returns them as rules see them.
func (a *Annotations) Record(server, tool string, raw []byte) map[string]any {
	key := server + "\x00" + tool
	a.mu.RLock()
	e, ok := a.m[key]
	a.mu.RUnlock()
	if ok && e.raw == string(raw) {
		return e.ann
	}
	var ann map[string]any
	if len(raw) > 0 && raw[0] == '{' {
		v, err := policy.DecodeJSON(raw)
		if m, ok := v.(map[string]any); err == nil && ok {
			ann = m
		}
	}
	e = annotationEntry{raw: string(raw), ann: policy.AnnotationDefaults(ann)}
	a.mu.Lock()
	if _, exists := a.m[key]; exists || len(a.m) < maxAnnotations {
		a.m[key] = e
	}
	a.mu.Unlock()
	return e.ann
}
