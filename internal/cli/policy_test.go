package cli

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestPolicyCheck(t *testing.T) {
	code, out, errs := runCLI("policy", "check", "testdata/policy/gateway.yaml")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	if want := "testdata/policy/gateway.yaml: 6 rules, default deny: ok\n"; out != want {
		t.Errorf("stdout %q, want %q", out, want)
	}

	code, _, errs = runCLI("policy", "check", "testdata/policy/bad.yaml")
	if code != 1 {
		t.Errorf("bad policy: exit %d", code)
	}
	for _, want := range []string{
		`testdata/policy/bad.yaml:13:15: guards.authz.rules[1].when: rule "broken": ERROR: rules[1].when:1:`,
		`testdata/policy/bad.yaml:16:15: guards.authz.rules[2].when: rule "typo": principal has no field "group"`,
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr %q does not contain %q", errs, want)
		}
	}

	code, out, _ = runCLI("policy", "check", "testdata/policy/lint.yaml")
	if code != 0 {
		t.Errorf("warnings only: exit %d", code)
	}
	for _, want := range []string{
		`warning: testdata/policy/lint.yaml:11:9: guards.authz.rules[1]: rule "shell-for-ops": unreachable: wherever it matches, rules[0] "no-shell" (deny, no condition) matches too and wins`,
		`warning: testdata/policy/lint.yaml:15:9: guards.authz.rules[2].servers: rule "fs-typo": "filesytem" matches none of the configured servers (filesystem)`,
		"3 rules, default deny: ok (2 warnings)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout %q does not contain %q", out, want)
		}
	}
	if code, _, _ := runCLI("policy", "check", "-strict", "testdata/policy/lint.yaml"); code != 1 {
		t.Errorf("-strict with warnings: exit %d", code)
	}

	if code, _, errs := runCLI("policy", "check", "testdata/policy/missing.yaml"); code != 1 || !strings.Contains(errs, "missing.yaml") {
		t.Errorf("missing file: exit %d, %q", code, errs)
	}
	if code, _, _ := runCLI("policy", "check"); code != 2 {
		t.Errorf("no file: exit %d", code)
	}
	if code, _, _ := runCLI("policy", "frobnicate"); code != 2 {
		t.Errorf("unknown subcommand: exit %d", code)
	}
}

func TestPolicyTest(t *testing.T) {
	code, out, errs := runCLI("policy", "test", "testdata/policy/gateway.yaml", "testdata/policy/tests.yaml")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	if !strings.HasSuffix(out, "8 passed, 0 failed\n") || strings.Count(out, "PASS ") != 8 {
		t.Errorf("stdout:\n%s", out)
	}

	code, out, _ = runCLI("policy", "test", "-v", "testdata/policy/gateway.yaml", "testdata/policy/failing-tests.yaml")
	if code != 1 {
		t.Errorf("failing tests: exit %d", code)
	}
	for _, want := range []string{
		"PASS passes\n",
		`FAIL wrong effect (testdata/policy/failing-tests.yaml:7): got approve, want allow: rule "payments-large" (approve) matched`,
		`FAIL wrong rule (testdata/policy/failing-tests.yaml:13): allow as expected, but by rule "admins-everything", not "payments-small"`,
		"1 passed, 2 failed\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout %q does not contain %q", out, want)
		}
	}
	// -v explains the failures rule by rule.
	if !regexp.MustCompile(`(?m)^\s+4\s+payments-large\s+approve\s+yes\s+.*\s+true\s+matched`).MatchString(out) {
		t.Errorf("no explanation in:\n%s", out)
	}
}

func TestPolicyExplain(t *testing.T) {
	code, out, errs := runCLI("policy", "explain", "testdata/policy/gateway.yaml", "--principal", "alice", "--groups", "dev",
		"--server", "filesystem", "--tool", "read_file", "--args", `{"path":"/workspace/.env"}`, "--annotations", `{"readOnlyHint":true}`)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, re := range []string{
		`(?m)^call: tools/call of "read_file" on server "filesystem" by "alice" \(groups dev\)$`,
		`(?m)^\s+0\s+admins-everything\s+allow\s+yes\s+"admin" in principal.groups\s+false\s*$`,
		`(?m)^\s+1\s+fs-read-workspace\s+allow\s+yes\s+.*\s+true\s+matched$`,
		`(?m)^\s+2\s+fs-no-secrets\s+deny\s+yes\s+.*\s+true\s+matched$`,
		`(?m)^\s+3\s+payments-small\s+allow\s+no\s+.*\s+-\s*$`,
		`(?m)^\s+5\s+no-destructive\s+approve\s+yes\s+.*\s+false\s*$`,
		`(?m)^decision: deny: rule "fs-no-secrets" \(deny\) matched$`,
		`(?m)^in listings: shown \(rule "fs-read-workspace" \(allow\) matched\)$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("stdout does not match %s:\n%s", re, out)
		}
	}

	// A failing condition is shown, and the default decides.
	_, out, _ = runCLI("policy", "explain", "testdata/policy/gateway.yaml", "-principal", "alice", "-groups", "dev",
		"-server", "filesystem", "-tool", "read_file", "-annotations", `{"readOnlyHint":true}`)
	if !strings.Contains(out, "error: no such key: path") || !strings.Contains(out, "decision: deny: no rule matched; default deny") {
		t.Errorf("stdout:\n%s", out)
	}

	if code, _, errs := runCLI("policy", "explain", "testdata/policy/gateway.yaml", "-args", "[1]"); code != 2 || !strings.Contains(errs, "-args must be a JSON object") {
		t.Errorf("bad args: exit %d, %q", code, errs)
	}
	if code, _, errs := runCLI("policy", "explain", "testdata/policy/gateway.yaml", "-method", "tools/list"); code != 2 || !strings.Contains(errs, "not decided") {
		t.Errorf("list method: exit %d, %q", code, errs)
	}
}
