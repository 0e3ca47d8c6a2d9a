package policy

import (
	"fmt"
	"testing"
)

// hundredRules is a policy of 100 rules over 20 servers: per server, a deny on a
// dangerous argument, an approve on destructive tools, two group-scoped allows with
// argument conditions, and one allow for an admin group.
func hundredRules(tb testing.TB) *Policy {
	tb.Helper()
	var rules []Rule
	for s := 0; s < 20; s++ {
		srv := fmt.Sprintf("server%02d", s)
		rules = append(rules,
			Rule{Name: srv + "-no-etc", Effect: "deny", Servers: []string{srv}, Methods: []string{"tools/call"},
				When: `has(args.path) && args.path.startsWith("/etc/")`},
			Rule{Name: srv + "-destructive", Effect: "approve", Servers: []string{srv}, Methods: []string{"tools/call"},
				When: `annotations.destructiveHint == true && !("admin" in principal.groups)`},
			Rule{Name: srv + "-read", Effect: "allow", Servers: []string{srv}, Tools: []string{"read_*", "list_*"},
				When: `"dev" in principal.groups && args.path.startsWith("/workspace/")`},
			Rule{Name: srv + "-pay", Effect: "allow", Servers: []string{srv}, Tools: []string{"pay"},
				When: `"finance" in principal.groups && args.amount < 100`},
			Rule{Name: srv + "-ops", Effect: "allow", Servers: []string{srv},
				When: `"ops-` + srv + `" in principal.groups`},
		)
	}
	p, err := Compile(Config{Rules: rules})
	if err != nil {
		tb.Fatal(err)
	}
	if p.Len() != 100 {
		tb.Fatalf("%d rules", p.Len())
	}
	return p
}

func BenchmarkDecide100Rules(b *testing.B) {
	p := hundredRules(b)
	in := &Input{
		Principal:   Principal{ID: "alice", Groups: []string{"dev", "staff"}, Method: "oidc"},
		Server:      "server13",
		Tool:        "read_file",
		Method:      "tools/call",
		Args:        []byte(`{"path":"/workspace/src/main.go","encoding":"utf-8"}`),
		Annotations: AnnotationDefaults(map[string]any{"readOnlyHint": true, "destructiveHint": false}),
	}
	if d := p.Decide(in); d.Effect != Allow || d.Rule != "server13-read" {
		b.Fatalf("decision %+v", d)
	}
	b.ReportAllocs()
	reportCPU(b, func() { p.Decide(in) })
}

// BenchmarkDecide100RulesUnscoped is the worst case: 100 rules with no servers, tools or
// methods, none matching, so that all 100 conditions run in CEL (default deny).
func BenchmarkDecide100RulesUnscoped(b *testing.B) {
	benchUnscoped(b, `has(args.path) && args.path.startsWith("/p%d/")`)
}

// BenchmarkDecide100RulesByGroup is 100 unscoped rules that each require a group the
// principal lacks: the group test runs before CEL.
func BenchmarkDecide100RulesByGroup(b *testing.B) {
	benchUnscoped(b, `"group%d" in principal.groups && args.path.startsWith("/p/")`)
}

func benchUnscoped(b *testing.B, format string) {
	var rules []Rule
	for i := 0; i < 100; i++ {
		eff := []string{"deny", "approve", "allow", "allow"}[i%4]
		rules = append(rules, Rule{Name: fmt.Sprintf("r%d", i), Effect: eff, When: fmt.Sprintf(format, i)})
	}
	p, err := Compile(Config{Rules: rules})
	if err != nil {
		b.Fatal(err)
	}
	in := &Input{
		Principal: Principal{ID: "alice", Groups: []string{"dev", "staff"}, Method: "oidc"},
		Server:    "fs", Tool: "read_file", Method: "tools/call",
		Args: []byte(`{"path":"/workspace/src/main.go"}`),
	}
	if d := p.Decide(in); d.Effect != Deny || d.Index != -1 {
		b.Fatalf("decision %+v", d)
	}
	b.ReportAllocs()
	reportCPU(b, func() { p.Decide(in) })
}
