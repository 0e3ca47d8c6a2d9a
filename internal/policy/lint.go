package policy

import (
	"fmt"
	"slices"
	"strings"

	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
)

// DecidedMethods are the methods the authz guard decides on, each call by itself. Any other
// request method is decided too (a rule can name it), but these are the ones MCP defines.
var DecidedMethods = []string{
	"tools/call", "prompts/get", "resources/read", "resources/subscribe", "resources/unsubscribe",
	"completion/complete", "logging/setLevel",
	"tasks/get", "tasks/result", "tasks/list", "tasks/cancel",
}

// ListMethods are filtered, never decided: each listed item is decided as the call that
// would use it.
var ListMethods = map[string]string{
	"tools/list":               "tools/call",
	"prompts/list":             "prompts/get",
	"resources/list":           "resources/read",
	"resources/templates/list": "resources/read",
}

func (p *Policy) lint() []*Error {
	var ws []*Error
	warn := func(r *rule, format string, args ...any) {
		ws = append(ws, &Error{Index: r.index, Name: r.src.Name, Line: r.src.Line, Column: r.src.Column, Msg: fmt.Sprintf(format, args...)})
	}
	if len(p.rules) == 0 && p.def == Deny {
		ws = append(ws, &Error{Index: -1, Field: "rules", Msg: "no rules and default deny: every call is refused"})
	}
	for _, r := range p.rules {
		if r.never {
			warn(r, "the condition is the literal false: the rule never matches")
		}
		for _, m := range r.methods {
			lit, ok := m.literal()
			if !ok {
				continue
			}
			if call, list := ListMethods[lit]; list {
				warn(r, "method %q is never decided: listings are filtered by deciding each item as %s", lit, call)
			} else if !slices.Contains(DecidedMethods, lit) {
				warn(r, "method %q is not one MCP defines for clients (known: %s)", lit, strings.Join(DecidedMethods, ", "))
			}
		}
		if r.refs&refAnnotations != 0 {
			if !r.onlyTools() {
				warn(r, "the condition reads annotations, which only tools have, but the rule is not limited to methods: [tools/call]; for other calls annotations is empty, so a condition like annotations.destructiveHint fails (and a failing %s rule matches)", r.effect)
			}
			read, _ := r.selectedFields("annotations")
			for _, f := range read {
				if !slices.Contains(ToolAnnotationFields, f) {
					warn(r, "annotations.%s is not an annotation MCP defines (%s)", f, strings.Join(ToolAnnotationFields, ", "))
				}
			}
		}
	}
	for _, r := range p.rules {
		if r.effect == Allow || r.refs&refArgs == 0 {
			continue
		}
		read, tested := r.selectedFields("args")
		for _, f := range read {
			if !slices.Contains(tested, f) {
				warn(r, "reads args.%s without has(args.%s): for a call without %s the condition fails, and a failing %s rule matches; write has(args.%s) && ... or args.?%s.orValue(...)", f, f, f, r.effect, f, f)
			}
		}
	}
	// Shadowing: a rule that can only match where an unconditional rule of an effect at least
	// as strong matches never decides anything (deny wins over approve over allow; among
	// rules of one effect the first in the file is the one named).
	for i, r := range p.rules {
		if r.never || r.effect == NoEffect {
			continue
		}
		for j, s := range p.rules {
			if i == j || !s.always || s.effect == NoEffect {
				continue
			}
			stronger := s.effect < r.effect
			same := s.effect == r.effect && j < i
			if !stronger && !same {
				continue
			}
			if s.servers.covers(r.servers) && s.tools.covers(r.tools) && s.methods.covers(r.methods) {
				if stronger {
					warn(r, "unreachable: wherever it matches, rules[%d] %q (%s, no condition) matches too and wins", j, s.src.Name, s.effect)
				} else {
					warn(r, "redundant: wherever it matches, the earlier rules[%d] %q (%s, no condition) matches too and is the one named", j, s.src.Name, s.effect)
				}
				break
			}
		}
	}
	return ws
}

// onlyTools reports whether the rule's methods are limited to tools/call.
func (r *rule) onlyTools() bool {
	if len(r.methods) == 0 {
		return false
	}
	for i := range r.methods {
		if lit, ok := r.methods[i].literal(); !ok || lit != "tools/call" {
			return false
		}
	}
	return true
}

// selectedFields lists the fields the condition reads on a variable (v.field), and those it
// tests for presence (has(v.field), "field" in v).
func (r *rule) selectedFields(v string) (read, tested []string) {
	if r.ast == nil {
		return nil, nil
	}
	isVar := func(e celast.Expr) bool { return e.Kind() == celast.IdentKind && e.AsIdent() == v }
	add := func(list *[]string, f string) {
		if !slices.Contains(*list, f) {
			*list = append(*list, f)
		}
	}
	celast.PreOrderVisit(r.ast.Expr(), celast.NewExprVisitor(func(x celast.Expr) {
		switch x.Kind() {
		case celast.SelectKind:
			if s := x.AsSelect(); isVar(s.Operand()) {
				if s.IsTestOnly() {
					add(&tested, s.FieldName())
				} else {
					add(&read, s.FieldName())
				}
			}
		case celast.CallKind:
			c := x.AsCall()
			if c.FunctionName() == operators.In && len(c.Args()) == 2 && isVar(c.Args()[1]) && c.Args()[0].Kind() == celast.LiteralKind {
				if f, ok := c.Args()[0].AsLiteral().Value().(string); ok {
					add(&tested, f)
				}
			}
		}
	}))
	return read, tested
}

// UnknownServers returns a warning for each server pattern that matches none of servers
// (for `portcullis policy check`: a misspelt server name denies nothing).
func (p *Policy) UnknownServers(servers []string) []*Error {
	var ws []*Error
	for _, r := range p.rules {
		for i := range r.servers {
			if !slices.ContainsFunc(servers, r.servers[i].match) {
				ws = append(ws, &Error{Index: r.index, Name: r.src.Name, Field: "servers", Line: r.src.Line, Column: r.src.Column,
					Msg: fmt.Sprintf("%q matches none of the configured servers (%s)", r.servers[i].pat, strings.Join(servers, ", "))})
			}
		}
	}
	return ws
}
