package limits_test

import (
	"context"
	"strings"
	"testing"

	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

// TestSetupRules checks rules and loop detection as written in a configuration file: good
// ones build, bad ones are refused with the file, line and field.
func TestSetupRules(t *testing.T) {
	const good = `
    day_zone: Europe/Paris
    rules:
      - name: interns
        groups: [interns]
        rate: 10/s
        burst: 20
        concurrency: 2
      - name: github-writes
        principals: ["*"]
        servers: [github]
        tools: ["create_*", "delete_*"]
        per: [principal, tool]
        daily_calls: 100
        timeout: 30s
      - name: images
        tools: [generate_image]
        cost: 50
      - name: wallet
        daily_budget: 1000
      - name: whole-server
        servers: [slow]
        methods: ["*"]
        per: []
        concurrency: 8
        max_result_bytes: 65536
    loop:
      calls: 5
      window: 30s
      cooldown: 2m
`
	tests := []struct {
		name string
		body string
		want []string // substrings of the error; nil: builds
	}{
		{"good", good, nil},
		{"loop defaults", "\n    loop: {calls: 10}\n", nil},
		{"unknown rule field", "\n    rules:\n      - name: a\n        rate: 1/s\n        brust: 3\n", []string{"test.yaml:10:", "guards.limits.rules[0].brust", `unknown field "brust" in a rule`}},
		{"rule not a mapping", "\n    rules:\n      - just-a-name\n", []string{"test.yaml:8:", "a rule must be a mapping"}},
		{"bad rate", "\n    rules:\n      - name: a\n        rate: 10 per second\n", []string{"test.yaml:9:", "guards.limits.rules[0].rate", `"10 per second" is not a rate`}},
		{"zero rate", "\n    rules:\n      - name: a\n        rate: 0/s\n", []string{"guards.limits.rules[0].rate", "must be positive"}},
		{"burst without rate", "\n    rules:\n      - name: a\n        concurrency: 1\n        burst: 3\n", []string{"test.yaml:10:", "guards.limits.rules[0].burst", "needs a rate"}},
		{"no name", "\n    rules:\n      - rate: 1/s\n", []string{"test.yaml:8:", "guards.limits.rules[0].name", "needs a name"}},
		{"duplicate name", "\n    rules:\n      - {name: a, rate: 1/s}\n      - {name: a, concurrency: 1}\n", []string{"test.yaml:9:", "guards.limits.rules[1].name", "already used by rules[0]"}},
		{"no limit", "\n    rules:\n      - name: a\n        tools: [x]\n", []string{"guards.limits.rules[0].name", "sets no limit"}},
		{"negative", "\n    rules:\n      - name: a\n        daily_calls: -1\n", []string{"test.yaml:9:", "guards.limits.rules[0].daily_calls", "must be positive"}},
		{"cost without budget", "\n    rules:\n      - name: a\n        cost: 5\n", []string{"guards.limits.rules[0].cost", "no rule sets one"}},
		{"bad per", "\n    rules:\n      - name: a\n        rate: 1/s\n        per: [user]\n", []string{"test.yaml:10:", "guards.limits.rules[0].per", `"user"`}},
		{"bad glob", "\n    rules:\n      - name: a\n        rate: 1/s\n        tools: ['x\\']\n", []string{"guards.limits.rules[0].tools", "escapes nothing"}},
		{"wrong type", "\n    rules:\n      - name: a\n        daily_calls: many\n", []string{"test.yaml:9:", "guards.limits.rules[0].daily_calls", "cannot unmarshal"}},
		{"bad zone", "\n    day_zone: Mars/Olympus\n", []string{"test.yaml:7:", "guards.limits.day_zone", "unknown time zone"}},
		{"loop calls", "\n    loop:\n      calls: 1\n", []string{"test.yaml:8:", "guards.limits.loop.calls", "2 to 1000"}},
		{"loop unknown field", "\n    loop:\n      calls: 3\n      cooldwn: 1m\n", []string{"test.yaml:9:", "guards.limits.loop.cooldwn", `unknown field "cooldwn" in loop`}},
		{"two problems", "\n    rules:\n      - name: a\n        rate: fast\n      - name: b\n        concurrency: -2\n", []string{"rules[0].rate", "rules[1].concurrency"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := guard.Env{Store: openStore(t)}
			h, _, err := guard.Build(guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
				return jsonrpc.NewResult(c.Msg.ID, nil), nil
			}), section(t, tt.body), env)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Build: %v", err)
				}
				passes(t, h, call("s", alice, "tools/call"))
				return
			}
			if err == nil {
				t.Fatalf("Build accepted %q", tt.body)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestSetupNeedsStore: daily limits without a store refuse to set up rather than never
// counting.
func TestSetupNeedsStore(t *testing.T) {
	_, _, err := guard.Build(guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
		return nil, nil
	}), section(t, "\n    rules:\n      - {name: a, daily_calls: 5}\n"), guard.Env{})
	if err == nil || !strings.Contains(err.Error(), "counted in the store") {
		t.Errorf("Build without a store: %v", err)
	}
}
