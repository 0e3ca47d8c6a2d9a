// Package policy compiles and evaluates authorization rules: who (principal) may do what
// (method) to which tool, prompt or resource of which server, with which arguments. Rules
// are matched by globs on server, name and method, and by a CEL condition; every condition
// is compiled once, when the policy is loaded.
//
// A decision looks at every rule that matches: any deny wins, then any approve, then any
// allow; when no rule matches the default applies (deny unless configured otherwise).
//
// A condition that fails to evaluate (a missing key, a type error, the cost limit) fails
// closed: a deny or approve rule whose condition fails counts as matching, an allow rule
// whose condition fails does not.
package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"
	"go.yaml.in/yaml/v3"
)

// Effect is what a rule does when it matches.
type Effect uint8

// Effects, from strongest to weakest.
const (
	NoEffect Effect = iota
	Deny
	Approve // held for a human; refused until approvals exist
	Allow
)

func (e Effect) String() string {
	switch e {
	case Deny:
		return "deny"
	case Approve:
		return "approve"
	case Allow:
		return "allow"
	}
	return "none"
}

// ParseEffect parses "allow", "deny" or "approve".
func ParseEffect(s string) (Effect, error) {
	switch s {
	case "deny":
		return Deny, nil
	case "approve":
		return Approve, nil
	case "allow":
		return Allow, nil
	}
	return NoEffect, fmt.Errorf("unknown effect %q (allow, deny or approve)", s)
}

// Config is the policy as written in the configuration (guards: authz:).
type Config struct {
	// Default applies when no rule matches: deny (the default), allow or approve.
	Default string `yaml:"default"`
	// Rules, in the order they are reported; the order does not change decisions.
	Rules []Rule `yaml:"rules"`
}

// Rule is one rule as written.
type Rule struct {
	Name    string   `yaml:"name"`
	Effect  string   `yaml:"effect"`
	Servers []string `yaml:"servers"` // globs on the server name; empty: any
	Tools   []string `yaml:"tools"`   // globs on the tool or prompt name, or resource URI; empty: any
	Methods []string `yaml:"methods"` // globs on the method; empty: any
	When    string   `yaml:"when"`    // CEL condition; empty: always
	Message string   `yaml:"message"` // told to the client when this rule refuses a call
	// Approvers are the groups whose members must approve a call this approve rule holds;
	// empty: the caller may approve it through its client (MCP elicitation).
	Approvers []string `yaml:"approvers"`

	// Line and Column locate the rule in its file (set when decoded from YAML).
	Line, Column int `yaml:"-"`
	whenLine     int
	whenColumn   int
}

var ruleFields = []string{"name", "effect", "servers", "tools", "methods", "when", "message", "approvers"}

// UnmarshalYAML decodes a rule strictly (an unknown key is an error) and remembers where
// it is, so that errors can point at it.
func (r *Rule) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: a rule must be a mapping (name, effect, servers, tools, methods, when, message, approvers)", n.Line)}}
	}
	var errs []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !slices.Contains(ruleFields, k.Value) {
			errs = append(errs, fmt.Sprintf("line %d: unknown field %q in rule (known: %s)", k.Line, k.Value, strings.Join(ruleFields, ", ")))
		}
		if k.Value == "when" {
			r.whenLine, r.whenColumn = n.Content[i+1].Line, n.Content[i+1].Column
		}
	}
	if len(errs) > 0 {
		return &yaml.TypeError{Errors: errs}
	}
	type plain Rule
	p := (*plain)(r)
	if err := n.Decode(p); err != nil {
		return err
	}
	r.Line, r.Column = n.Line, n.Column
	return nil
}

// Error is a problem with one rule (Index >= 0) or with the default (Index -1).
type Error struct {
	Index        int
	Name         string
	Field        string
	Line, Column int // of the rule, or of its condition for errors in it; 0 if unknown
	Msg          string
}

func (e *Error) Error() string {
	if e.Index < 0 {
		return e.Field + ": " + e.Msg
	}
	if e.Field == "" {
		return fmt.Sprintf("rules[%d] %q: %s", e.Index, e.Name, e.Msg)
	}
	return fmt.Sprintf("rules[%d] %q: %s: %s", e.Index, e.Name, e.Field, e.Msg)
}

// Principal is who calls, as rules see it (principal.id, .groups, .method, .claims).
type Principal struct {
	ID     string
	Groups []string
	Method string
	Claims map[string]any
}

// Input is one call to decide.
type Input struct {
	Principal Principal
	Server    string // the server the call goes to ("" when none)
	Tool      string // tool or prompt name without the server prefix, or resource URI
	Method    string
	// Args is the raw JSON object of the call's arguments (tools/call, prompts/get); nil
	// means none. It must be valid JSON; only the parts a rule reads are decoded.
	Args []byte
	// Annotations of the tool (see AnnotationDefaults); nil means none.
	Annotations map[string]any
}

// Decision is the outcome of a decision.
type Decision struct {
	Effect  Effect
	Rule    string // the deciding rule; "" when the default decided
	Index   int    // the deciding rule's index; -1 for the default
	Message string // the deciding rule's message, if it has one
	// Approvers are the deciding approve rule's approver groups.
	Approvers []string
	Err       error // set when the deciding rule's condition failed (it failed closed)
}

// Reason says in words why the decision was made.
func (d Decision) Reason() string {
	switch {
	case d.Index < 0:
		return fmt.Sprintf("no rule matched; default %s", d.Effect)
	case d.Err != nil:
		return fmt.Sprintf("rule %q (%s): its condition failed (%v), so it counts as matching (fail closed)", d.Rule, d.Effect, d.Err)
	}
	return fmt.Sprintf("rule %q (%s) matched", d.Rule, d.Effect)
}

// MaxCost bounds the evaluation cost of a condition with comprehensions (all, exists, map,
// filter), whose cost can grow faster than its input (cel-go cost units: roughly one per
// operation, more for operations on long strings and lists). An evaluation over the limit
// fails, and fails closed. Other conditions cost at most linear time in the size of the
// call, which the gateway's message size limit bounds.
const MaxCost = 1_000_000

// Policy is a compiled policy. It is safe for concurrent use.
type Policy struct {
	rules           []*rule
	byServer        map[string]*ruleSet // the rules that may apply to a server some rule names literally
	other           *ruleSet            // the rules that may apply to any other server
	def             Effect
	usesAnnotations bool
	warnings        []*Error
}

// ruleSet holds rules by effect, each in file order.
type ruleSet struct {
	deny, approve, allow []*rule
}

func (s *ruleSet) add(r *rule) {
	switch r.effect {
	case Deny:
		s.deny = append(s.deny, r)
	case Approve:
		s.approve = append(s.approve, r)
	case Allow:
		s.allow = append(s.allow, r)
	}
}

// index builds the per-server rule sets: a call evaluates only the rules that can apply to
// its server.
func (p *Policy) index() {
	literal := func(r *rule) ([]string, bool) {
		if len(r.servers) == 0 {
			return nil, false
		}
		var names []string
		for i := range r.servers {
			n, ok := r.servers[i].literal()
			if !ok {
				return nil, false
			}
			names = append(names, n)
		}
		return names, true
	}
	p.byServer = map[string]*ruleSet{}
	p.other = &ruleSet{}
	for _, r := range p.rules {
		if names, ok := literal(r); ok {
			for _, n := range names {
				p.byServer[n] = &ruleSet{}
			}
		}
	}
	for _, r := range p.rules {
		names, ok := literal(r)
		if !ok {
			p.other.add(r)
		}
		for n, set := range p.byServer {
			if !ok || slices.Contains(names, n) {
				set.add(r)
			}
		}
	}
}

func (p *Policy) rulesFor(server string) *ruleSet {
	if s, ok := p.byServer[server]; ok {
		return s
	}
	return p.other
}

type refs uint8

const (
	refPrincipal refs = 1 << iota
	refArgs
	refAnnotations
)

type rule struct {
	src     Rule
	index   int
	effect  Effect
	servers globs
	tools   globs
	methods globs
	ast     *celast.AST // the checked condition; nil: none
	prg     cel.Program // nil: no condition
	partial cel.Program // the condition with args unknown, for listings; nil if no args
	refs    refs
	always  bool // no condition, or the literal true
	never   bool // the literal false
	costly  bool // has comprehensions: evaluated under MaxCost
	// needGroups and needID are conjuncts of the condition ("g" in principal.groups,
	// principal.id == "x") checked before CEL runs: when one is false so is the condition,
	// whatever the rest gives (in CEL, false && error is false).
	needGroups []string
	needID     *string
}

// prefilter reports whether the condition can be true for in.
func (r *rule) prefilter(in *Input) bool {
	for _, g := range r.needGroups {
		if !slices.Contains(in.Principal.Groups, g) {
			return false
		}
	}
	return r.needID == nil || in.Principal.ID == *r.needID
}

// conjuncts records the prefilters among the top-level conjuncts of x.
func (r *rule) conjuncts(x celast.Expr) {
	if x.Kind() != celast.CallKind {
		return
	}
	c := x.AsCall()
	args := c.Args()
	isPrincipal := func(e celast.Expr, field string) bool {
		if e.Kind() != celast.SelectKind {
			return false
		}
		s := e.AsSelect()
		return !s.IsTestOnly() && s.FieldName() == field && s.Operand().Kind() == celast.IdentKind && s.Operand().AsIdent() == "principal"
	}
	str := func(e celast.Expr) (string, bool) {
		if e.Kind() != celast.LiteralKind {
			return "", false
		}
		v, ok := e.AsLiteral().(types.String)
		return string(v), ok
	}
	switch {
	case c.FunctionName() == operators.LogicalAnd:
		for _, a := range args {
			r.conjuncts(a)
		}
	case c.FunctionName() == operators.In && len(args) == 2 && isPrincipal(args[1], "groups"):
		if g, ok := str(args[0]); ok {
			r.needGroups = append(r.needGroups, g)
		}
	case c.FunctionName() == operators.Equals && len(args) == 2:
		for i := range 2 {
			if v, ok := str(args[i]); ok && isPrincipal(args[1-i], "id") && r.needID == nil {
				r.needID = &v
			}
		}
	}
}

// Variables in conditions.
var variables = []cel.EnvOption{
	cel.Variable("principal", cel.MapType(cel.StringType, cel.DynType)),
	cel.Variable("server", cel.StringType),
	cel.Variable("tool", cel.StringType),
	cel.Variable("method", cel.StringType),
	cel.Variable("args", cel.MapType(cel.StringType, cel.DynType)),
	cel.Variable("annotations", cel.MapType(cel.StringType, cel.DynType)),
}

var principalFields = []string{"id", "groups", "method", "claims"}

// ToolAnnotationFields are the annotations MCP defines for tools.
var ToolAnnotationFields = []string{"title", "readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"}

var env = sync.OnceValues(func() (*cel.Env, error) {
	opts := append([]cel.EnvOption{
		cel.CrossTypeNumericComparisons(true),
		cel.OptionalTypes(),
		ext.Strings(),
		ext.Lists(),
		ext.Sets(),
	}, variables...)
	return cel.NewEnv(opts...)
})

// Compile checks and compiles a policy. Every problem is reported, as *Error values joined
// with errors.Join.
func Compile(c Config) (*Policy, error) {
	e, err := env()
	if err != nil {
		return nil, fmt.Errorf("policy: CEL environment: %w", err)
	}
	p := &Policy{def: Deny}
	var errs []error
	switch c.Default {
	case "", "deny":
	default:
		eff, err := ParseEffect(c.Default)
		if err != nil {
			errs = append(errs, &Error{Index: -1, Field: "default", Msg: err.Error()})
		}
		p.def = eff
	}
	names := map[string]int{}
	for i, src := range c.Rules {
		r := &rule{src: src, index: i}
		fail := func(field, format string, args ...any) {
			line, col := src.Line, src.Column
			if field == "when" && src.whenLine > 0 {
				line, col = src.whenLine, src.whenColumn
			}
			errs = append(errs, &Error{Index: i, Name: src.Name, Field: field, Line: line, Column: col, Msg: fmt.Sprintf(format, args...)})
		}
		switch prev, dup := names[src.Name]; {
		case src.Name == "":
			fail("name", "every rule needs a name (refusals and audit name the rule that decided)")
		case dup:
			fail("name", "the name is already used by rules[%d]", prev)
		default:
			names[src.Name] = i
		}
		if src.Effect == "" {
			fail("effect", "required: allow, deny or approve")
		} else if eff, err := ParseEffect(src.Effect); err != nil {
			fail("effect", "%v", err)
		} else {
			r.effect = eff
		}
		if len(src.Approvers) > 0 && r.effect != Approve && r.effect != NoEffect {
			fail("approvers", "only approve rules have approvers")
		}
		for _, g := range src.Approvers {
			if strings.TrimSpace(g) == "" {
				fail("approvers", "an approver group must not be empty")
			}
		}
		for _, f := range []struct {
			name string
			in   []string
			out  *globs
		}{{"servers", src.Servers, &r.servers}, {"tools", src.Tools, &r.tools}, {"methods", src.Methods, &r.methods}} {
			gs, gerrs := compileGlobs(f.in)
			for _, err := range gerrs {
				fail(f.name, "bad pattern: %v", err)
			}
			*f.out = gs
		}
		if err := r.compileWhen(e); err != nil {
			fail("when", "%v", err)
		}
		p.rules = append(p.rules, r)
		if r.refs&refAnnotations != 0 {
			p.usesAnnotations = true
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	p.index()
	p.warnings = p.lint()
	return p, nil
}

func (r *rule) compileWhen(e *cel.Env) error {
	when := strings.TrimSpace(r.src.When)
	if when == "" {
		r.always = true
		return nil
	}
	src := common.NewStringSource(when, fmt.Sprintf("rules[%d].when", r.index))
	checked, iss := e.CompileSource(src)
	if iss != nil && iss.Err() != nil {
		return errors.New(strings.TrimSpace(iss.Err().Error()))
	}
	if t := checked.OutputType(); !t.IsExactType(cel.BoolType) && !t.IsExactType(cel.DynType) {
		return fmt.Errorf("the condition must be a bool, not %s", t)
	}
	a := checked.NativeRep()
	r.ast = a
	var problems []string
	celast.PreOrderVisit(a.Expr(), celast.NewExprVisitor(func(x celast.Expr) {
		switch x.Kind() {
		case celast.IdentKind:
			switch x.AsIdent() {
			case "principal":
				r.refs |= refPrincipal
			case "args":
				r.refs |= refArgs
			case "annotations":
				r.refs |= refAnnotations
			}
		case celast.SelectKind:
			s := x.AsSelect()
			if op := s.Operand(); op.Kind() == celast.IdentKind && op.AsIdent() == "principal" && !slices.Contains(principalFields, s.FieldName()) {
				problems = append(problems, fmt.Sprintf("principal has no field %q (it has %s)", s.FieldName(), strings.Join(principalFields, ", ")))
			}
		}
	}))
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	r.conjuncts(a.Expr())
	if a.Expr().Kind() == celast.LiteralKind {
		switch a.Expr().AsLiteral() {
		case types.True:
			r.always = true
			return nil
		case types.False:
			r.never = true
		}
	}
	// Without comprehensions (all, exists, map, filter...) the cost of a condition is linear
	// in the size of its input, which the message size limit bounds; with them it can be
	// quadratic or worse, so only those pay for cost tracking.
	opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	if len(celast.MatchDescendants(celast.NavigateAST(a), celast.KindMatcher(celast.ComprehensionKind))) > 0 {
		opts = append(opts, cel.CostLimit(MaxCost))
		r.costly = true
	}
	var err error
	if r.prg, err = e.Program(checked, opts...); err != nil {
		return err
	}
	if r.refs&refArgs != 0 {
		opts[0] = cel.EvalOptions(cel.OptOptimize, cel.OptPartialEval)
		if r.partial, err = e.Program(checked, opts...); err != nil {
			return err
		}
	}
	return nil
}

// Default is the effect when no rule matches.
func (p *Policy) Default() Effect { return p.def }

// Len is the number of rules.
func (p *Policy) Len() int { return len(p.rules) }

// UsesAnnotations reports whether any condition reads annotations.
func (p *Policy) UsesAnnotations() bool { return p.usesAnnotations }

// Warnings are lint findings: rules that can never decide anything, names that cannot
// match, conditions that will fail. They do not stop the policy from loading.
func (p *Policy) Warnings() []*Error { return p.warnings }

// inScope reports whether the rule's servers, tools and methods match.
func (r *rule) inScope(in *Input) bool {
	return r.methods.match(in.Method) && r.servers.match(in.Server) && r.tools.match(in.Tool)
}

// eval evaluates the condition: true, false, or an error.
func (r *rule) eval(a *activation) (bool, error) {
	if r.always {
		return true, nil
	}
	if r.never || !r.prefilter(a.in) {
		return false, nil
	}
	out, _, err := r.prg.Eval(a)
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("the condition gave %s, not a bool", out.Type().TypeName())
	}
	return bool(b), nil
}

// Decide decides a call.
func (p *Policy) Decide(in *Input) Decision {
	a := newActivation(in)
	defer a.release()
	set := p.rulesFor(in.Server)
	for _, r := range set.deny {
		if !r.inScope(in) {
			continue
		}
		if ok, err := r.eval(a); ok || err != nil {
			return r.decision(err)
		}
	}
	for _, r := range set.approve {
		if !r.inScope(in) {
			continue
		}
		if ok, err := r.eval(a); ok || err != nil {
			return r.decision(err)
		}
	}
	for _, r := range set.allow {
		if !r.inScope(in) {
			continue
		}
		if ok, _ := r.eval(a); ok {
			return r.decision(nil)
		}
	}
	return Decision{Effect: p.def, Index: -1}
}

func (r *rule) decision(err error) Decision {
	return Decision{Effect: r.effect, Rule: r.src.Name, Index: r.index, Message: r.src.Message, Approvers: r.src.Approvers, Err: err}
}

// outcome of a condition with arguments unknown.
type outcome uint8

const (
	isFalse outcome = iota
	isTrue
	isUnknown // depends on the arguments
	isError
)

func (r *rule) evalPartial(a *activation, pa interpreter.PartialActivation) (outcome, error) {
	if !r.prefilter(a.in) {
		return isFalse, nil
	}
	if r.partial == nil {
		ok, err := r.eval(a)
		switch {
		case err != nil:
			return isError, err
		case ok:
			return isTrue, nil
		}
		return isFalse, nil
	}
	out, _, err := r.partial.Eval(pa)
	if types.IsUnknown(out) {
		return isUnknown, nil
	}
	if err != nil {
		return isError, err
	}
	if b, ok := out.(types.Bool); ok {
		if b {
			return isTrue, nil
		}
		return isFalse, nil
	}
	return isError, fmt.Errorf("the condition gave %s, not a bool", out.Type().TypeName())
}

// Visible decides whether a listed item (a tool, prompt or resource in a list result) is
// shown: in is the call that would use it, with Args ignored (any arguments). The item is
// hidden when a deny rule matches whatever the arguments are (or fails), or when no allow
// or approve rule could match for some arguments and the default is deny. The returned
// decision names the rule (Effect Deny: hidden).
func (p *Policy) Visible(in *Input) (bool, Decision) {
	a := newActivation(in)
	defer a.release()
	a.args = nil
	pa, err := cel.PartialVars(a, cel.AttributePattern("args"))
	if err != nil {
		return false, Decision{Effect: Deny, Index: -1, Err: err}
	}
	set := p.rulesFor(in.Server)
	for _, r := range set.deny {
		if !r.inScope(in) {
			continue
		}
		if o, err := r.evalPartial(a, pa); o == isTrue || o == isError {
			return false, r.decision(err)
		}
	}
	for _, rules := range [][]*rule{set.approve, set.allow} {
		for _, r := range rules {
			if !r.inScope(in) {
				continue
			}
			if o, err := r.evalPartial(a, pa); o == isTrue || o == isUnknown || (o == isError && r.effect == Approve) {
				return true, r.decision(err)
			}
		}
	}
	return p.def != Deny, Decision{Effect: p.def, Index: -1}
}

// RuleResult is how one rule fared in Explain.
type RuleResult struct {
	Index     int
	Name      string
	Effect    Effect
	InScope   bool   // servers, tools and methods matched
	Condition string // the condition as written ("" for none)
	Value     string // "true", "false", "error: ...", or "" when out of scope
	Err       error
	Matched   bool // counts as matching (an error in a deny or approve rule does)
}

// Explain evaluates every rule and says how each fared, and the decision (the same as
// Decide's).
func (p *Policy) Explain(in *Input) ([]RuleResult, Decision) {
	a := newActivation(in)
	defer a.release()
	out := make([]RuleResult, len(p.rules))
	for i, r := range p.rules {
		rr := RuleResult{Index: i, Name: r.src.Name, Effect: r.effect, InScope: r.inScope(in), Condition: strings.TrimSpace(r.src.When)}
		if rr.InScope {
			ok, err := r.eval(a)
			switch {
			case err != nil:
				rr.Value, rr.Err = "error: "+err.Error(), err
				rr.Matched = r.effect != Allow
			case ok:
				rr.Value, rr.Matched = "true", true
			default:
				rr.Value = "false"
			}
		}
		out[i] = rr
	}
	for _, eff := range []Effect{Deny, Approve, Allow} {
		for _, rr := range out {
			if rr.Matched && rr.Effect == eff {
				return out, p.rules[rr.Index].decision(rr.Err)
			}
		}
	}
	return out, Decision{Effect: p.def, Index: -1}
}

// activation supplies the variables of one decision, each converted once and only when a
// condition reads it.
type activation struct {
	in          *Input
	principal   principalValue
	argsObj     rawObject
	args        ref.Val
	server      ref.Val
	tool        ref.Val
	method      ref.Val
	annotations ref.Val
}

var activations = sync.Pool{New: func() any { return new(activation) }}

var emptyArgs = []byte("{}")

func newActivation(in *Input) *activation {
	a := activations.Get().(*activation)
	a.in = in
	a.principal.p = &in.Principal
	raw := in.Args
	if len(raw) == 0 {
		raw = emptyArgs
	}
	a.argsObj.raw = raw
	a.args = &a.argsObj
	return a
}

func (a *activation) release() {
	a.argsObj.reset()
	*a = activation{argsObj: a.argsObj}
	activations.Put(a)
}

// ResolveName implements interpreter.Activation.
func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "principal":
		return &a.principal, true
	case "args":
		if a.args == nil {
			return nil, false
		}
		return a.args, true
	case "server":
		if a.server == nil {
			a.server = types.String(a.in.Server)
		}
		return a.server, true
	case "tool":
		if a.tool == nil {
			a.tool = types.String(a.in.Tool)
		}
		return a.tool, true
	case "method":
		if a.method == nil {
			a.method = types.String(a.in.Method)
		}
		return a.method, true
	case "annotations":
		if a.annotations == nil {
			if a.in.Annotations == nil {
				a.annotations = emptyMap
			} else {
				a.annotations = types.NewStringInterfaceMap(adapter, a.in.Annotations)
			}
		}
		return a.annotations, true
	}
	return nil, false
}

// Parent implements interpreter.Activation.
func (a *activation) Parent() interpreter.Activation { return nil }

// AnnotationDefaults returns a tool's annotations with MCP's defaults filled in for the
// hints the server left out: readOnlyHint false, destructiveHint true (false for a tool
// that says it is read-only: MCP gives destructiveHint meaning only for tools that are
// not), idempotentHint false, openWorldHint true. With nil (a tool whose listing was never
// seen) it returns the defaults alone, so that an unknown tool counts as destructive and
// open-world.
func AnnotationDefaults(ann map[string]any) map[string]any {
	out := map[string]any{"readOnlyHint": false, "destructiveHint": true, "idempotentHint": false, "openWorldHint": true}
	for k, v := range ann {
		out[k] = v
	}
	if _, set := ann["destructiveHint"]; !set && out["readOnlyHint"] == true {
		out["destructiveHint"] = false
	}
	return out
}
