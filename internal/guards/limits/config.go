package limits

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/portcullis-mcp/portcullis/internal/config"
	"github.com/portcullis-mcp/portcullis/internal/guard"
)

// Config is the guard's configuration section (guards: limits:).
type Config struct {
	// CallTimeout bounds how long a server may take to answer one request.
	CallTimeout time.Duration `yaml:"call_timeout"`
	// MaxConcurrentPerSession bounds the requests one session has in flight.
	MaxConcurrentPerSession int `yaml:"max_concurrent_per_session"`
	// MaxParamsBytes bounds the params of one request (0: only the message limit applies).
	MaxParamsBytes int `yaml:"max_params_bytes"`
	// MaxResultBytes bounds the result of one request (0: only the message limit applies).
	MaxResultBytes int `yaml:"max_result_bytes"`
	// DayZone is the time zone whose midnight starts a new day for daily quotas and
	// budgets: "UTC" (the default), "Local", or an IANA name such as "Europe/Paris".
	// Every replica of a fleet must use the same.
	DayZone string `yaml:"day_zone"`
	// Rules select calls by principal, server, tool and method and limit them.
	Rules []Rule `yaml:"rules"`
	// Loop throttles a call repeated identically many times in a short window.
	Loop *Loop `yaml:"loop"`
}

// Rule is one rule as written. A call is limited by every rule that selects it.
type Rule struct {
	// Name identifies the rule in refusals and in the store's counters: renaming a rule
	// starts its daily counters afresh.
	Name string `yaml:"name"`

	// Principals and Groups select who: globs on the principal's id, and on its groups.
	// A call is selected when either matches; both empty: everybody.
	Principals []string `yaml:"principals"`
	Groups     []string `yaml:"groups"`
	// Servers, Tools and Methods are globs on the server, the tool or prompt name (or the
	// resource URI), and the method; empty servers and tools: any; empty methods:
	// tools/call only.
	Servers []string `yaml:"servers"`
	Tools   []string `yaml:"tools"`
	Methods []string `yaml:"methods"`
	// Per says what each counter of the rule is kept for: any of principal, server and
	// tool. Absent: per principal. An empty list: one counter for every call the rule
	// selects (a limit on a server as a whole).
	Per []string `yaml:"per"`

	// Rate is a token bucket: "10/s", "600/m", "1000/h" (a number, then s, m or h).
	Rate string `yaml:"rate"`
	// Burst is the bucket's size; the default is the rate's number (10 for "10/s").
	Burst int `yaml:"burst"`
	// Concurrency bounds the calls in flight.
	Concurrency int `yaml:"concurrency"`
	// DailyCalls bounds the calls per day.
	DailyCalls int64 `yaml:"daily_calls"`
	// Cost is what one call of the selected tools costs, in units counted against
	// daily_budget. The first rule (in order) that selects a call and sets a cost gives
	// its cost; the default is 1.
	Cost int64 `yaml:"cost"`
	// DailyBudget bounds the cost units per day.
	DailyBudget int64 `yaml:"daily_budget"`
	// MaxResultBytes bounds the size of one result.
	MaxResultBytes int `yaml:"max_result_bytes"`
	// Timeout bounds how long the server may take (the smallest of call_timeout and the
	// selecting rules' timeouts applies).
	Timeout time.Duration `yaml:"timeout"`

	line, column int
	lines        map[string][2]int // where each key is, for errors
	perSet       bool              // "per" was written (an empty list is not the default)
}

var ruleFields = []string{"name", "principals", "groups", "servers", "tools", "methods", "per",
	"rate", "burst", "concurrency", "daily_calls", "cost", "daily_budget", "max_result_bytes", "timeout"}

// UnmarshalYAML decodes a rule strictly (an unknown key is an error) and remembers where
// its keys are, so that errors point at them.
func (r *Rule) UnmarshalYAML(n *yaml.Node) error {
	lines, err := strictKeys(n, "a rule", ruleFields)
	if err != nil {
		return err
	}
	type plain Rule
	if err := n.Decode((*plain)(r)); err != nil {
		return err
	}
	r.line, r.column, r.lines = n.Line, n.Column, lines
	_, r.perSet = lines["per"]
	return nil
}

// Loop configures loop detection: a principal calling the same tool of the same server
// with the same arguments Calls times within Window is refused that call for Cooldown,
// and an alert goes to the audit trail and the log.
type Loop struct {
	Calls    int           `yaml:"calls"`    // at least 2
	Window   time.Duration `yaml:"window"`   // default 1m
	Cooldown time.Duration `yaml:"cooldown"` // default 5m
	// Methods are globs on the methods watched; default tools/call.
	Methods []string `yaml:"methods"`

	line, column int
	lines        map[string][2]int
}

var loopFields = []string{"calls", "window", "cooldown", "methods"}

// UnmarshalYAML decodes the loop section strictly.
func (l *Loop) UnmarshalYAML(n *yaml.Node) error {
	lines, err := strictKeys(n, "loop", loopFields)
	if err != nil {
		return err
	}
	type plain Loop
	if err := n.Decode((*plain)(l)); err != nil {
		return err
	}
	l.line, l.column, l.lines = n.Line, n.Column, lines
	return nil
}

// strictKeys checks that n is a mapping with only known keys, and returns where each is.
// Its errors carry "line N:" so that the configuration places them.
func strictKeys(n *yaml.Node, what string, known []string) (map[string][2]int, error) {
	if n.Kind != yaml.MappingNode {
		return nil, &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %s must be a mapping (%s)", n.Line, what, strings.Join(known, ", "))}}
	}
	lines := map[string][2]int{}
	var errs []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !slices.Contains(known, k.Value) {
			errs = append(errs, fmt.Sprintf("line %d: unknown field %q in %s (known: %s)", k.Line, k.Value, what, strings.Join(known, ", ")))
			continue
		}
		lines[k.Value] = [2]int{k.Line, k.Column}
	}
	if len(errs) > 0 {
		return nil, &yaml.TypeError{Errors: errs}
	}
	return lines, nil
}

// Defaults apply to a missing section or missing fields.
var Defaults = Config{CallTimeout: 60 * time.Second, MaxConcurrentPerSession: 32, DayZone: "UTC"}

// Loop defaults.
const (
	DefaultLoopWindow   = time.Minute
	DefaultLoopCooldown = 5 * time.Minute
	maxLoopCalls        = 1000
)

// problem is a configuration error in a rule (rule >= 0), the loop section (loop) or a
// top-level field.
type problem struct {
	rule  int
	loop  bool
	field string
	msg   string
}

func (p *problem) Error() string {
	switch {
	case p.rule >= 0:
		return fmt.Sprintf("rules[%d].%s: %s", p.rule, p.field, p.msg)
	case p.loop:
		return fmt.Sprintf("loop.%s: %s", p.field, p.msg)
	}
	return p.field + ": " + p.msg
}

// Validate checks the configuration without a file to point into (Compile does the
// same and more).
func (c Config) Validate() error {
	_, err := compile(c)
	return err
}

var (
	nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	rateRE = regexp.MustCompile(`^\s*([0-9]+(?:\.[0-9]+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$`)
)

// parseRate reads "N/unit" into tokens per second and N.
func parseRate(s string) (perSec float64, n float64, err error) {
	m := rateRE.FindStringSubmatch(s)
	if m == nil {
		return 0, 0, fmt.Errorf("%q is not a rate: write a number, a slash and s, m or h (\"10/s\", \"600/m\", \"1000/h\")", s)
	}
	n, err = strconv.ParseFloat(m[1], 64)
	if err != nil || n <= 0 || math.IsInf(n, 0) {
		return 0, 0, fmt.Errorf("%q: the number must be positive", s)
	}
	per := time.Second
	switch m[2][0] {
	case 'm':
		per = time.Minute
	case 'h':
		per = time.Hour
	}
	return n / per.Seconds(), n, nil
}

// locate turns problems into errors at their place in the file when cfg can locate them
// (a config.Section); others are returned as they are.
func locate(cfg guard.Config, c Config, err error) error {
	loc, ok := cfg.(interface {
		Errorf(field, format string, args ...any) error
	})
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
		var p *problem
		if !errors.As(e, &p) {
			out = append(out, e)
			continue
		}
		var located error
		var at [2]int
		field := Name
		switch {
		case p.rule >= 0:
			located = loc.Errorf("rules", "rule %q: %s", c.Rules[p.rule].Name, p.msg)
			r := c.Rules[p.rule]
			at = [2]int{r.line, r.column}
			if kl, ok := r.lines[p.field]; ok {
				at = kl
			}
			field = fmt.Sprintf("guards.%s.rules[%d].%s", Name, p.rule, p.field)
		case p.loop:
			located = loc.Errorf("loop", "%s", p.msg)
			at = [2]int{c.Loop.line, c.Loop.column}
			if kl, ok := c.Loop.lines[p.field]; ok {
				at = kl
			}
			field = fmt.Sprintf("guards.%s.loop.%s", Name, p.field)
		default:
			out = append(out, loc.Errorf(p.field, "%s", p.msg))
			continue
		}
		var ce *config.Error
		if errors.As(located, &ce) {
			if at[0] > 0 {
				ce.Line, ce.Column = at[0], at[1]
			}
			ce.Field = field
		}
		out = append(out, located)
	}
	return errors.Join(out...)
}
