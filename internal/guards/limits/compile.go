package limits

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/identity"
	"github.com/portcullis-mcp/portcullis/internal/policy"
)

// compiled is a configuration ready for the hot path: patterns compiled, rates parsed.
type compiled struct {
	Config
	zone  *time.Location
	rules []*rule
	loop  *loopConfig // nil: loop detection off
	daily bool        // some rule has a daily quota or budget: the store is needed
}

// rule is a compiled Rule.
type rule struct {
	index int
	name  string
	rate  string // as written

	principals, groups        policy.Patterns
	anyone                    bool // no principals and no groups
	hasPrincipals, hasGroups  bool
	servers, tools, methods   policy.Patterns
	perPrincipal, perServer   bool
	perTool                   bool
	ratePerNs, burst          float64 // ratePerNs 0: no rate
	concurrency               int
	dailyCalls, cost, budget  int64
	maxResultBytes            int
	timeout                   time.Duration
	needsMemory, needsCounter bool // has an in-memory limit / a daily one

	buckets *bucketMap     // the rule's token buckets (memory.go), when it has a rate
	slots   map[memKey]int // its calls in flight, when it has a concurrency
}

type loopConfig struct {
	calls            int
	window, cooldown time.Duration
	methods          policy.Patterns
}

var toolsCall, _ = policy.CompilePatterns([]string{"tools/call"})

func compile(c Config) (*compiled, error) {
	var errs []error
	top := func(field, format string, args ...any) {
		errs = append(errs, &problem{rule: -1, field: field, msg: fmt.Sprintf(format, args...)})
	}
	if c.CallTimeout <= 0 {
		top("call_timeout", "call_timeout must be positive")
	}
	if c.MaxConcurrentPerSession < 1 {
		top("max_concurrent_per_session", "max_concurrent_per_session must be at least 1")
	}
	if c.MaxParamsBytes < 0 {
		top("max_params_bytes", "max_params_bytes must not be negative")
	}
	if c.MaxResultBytes < 0 {
		top("max_result_bytes", "max_result_bytes must not be negative")
	}
	out := &compiled{Config: c, zone: time.UTC}
	if c.DayZone != "" && c.DayZone != "UTC" {
		z, err := time.LoadLocation(c.DayZone)
		if err != nil {
			top("day_zone", "unknown time zone %q: use UTC, Local or an IANA name such as Europe/Paris", c.DayZone)
		} else {
			out.zone = z
		}
	}
	names := map[string]int{}
	budgets, costs := false, -1
	for i := range c.Rules {
		r, rerrs := compileRule(i, c.Rules[i])
		if j, dup := names[c.Rules[i].Name]; dup && c.Rules[i].Name != "" {
			rerrs = append(rerrs, &problem{rule: i, field: "name", msg: fmt.Sprintf("the name is already used by rules[%d]: names key the daily counters, so they must be unique", j)})
		}
		names[c.Rules[i].Name] = i
		errs = append(errs, rerrs...)
		if r != nil {
			out.rules = append(out.rules, r)
			out.daily = out.daily || r.needsCounter
			budgets = budgets || r.budget > 0
			if r.cost > 0 && costs < 0 {
				costs = i
			}
		}
	}
	if costs >= 0 && !budgets {
		errs = append(errs, &problem{rule: costs, field: "cost", msg: "a cost counts against a daily_budget, and no rule sets one"})
	}
	if c.Loop != nil {
		l, lerrs := compileLoop(*c.Loop)
		errs = append(errs, lerrs...)
		out.loop = l
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func compileRule(i int, r Rule) (*rule, []error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &problem{rule: i, field: field, msg: fmt.Sprintf(format, args...)})
	}
	if !nameRE.MatchString(r.Name) {
		if r.Name == "" {
			bad("name", "every rule needs a name (it keys the rule's counters)")
		} else {
			bad("name", "%q: a name is 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit", r.Name)
		}
	}
	cr := &rule{index: i, name: r.Name, rate: r.Rate, perPrincipal: !r.perSet && r.Per == nil}
	pats := func(field string, ps []string) policy.Patterns {
		p, err := policy.CompilePatterns(ps)
		if err != nil {
			bad(field, "%v", err)
		}
		return p
	}
	cr.principals = pats("principals", r.Principals)
	cr.groups = pats("groups", r.Groups)
	cr.hasPrincipals, cr.hasGroups = len(r.Principals) > 0, len(r.Groups) > 0
	cr.anyone = !cr.hasPrincipals && !cr.hasGroups
	cr.servers = pats("servers", r.Servers)
	cr.tools = pats("tools", r.Tools)
	cr.methods = toolsCall
	if len(r.Methods) > 0 {
		cr.methods = pats("methods", r.Methods)
	}
	seen := map[string]bool{}
	for _, p := range r.Per {
		if seen[p] {
			bad("per", "%q is listed twice", p)
		}
		seen[p] = true
		switch p {
		case "principal":
			cr.perPrincipal = true
		case "server":
			cr.perServer = true
		case "tool":
			cr.perTool = true
		default:
			bad("per", "%q: counters are kept per principal, server or tool (an empty list: one for all)", p)
		}
	}
	if r.Rate != "" {
		perSec, n, err := parseRate(r.Rate)
		if err != nil {
			bad("rate", "%v", err)
		}
		cr.ratePerNs = perSec / 1e9
		cr.burst = math.Max(1, math.Floor(n))
		if r.Burst != 0 {
			cr.burst = float64(r.Burst)
		}
	}
	if r.Burst < 0 || (r.Burst > 0 && r.Rate == "") {
		bad("burst", "burst is the size of a rate's bucket: it needs a rate, and must be positive")
	}
	positive := func(field string, v int64) {
		if v < 0 {
			bad(field, "must be positive (leave it out for no limit)")
		}
	}
	positive("concurrency", int64(r.Concurrency))
	positive("daily_calls", r.DailyCalls)
	positive("cost", r.Cost)
	positive("daily_budget", r.DailyBudget)
	positive("max_result_bytes", int64(r.MaxResultBytes))
	if r.Timeout < 0 {
		bad("timeout", "must be positive (leave it out for call_timeout)")
	}
	cr.concurrency, cr.dailyCalls, cr.cost, cr.budget = r.Concurrency, r.DailyCalls, r.Cost, r.DailyBudget
	cr.maxResultBytes, cr.timeout = r.MaxResultBytes, r.Timeout
	cr.needsMemory = cr.ratePerNs > 0 || cr.concurrency > 0
	cr.needsCounter = cr.dailyCalls > 0 || cr.budget > 0
	if r.Rate == "" && r.Concurrency == 0 && r.DailyCalls == 0 && r.Cost == 0 && r.DailyBudget == 0 && r.MaxResultBytes == 0 && r.Timeout == 0 && r.Name != "" {
		bad("name", "the rule sets no limit: give it rate, concurrency, daily_calls, cost, daily_budget, max_result_bytes or timeout")
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return cr, nil
}

func compileLoop(l Loop) (*loopConfig, []error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &problem{rule: -1, loop: true, field: field, msg: fmt.Sprintf(format, args...)})
	}
	lc := &loopConfig{calls: l.Calls, window: l.Window, cooldown: l.Cooldown, methods: toolsCall}
	if l.Calls < 2 || l.Calls > maxLoopCalls {
		bad("calls", "the number of identical calls that makes a loop must be 2 to %d", maxLoopCalls)
	}
	if l.Window < 0 {
		bad("window", "must be positive")
	} else if l.Window == 0 {
		lc.window = DefaultLoopWindow
	}
	if l.Cooldown < 0 {
		bad("cooldown", "must be positive")
	} else if l.Cooldown == 0 {
		lc.cooldown = DefaultLoopCooldown
	}
	if len(l.Methods) > 0 {
		p, err := policy.CompilePatterns(l.Methods)
		if err != nil {
			bad("methods", "%v", err)
		}
		lc.methods = p
	}
	return lc, errs
}

// selects reports whether the rule applies to a call.
func (r *rule) selects(p *identity.Principal, method, server, name string) bool {
	if !r.methods.Match(method) || !r.servers.Match(server) || !r.tools.Match(name) {
		return false
	}
	if r.anyone || r.hasPrincipals && r.principals.Match(p.ID) {
		return true
	}
	return r.hasGroups && slices.ContainsFunc(p.Groups, r.groups.Match)
}
