package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"go.yaml.in/yaml/v3"

	"github.com/portcullis-mcp/portcullis/internal/config"
	"github.com/portcullis-mcp/portcullis/internal/guards/authz"
	"github.com/portcullis-mcp/portcullis/internal/policy"
)

func init() {
	register("policy", "policy check|test|explain FILE ...   (check, unit-test or explain the authz policy of a configuration)", policyCmd)
}

const policyUsage = `usage:
  portcullis policy check FILE [-strict]
      compile the guards.authz policy of configuration FILE and lint it (-strict: warnings fail)
  portcullis policy test FILE TESTS.yaml [-v]
      run the policy's unit tests (cases: principal, method, server, tool, args, expect)
  portcullis policy explain FILE -principal ID [-groups a,b] [-auth-method M] [-method M]
                            [-server S] [-tool T] [-args JSON] [-annotations JSON]
      say how each rule fares for one call, and the decision`

func policyCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, policyUsage)
		return 2
	}
	switch args[0] {
	case "check":
		return policyCheck(args[1:], stdout, stderr)
	case "test":
		return policyTest(args[1:], stdout, stderr)
	case "explain":
		return policyExplain(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, policyUsage)
		return 0
	}
	fmt.Fprintf(stderr, "portcullis policy: unknown subcommand %q\n%s\n", args[0], policyUsage)
	return 2
}

// parseWithFiles parses flags that may come before or after the positional arguments.
func parseWithFiles(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// loadPolicy loads a configuration and compiles its authz policy.
func loadPolicy(file string) (*config.Config, *config.Section, *policy.Policy, error) {
	cfg, err := config.Load(file)
	if err != nil {
		return nil, nil, nil, err
	}
	sec, ok := cfg.GuardSections()[authz.Name]
	if !ok {
		return nil, nil, nil, fmt.Errorf("%s: there is no guards.%s section: the configuration has no policy", file, authz.Name)
	}
	p, err := authz.Load(sec)
	if err != nil {
		return nil, nil, nil, err
	}
	return cfg, sec, p, nil
}

func policyCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("policy check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	strict := fs.Bool("strict", false, "fail on warnings too")
	pos, err := parseWithFiles(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: portcullis policy check FILE [-strict]")
		return 2
	}
	cfg, sec, p, err := loadPolicy(pos[0])
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	var servers []string
	for _, s := range cfg.Servers {
		servers = append(servers, s.Name)
	}
	warnings := append(slices.Clone(p.Warnings()), p.UnknownServers(servers)...)
	for _, w := range warnings {
		fmt.Fprintf(stdout, "warning: %v\n", authz.Locate(sec, w))
	}
	fmt.Fprintf(stdout, "%s: %d rules, default %s: ok", pos[0], p.Len(), p.Default())
	if len(warnings) > 0 {
		fmt.Fprintf(stdout, " (%d warnings)", len(warnings))
	}
	fmt.Fprintln(stdout)
	if *strict && len(warnings) > 0 {
		return 1
	}
	return 0
}

// testFile is a file of policy unit tests.
type testFile struct {
	Cases []testCase `yaml:"cases"`
}

type testCase struct {
	Name      string `yaml:"name"`
	Principal struct {
		ID     string         `yaml:"id"`
		Groups []string       `yaml:"groups"`
		Method string         `yaml:"method"`
		Claims map[string]any `yaml:"claims"`
	} `yaml:"principal"`
	Method      string         `yaml:"method"` // default tools/call
	Server      string         `yaml:"server"`
	Tool        string         `yaml:"tool"`
	Args        map[string]any `yaml:"args"`
	Annotations map[string]any `yaml:"annotations"`
	// Expect is allow, deny or approve for a call; visible or hidden for a listing method
	// (tools/list, ...: the tool is decided as the guard decides listed items).
	Expect string `yaml:"expect"`
	// Rule, when set, is the rule that must decide ("default" for the default).
	Rule string `yaml:"rule"`
}

func loadTests(file string) ([]testCase, []int, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var tf testFile
	if err := dec.Decode(&tf); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", file, err)
	}
	var root yaml.Node
	yaml.Unmarshal(data, &root)
	lines := make([]int, len(tf.Cases))
	if len(root.Content) > 0 {
		m := root.Content[0]
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == "cases" {
				for j, n := range m.Content[i+1].Content {
					if j < len(lines) {
						lines[j] = n.Line
					}
				}
			}
		}
	}
	var errs []error
	for i, tc := range tf.Cases {
		where := fmt.Sprintf("%s:%d: cases[%d]", file, lines[i], i)
		if tc.Name == "" {
			errs = append(errs, fmt.Errorf("%s: name is required", where))
		}
		method := tc.Method
		if method == "" {
			method = "tools/call"
		}
		valid := []string{"allow", "deny", "approve"}
		if _, list := policy.ListMethods[method]; list {
			valid = []string{"visible", "hidden"}
		}
		if !slices.Contains(valid, tc.Expect) {
			errs = append(errs, fmt.Errorf("%s: expect must be %s for %s, not %q", where, strings.Join(valid, ", "), method, tc.Expect))
		}
	}
	if len(tf.Cases) == 0 {
		errs = append(errs, fmt.Errorf("%s: no cases", file))
	}
	return tf.Cases, lines, errors.Join(errs...)
}

// input builds the policy input of a test case, as the guard would.
func (tc *testCase) input() (*policy.Input, bool, error) {
	in := &policy.Input{
		Principal: policy.Principal{ID: tc.Principal.ID, Groups: tc.Principal.Groups, Method: tc.Principal.Method, Claims: tc.Principal.Claims},
		Server:    tc.Server, Tool: tc.Tool, Method: tc.Method,
	}
	if in.Method == "" {
		in.Method = "tools/call"
	}
	call, list := policy.ListMethods[in.Method]
	if list {
		in.Method = call
	}
	if tc.Args != nil {
		raw, err := json.Marshal(tc.Args)
		if err != nil {
			return nil, false, fmt.Errorf("args: %w", err)
		}
		in.Args = raw
	}
	in.Annotations = tc.Annotations
	if in.Method == "tools/call" {
		in.Annotations = policy.AnnotationDefaults(tc.Annotations)
	}
	return in, list, nil
}

func policyTest(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("policy test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	verbose := fs.Bool("v", false, "explain failures rule by rule")
	pos, err := parseWithFiles(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 2 {
		fmt.Fprintln(stderr, "usage: portcullis policy test FILE TESTS.yaml [-v]")
		return 2
	}
	_, _, p, err := loadPolicy(pos[0])
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	cases, lines, err := loadTests(pos[1])
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	failed := 0
	for i := range cases {
		tc := &cases[i]
		in, list, err := tc.input()
		if err != nil {
			fmt.Fprintf(stdout, "FAIL %s (%s:%d): %v\n", tc.Name, pos[1], lines[i], err)
			failed++
			continue
		}
		var got string
		var d policy.Decision
		if list {
			var visible bool
			visible, d = p.Visible(in)
			got = map[bool]string{true: "visible", false: "hidden"}[visible]
		} else {
			d = p.Decide(in)
			got = d.Effect.String()
		}
		rule := d.Rule
		if d.Index < 0 {
			rule = "default"
		}
		switch {
		case got != tc.Expect:
			fmt.Fprintf(stdout, "FAIL %s (%s:%d): got %s, want %s: %s\n", tc.Name, pos[1], lines[i], got, tc.Expect, d.Reason())
		case tc.Rule != "" && rule != tc.Rule:
			fmt.Fprintf(stdout, "FAIL %s (%s:%d): %s as expected, but by rule %q, not %q\n", tc.Name, pos[1], lines[i], got, rule, tc.Rule)
		default:
			fmt.Fprintf(stdout, "PASS %s\n", tc.Name)
			continue
		}
		failed++
		if *verbose && !list {
			results, _ := p.Explain(in)
			printResults(stdout, results)
		}
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", len(cases)-failed, failed)
	if failed > 0 {
		return 1
	}
	return 0
}

func policyExplain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("policy explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	id := fs.String("principal", "", "principal id")
	groups := fs.String("groups", "", "principal groups, comma-separated")
	authMethod := fs.String("auth-method", "", "how the principal authenticated (principal.method)")
	claims := fs.String("claims", "", "principal claims, a JSON object")
	method := fs.String("method", "tools/call", "the MCP method")
	server := fs.String("server", "", "the server the call goes to")
	tool := fs.String("tool", "", "tool or prompt name (without server prefix), or resource URI")
	argsJSON := fs.String("args", "", "the call's arguments, a JSON object")
	annJSON := fs.String("annotations", "", "the tool's annotations, a JSON object (default: MCP's defaults)")
	pos, err := parseWithFiles(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: portcullis policy explain FILE -principal ID [-groups a,b] [-method M] [-server S] [-tool T] [-args JSON] [-annotations JSON]")
		return 2
	}
	_, _, p, err := loadPolicy(pos[0])
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	in := &policy.Input{Principal: policy.Principal{ID: *id, Method: *authMethod}, Server: *server, Tool: *tool, Method: *method}
	if *groups != "" {
		in.Principal.Groups = strings.Split(*groups, ",")
	}
	objects := []struct {
		flag, val string
		set       func(raw []byte) error
	}{
		{"args", *argsJSON, func(raw []byte) error { in.Args = raw; return nil }},
		{"claims", *claims, func(raw []byte) error { return json.Unmarshal(raw, &in.Principal.Claims) }},
		{"annotations", *annJSON, func(raw []byte) error { return json.Unmarshal(raw, &in.Annotations) }},
	}
	for _, o := range objects {
		if o.val == "" {
			continue
		}
		raw := []byte(o.val)
		if !json.Valid(raw) || bytes.TrimSpace(raw)[0] != '{' {
			fmt.Fprintf(stderr, "portcullis policy explain: -%s must be a JSON object\n", o.flag)
			return 2
		}
		if err := o.set(raw); err != nil {
			fmt.Fprintf(stderr, "portcullis policy explain: -%s: %v\n", o.flag, err)
			return 2
		}
	}
	if call, list := policy.ListMethods[in.Method]; list {
		fmt.Fprintf(stderr, "portcullis policy explain: %s is not decided; explain the call that uses an item instead (%s)\n", in.Method, call)
		return 2
	}
	if in.Method == "tools/call" {
		in.Annotations = policy.AnnotationDefaults(in.Annotations)
	}
	fmt.Fprintf(stdout, "call: %s by %q", describeInput(in), in.Principal.ID)
	if len(in.Principal.Groups) > 0 {
		fmt.Fprintf(stdout, " (groups %s)", strings.Join(in.Principal.Groups, ", "))
	}
	fmt.Fprintln(stdout)
	results, d := p.Explain(in)
	printResults(stdout, results)
	fmt.Fprintf(stdout, "decision: %s: %s\n", d.Effect, d.Reason())
	visible, vd := p.Visible(in)
	if visible {
		fmt.Fprintf(stdout, "in listings: shown (%s)\n", vd.Reason())
	} else {
		fmt.Fprintf(stdout, "in listings: hidden (%s)\n", vd.Reason())
	}
	return 0
}

func describeInput(in *policy.Input) string {
	s := in.Method
	if in.Tool != "" {
		s += fmt.Sprintf(" of %q", in.Tool)
	}
	if in.Server != "" {
		s += fmt.Sprintf(" on server %q", in.Server)
	}
	return s
}

func printResults(w io.Writer, results []policy.RuleResult) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  #\trule\teffect\tscope\tcondition\tresult\t")
	for _, r := range results {
		scope, value := "no", "-"
		if r.InScope {
			scope, value = "yes", r.Value
		}
		cond := r.Condition
		if cond == "" {
			cond = "(none)"
		}
		mark := ""
		if r.Matched {
			mark = "matched"
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Index, r.Name, r.Effect, scope, oneLine(cond), value, mark)
	}
	tw.Flush()
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}
