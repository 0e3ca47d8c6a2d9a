package policy

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func loadTestPolicy(t testing.TB, file string) *Policy {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var c Config
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	p, err := Compile(c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var (
	admin      = Principal{ID: "root", Groups: []string{"admin"}, Method: "oidc"}
	alice      = Principal{ID: "alice", Groups: []string{"dev"}, Method: "oidc"}
	bob        = Principal{ID: "bob", Groups: []string{"finance"}, Method: "apikey"}
	contractor = Principal{ID: "eve@contractor.example", Groups: []string{"finance"}, Method: "oidc"}
	nobody     = Principal{ID: "nobody", Method: "none"}
)

var (
	readOnly    = AnnotationDefaults(map[string]any{"readOnlyHint": true, "destructiveHint": false})
	destructive = AnnotationDefaults(map[string]any{"destructiveHint": true})
)

func TestDecide(t *testing.T) {
	p := loadTestPolicy(t, "testdata/policy.yaml")
	tests := []struct {
		name    string
		in      Input
		want    Effect
		rule    string // "" for the default
		wantErr bool   // the deciding rule failed (closed)
	}{
		{"admin anything", Input{Principal: admin, Server: "payments", Tool: "refund", Method: "tools/call"}, Allow, "admins-everything", false},
		{"dev reads workspace", Input{Principal: alice, Server: "filesystem", Tool: "read_file", Method: "tools/call", Args: []byte(`{"path":"/workspace/a.go"}`)}, Allow, "fs-read-workspace", false},
		{"dev lists workspace", Input{Principal: alice, Server: "filesystem", Tool: "list_directory", Method: "tools/call", Args: []byte(`{"path":"/workspace/"}`)}, Allow, "fs-read-workspace", false},
		{"dev reads outside workspace", Input{Principal: alice, Server: "filesystem", Tool: "read_file", Method: "tools/call", Args: []byte(`{"path":"/home/alice/.ssh/id_ed25519"}`)}, Deny, "", false},
		{"dev reads a .env in the workspace: deny wins", Input{Principal: alice, Server: "filesystem", Tool: "read_file", Method: "tools/call", Args: []byte(`{"path":"/workspace/.env"}`)}, Deny, "fs-no-secrets", false},
		{"dev traverses out of the workspace", Input{Principal: alice, Server: "filesystem", Tool: "read_file", Method: "tools/call", Args: []byte(`{"path":"/workspace/../etc/passwd"}`)}, Deny, "fs-no-secrets", false},
		{"admin reads a .env: deny wins over allow", Input{Principal: admin, Server: "filesystem", Tool: "read_file", Method: "tools/call", Args: []byte(`{"path":"/workspace/.env"}`)}, Deny, "fs-no-secrets", false},
		{"allow rule failing does not match (no path)", Input{Principal: alice, Server: "filesystem", Tool: "read_file", Method: "tools/call", Args: []byte(`{}`)}, Deny, "", false},
		{"allow rule failing does not match (path not a string)", Input{Principal: alice, Server: "filesystem", Tool: "list_directory", Method: "tools/call", Args: []byte(`{"path":42}`)}, Deny, "fs-no-secrets", true},
		{"deny rule failing on a wrong type fails closed", Input{Principal: admin, Server: "filesystem", Tool: "read_file", Method: "tools/call", Args: []byte(`{"path":["/workspace/a"]}`)}, Deny, "fs-no-secrets", true},
		{"dev writes own dir", Input{Principal: alice, Server: "filesystem", Tool: "write_file", Method: "tools/call", Args: []byte(`{"path":"/workspace/alice/x","content":"hi"}`)}, Allow, "fs-write-own-dir", false},
		{"dev writes another's dir", Input{Principal: alice, Server: "filesystem", Tool: "write_file", Method: "tools/call", Args: []byte(`{"path":"/workspace/bob/x"}`)}, Deny, "", false},
		{"write_file is not a read tool", Input{Principal: alice, Server: "filesystem", Tool: "write_file", Method: "tools/call", Args: []byte(`{"path":"/workspace/x"}`)}, Deny, "", false},
		{"github read-only tool", Input{Principal: alice, Server: "github", Tool: "get_issue", Method: "tools/call", Annotations: readOnly}, Allow, "github-read-only", false},
		{"github destructive tool needs approval", Input{Principal: alice, Server: "github", Tool: "delete_repo", Method: "tools/call", Annotations: destructive}, Approve, "github-destructive-needs-approval", false},
		{"github tool never listed counts as destructive", Input{Principal: alice, Server: "github", Tool: "merge_pr", Method: "tools/call", Annotations: AnnotationDefaults(nil)}, Approve, "github-destructive-needs-approval", false},
		{"github without annotations: approve rule fails closed", Input{Principal: alice, Server: "github", Tool: "merge_pr", Method: "tools/call"}, Approve, "github-destructive-needs-approval", true},
		{"github for finance", Input{Principal: bob, Server: "github", Tool: "get_issue", Method: "tools/call", Annotations: readOnly}, Deny, "", false},
		{"small payment", Input{Principal: bob, Server: "payments", Tool: "pay", Method: "tools/call", Args: []byte(`{"amount":99.5,"currency":"USD"}`)}, Allow, "payments-small", false},
		{"large payment", Input{Principal: bob, Server: "payments", Tool: "pay", Method: "tools/call", Args: []byte(`{"amount":100,"currency":"USD"}`)}, Approve, "payments-large", false},
		{"huge payment", Input{Principal: bob, Server: "payments", Tool: "pay", Method: "tools/call", Args: []byte(`{"amount":1e6,"currency":"USD"}`)}, Deny, "", false},
		{"payment in euros", Input{Principal: bob, Server: "payments", Tool: "pay", Method: "tools/call", Args: []byte(`{"amount":5,"currency":"EUR"}`)}, Deny, "payments-usd-only", false},
		{"deny rule failing fails closed (no currency)", Input{Principal: bob, Server: "payments", Tool: "pay", Method: "tools/call", Args: []byte(`{"amount":5}`)}, Deny, "payments-usd-only", true},
		{"contractor", Input{Principal: contractor, Server: "payments", Tool: "pay", Method: "tools/call", Args: []byte(`{"amount":5,"currency":"USD"}`)}, Deny, "no-contractors-on-payments", false},
		{"contractor listing balance", Input{Principal: contractor, Server: "payments", Tool: "balance", Method: "tools/call"}, Deny, "no-contractors-on-payments", false},
		{"docs prompt for anyone", Input{Principal: nobody, Server: "docs", Tool: "summarize", Method: "prompts/get", Args: []byte(`{"topic":"x"}`)}, Allow, "docs-for-everyone", false},
		{"docs resource", Input{Principal: nobody, Server: "docs", Tool: "file:///guides/intro.md", Method: "resources/read"}, Allow, "docs-for-everyone", false},
		{"docs draft resource, deep path", Input{Principal: nobody, Server: "docs", Tool: "file:///drafts/2026/plan.md", Method: "resources/read"}, Deny, "docs-no-drafts", false},
		{"docs tool is not a prompt", Input{Principal: nobody, Server: "docs", Tool: "search", Method: "tools/call"}, Deny, "", false},
		{"logging for anyone", Input{Principal: nobody, Method: "logging/setLevel"}, Allow, "housekeeping", false},
		{"unknown method", Input{Principal: nobody, Server: "docs", Method: "tasks/list"}, Deny, "", false},
		{"unknown server", Input{Principal: alice, Server: "elsewhere", Tool: "read_file", Method: "tools/call", Args: []byte(`{"path":"/workspace/a"}`)}, Deny, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.Decide(&tt.in)
			if d.Effect != tt.want || d.Rule != tt.rule || (d.Err != nil) != tt.wantErr {
				t.Errorf("got %s by %q (err %v), want %s by %q (err %v): %s", d.Effect, d.Rule, d.Err, tt.want, tt.rule, tt.wantErr, d.Reason())
			}
			if (d.Index < 0) != (tt.rule == "") {
				t.Errorf("index %d for rule %q", d.Index, d.Rule)
			}
			results, e := p.Explain(&tt.in)
			if e.Effect != d.Effect || e.Rule != d.Rule {
				t.Errorf("Explain decided %s by %q, Decide %s by %q", e.Effect, e.Rule, d.Effect, d.Rule)
			}
			if len(results) != p.Len() {
				t.Errorf("Explain gave %d results for %d rules", len(results), p.Len())
			}
		})
	}
}

func TestDefaultAllow(t *testing.T) {
	p, err := Compile(Config{Default: "allow", Rules: []Rule{{Name: "no-shell", Effect: "deny", Tools: []string{"shell*"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if d := p.Decide(&Input{Tool: "read", Method: "tools/call"}); d.Effect != Allow || d.Index != -1 {
		t.Errorf("got %+v", d)
	}
	if d := p.Decide(&Input{Tool: "shell_exec", Method: "tools/call"}); d.Effect != Deny || d.Rule != "no-shell" {
		t.Errorf("got %+v", d)
	}
	empty, err := Compile(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if d := empty.Decide(&Input{Tool: "read", Method: "tools/call"}); d.Effect != Deny {
		t.Errorf("empty policy: got %+v", d)
	}
}

func TestVisible(t *testing.T) {
	p := loadTestPolicy(t, "testdata/policy.yaml")
	tests := []struct {
		name string
		in   Input
		want bool
	}{
		// Allowed for some arguments: shown.
		{"dev sees read_file", Input{Principal: alice, Server: "filesystem", Tool: "read_file", Method: "tools/call"}, true},
		{"dev sees write_file", Input{Principal: alice, Server: "filesystem", Tool: "write_file", Method: "tools/call"}, true},
		{"dev does not see delete_file", Input{Principal: alice, Server: "filesystem", Tool: "delete_file", Method: "tools/call"}, false},
		{"finance does not see read_file", Input{Principal: bob, Server: "filesystem", Tool: "read_file", Method: "tools/call"}, false},
		{"finance sees pay", Input{Principal: bob, Server: "payments", Tool: "pay", Method: "tools/call"}, true},
		{"contractor does not see pay: denied whatever the arguments", Input{Principal: contractor, Server: "payments", Tool: "pay", Method: "tools/call"}, false},
		{"dev sees read-only github tool", Input{Principal: alice, Server: "github", Tool: "get_issue", Method: "tools/call", Annotations: readOnly}, true},
		{"dev sees destructive github tool (approvable)", Input{Principal: alice, Server: "github", Tool: "delete_repo", Method: "tools/call", Annotations: destructive}, true},
		{"finance does not see github", Input{Principal: bob, Server: "github", Tool: "get_issue", Method: "tools/call", Annotations: readOnly}, false},
		{"admin sees everything", Input{Principal: admin, Server: "payments", Tool: "refund", Method: "tools/call"}, true},
		{"draft resources hidden", Input{Principal: nobody, Server: "docs", Tool: "file:///drafts/plan.md", Method: "resources/read"}, false},
		{"guide resources shown", Input{Principal: nobody, Server: "docs", Tool: "file:///guides/intro.md", Method: "resources/read"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, d := p.Visible(&tt.in)
			if got != tt.want {
				t.Errorf("visible = %v, want %v: %s", got, tt.want, d.Reason())
			}
		})
	}
}

// TestArgsValues checks that the lazy view of raw JSON arguments behaves as the same
// arguments decoded: each condition gives the same result on both.
func TestArgsValues(t *testing.T) {
	args := []string{
		`{"path":"/workspace/a","amount":3,"price":2.5,"big":12345678901234567890,"neg":-4,"tags":["a","b"],"nested":{"k":{"v":[1,{"w":true}]}},"esc":"a\"b\\c\u00e9","nul":null,"empty":{},"list":[]}`,
		`{"amount":3.0,"tags":[],"nested":{"k":null}}`,
		`{}`,
		` { "path" : "/x" , "amount" : 1e2 } `,
	}
	conds := []string{
		`args.path.startsWith("/workspace/")`,
		`has(args.path)`, `"path" in args`, `args.?path.orValue("none") == "none"`,
		`args.amount == 3`, `args.amount < 3.5`, `args.amount + 1 == 4`, `args.amount * 2.0 == 6.0`,
		`args.price > 2`, `args.big > 1`, `args.neg < 0`,
		`size(args)`, `size(args.tags)`, `args.tags[1] == "b"`, `"a" in args.tags`, `args.tags.exists(t, t == "b")`,
		`args.tags == ["a", "b"]`, `args.nested.k.v[1].w`, `args.nested == {"k": {"v": [1, {"w": true}]}}`,
		`args.esc == "a\"b\\cé"`, `args.nul == null`, `args.empty == {}`, `size(args.list) == 0`,
		`args.exists(k, k == "amount")`, `args.map(k, k).size()`, `type(args) == map`, `type(args.tags) == list`,
		`args.tags + ["c"] == ["a", "b", "c"]`, `dyn(args) == dyn(args)`, `args.nested.k.v.size()`,
	}
	for _, a := range args {
		for _, c := range conds {
			lazy, eager := evalBoth(t, c, a)
			if lazy != eager {
				t.Errorf("args %s, %s: lazy %s, decoded %s", a, c, lazy, eager)
			}
		}
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"unknown rule field", "rules:\n  - name: a\n    effect: allow\n    tool: [x]\n", []string{`line 4: unknown field "tool"`}},
		{"bad effect", "rules:\n  - name: a\n    effect: permit\n", []string{`rules[0] "a": effect: unknown effect "permit"`}},
		{"no effect", "rules:\n  - name: a\n", []string{`effect: required`}},
		{"no name", "rules:\n  - effect: allow\n", []string{`name: every rule needs a name`}},
		{"duplicate names", "rules:\n  - {name: a, effect: allow}\n  - {name: a, effect: deny}\n", []string{`rules[1] "a": name: the name is already used by rules[0]`}},
		{"bad glob", "rules:\n  - {name: a, effect: allow, tools: ['x\\']}\n", []string{`tools: bad pattern`}},
		{"empty glob", "rules:\n  - {name: a, effect: allow, servers: ['']}\n", []string{`servers: bad pattern: empty pattern`}},
		{"syntax error", "rules:\n  - {name: a, effect: allow, when: 'args.path.startsWith('}\n", []string{`when: ERROR: rules[0].when:1:22`}},
		{"undeclared variable", "rules:\n  - {name: a, effect: allow, when: 'argz.path == \"x\"'}\n", []string{`undeclared reference to 'argz'`}},
		{"not a bool", "rules:\n  - {name: a, effect: allow, when: 'server + \"x\"'}\n", []string{`must be a bool, not string`}},
		{"principal field typo", "rules:\n  - {name: a, effect: allow, when: '\"x\" in principal.group'}\n", []string{`principal has no field "group"`}},
		{"bad default", "default: maybe\nrules: []\n", []string{`default: unknown effect "maybe"`}},
		{"several at once", "rules:\n  - {name: a, effect: nope}\n  - {name: b, effect: allow, when: 'x'}\n", []string{`rules[0] "a": effect`, `rules[1] "b": when`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			err := yaml.Unmarshal([]byte(tt.yaml), &c)
			if err == nil {
				_, err = Compile(c)
			}
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestErrorsLocateRules(t *testing.T) {
	var c Config
	src := "rules:\n  - name: ok\n    effect: allow\n  - name: bad\n    effect: allow\n    when: >-\n      args.x ==\n"
	if err := yaml.Unmarshal([]byte(src), &c); err != nil {
		t.Fatal(err)
	}
	_, err := Compile(c)
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v is not a *policy.Error", err)
	}
	if pe.Index != 1 || pe.Name != "bad" || pe.Field != "when" || pe.Line != 6 {
		t.Errorf("got %+v, want rule 1 %q, field when, line 6", pe, "bad")
	}
	if c.Rules[1].Line != 4 || c.Rules[1].Column != 5 {
		t.Errorf("rule at %d:%d, want 4:5", c.Rules[1].Line, c.Rules[1].Column)
	}
}

func TestLint(t *testing.T) {
	p := loadTestPolicy(t, "testdata/policy.yaml")
	var got []string
	for _, w := range p.Warnings() {
		got = append(got, w.Error())
	}
	// The realistic policy has one deliberate hazard: a deny rule reading a field it does
	// not test for.
	if len(got) != 1 || !strings.Contains(got[0], `"payments-usd-only": reads args.currency without has(args.currency)`) {
		t.Errorf("warnings %q", got)
	}

	src := `
rules:
  - {name: deny-shell, effect: deny, tools: ["shell*"]}
  - {name: allow-shell-exec, effect: allow, tools: [shell_exec], when: '"ops" in principal.groups'}
  - {name: approve-shell, effect: approve, tools: ["shell_*"], servers: [box]}
  - {name: all-fs, effect: allow, servers: [fs]}
  - {name: fs-read, effect: allow, servers: [fs], tools: ["read_*"], when: 'args.path != ""'}
  - {name: fs-read-early, effect: allow, servers: [fs, other], tools: [read_file]}
  - {name: never, effect: allow, when: 'false'}
  - {name: listing, effect: allow, methods: [tools/list]}
  - {name: typo, effect: allow, methods: [tool/call]}
  - {name: ann, effect: deny, when: 'annotations.destructivehint == true'}
  - {name: ok-ann, effect: approve, methods: [tools/call], when: 'annotations.destructiveHint'}
  - {name: guarded, effect: deny, when: 'has(args.cmd) && args.cmd.contains("rm") || "url" in args && args.url.startsWith("http:")'}
`
	var c Config
	if err := yaml.Unmarshal([]byte(src), &c); err != nil {
		t.Fatal(err)
	}
	p, err := Compile(c)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"allow-shell-exec": {`unreachable: wherever it matches, rules[0] "deny-shell" (deny, no condition)`},
		"approve-shell":    {`unreachable: wherever it matches, rules[0] "deny-shell"`},
		"fs-read":          {`redundant: wherever it matches, the earlier rules[3] "all-fs"`},
		"never":            {`literal false`},
		"listing":          {`method "tools/list" is never decided`},
		"typo":             {`method "tool/call" is not one MCP defines`},
		"ann":              {`not limited to methods: [tools/call]`, `annotations.destructivehint is not an annotation MCP defines`},
	}
	seen := map[string]int{}
	for _, w := range p.Warnings() {
		seen[w.Name]++
		found := false
		for _, s := range want[w.Name] {
			if strings.Contains(w.Msg, s) {
				found = true
			}
		}
		if !found {
			t.Errorf("unexpected warning %v", w)
		}
	}
	for name, ws := range want {
		if seen[name] != len(ws) {
			t.Errorf("rule %s: %d warnings, want %d (%q)", name, seen[name], len(ws), ws)
		}
	}
	if ws := p.UnknownServers([]string{"fs", "box"}); len(ws) != 1 || ws[0].Name != "fs-read-early" || !strings.Contains(ws[0].Msg, `"other"`) {
		t.Errorf("unknown servers: %v", ws)
	}
}

func TestCostLimit(t *testing.T) {
	// A quadratic condition over a long list hits the cost limit; a deny rule then fails
	// closed.
	p, err := Compile(Config{Default: "allow", Rules: []Rule{{Name: "quadratic", Effect: "deny",
		When: `args.xs.exists(x, args.xs.exists(y, x + y < 0))`}}})
	if err != nil {
		t.Fatal(err)
	}
	xs := "[" + strings.TrimSuffix(strings.Repeat("1,", 5000), ",") + "]"
	d := p.Decide(&Input{Method: "tools/call", Args: []byte(`{"xs":` + xs + `}`)})
	if d.Effect != Deny || d.Err == nil || !strings.Contains(d.Err.Error(), "cost limit") {
		t.Errorf("got %+v", d)
	}
	if d := p.Decide(&Input{Method: "tools/call", Args: []byte(`{"xs":[1,2,3]}`)}); d.Effect != Allow {
		t.Errorf("small list: got %+v", d)
	}
}

func TestGlobs(t *testing.T) {
	tests := []struct {
		pat, s string
		want   bool
	}{
		{"read_*", "read_file", true}, {"read_*", "write_file", false}, {"*", "", true},
		{"*", "tools/call", true}, {"tools/*", "tools/call", true}, {"*_file", "read_file", true},
		{"r?ad", "read", true}, {"r?ad", "rad", false}, {"*a*b*", "xxaxxbxx", true}, {"*a*b*", "xxbxxaxx", false},
		{"file:///w/*", "file:///w/a/b/c", true}, {`a\*`, "a*", true}, {`a\*`, "ab", false},
		{"[x]", "[x]", true}, {"[x]", "x", false}, {"exact", "exact", true}, {"exact", "exactly", false},
		{"a*b*c", "abc", true}, {"a*b*c", "ab", false}, {"**", "anything", true},
	}
	for _, tt := range tests {
		g, err := compileGlob(tt.pat)
		if err != nil {
			t.Fatalf("%q: %v", tt.pat, err)
		}
		if got := g.match(tt.s); got != tt.want {
			t.Errorf("%q matches %q = %v, want %v", tt.pat, tt.s, got, tt.want)
		}
		if got := matchGlob(tt.pat, tt.s); got != tt.want {
			t.Errorf("general: %q matches %q = %v, want %v", tt.pat, tt.s, got, tt.want)
		}
	}
}

func FuzzLookup(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":{"c":[1,2,{"d":"e"}]},"f\"g":"h\\i"}`), "b")
	f.Add([]byte(`{"path":"/workspace/x","esc\u0041":true}`), "escA")
	f.Add([]byte(` { } `), "x")
	f.Fuzz(func(t *testing.T, doc []byte, key string) {
		v, err := decodeJSON(doc)
		m, ok := v.(map[string]any)
		if err != nil || !ok || !jsonValid(doc) {
			lookup(doc, key) // must not panic or hang
			return
		}
		raw, found := lookup(doc, key)
		_, want := m[key]
		if found != want {
			t.Fatalf("lookup %q in %s: found %v, want %v", key, doc, found, want)
		}
		if found {
			got, err := decodeJSON(raw)
			if err != nil {
				t.Fatalf("value %s of %q: %v", raw, key, err)
			}
			if !reflect.DeepEqual(got, m[key]) {
				t.Fatalf("value of %q in %s: %#v, want %#v", key, doc, got, m[key])
			}
		}
	})
}

func TestConcurrentDecide(t *testing.T) {
	p := loadTestPolicy(t, "testdata/policy.yaml")
	inputs := []struct {
		in   Input
		want Effect
	}{
		{Input{Principal: alice, Server: "filesystem", Tool: "read_file", Method: "tools/call", Args: []byte(`{"path":"/workspace/a"}`)}, Allow},
		{Input{Principal: bob, Server: "payments", Tool: "pay", Method: "tools/call", Args: []byte(`{"amount":5}`)}, Deny},
		{Input{Principal: bob, Server: "payments", Tool: "pay", Method: "tools/call", Args: []byte(`{"amount":500,"currency":"USD"}`)}, Approve},
	}
	done := make(chan struct{})
	for g := 0; g < 8; g++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; i < 300; i++ {
				tc := inputs[(g+i)%len(inputs)]
				if d := p.Decide(&tc.in); d.Effect != tc.want {
					t.Errorf("got %s, want %s", d.Effect, tc.want)
					return
				}
				p.Visible(&tc.in)
			}
		}()
	}
	for g := 0; g < 8; g++ {
		<-done
	}
}
