package e2e

// The official MCP conformance suites, run against the Go SDK's everything-server directly,
// then through the gateway with everything-server as a Streamable HTTP upstream and as a
// stdio upstream. Every check that passes directly must pass through the gateway; checks the
// gateway gains (it answers some modern-protocol checks the server fails) are only logged.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

type conformanceSuite struct {
	version string
	dir     string // under e2eDir
	args    []string
}

var conformanceSuites = []conformanceSuite{
	{version: "0.1.16", dir: "conf-0.1"},
	{version: "0.2.0-alpha.12", dir: "conf-0.2", args: []string{"--suite", "all"}},
}

func (s conformanceSuite) entry() string {
	return filepath.Join(e2eDir, s.dir, "node_modules", "@modelcontextprotocol", "conformance", "dist", "index.js")
}

// conformanceResult is one run: the passing (scenario, check id) pairs with multiplicity,
// and the count of every status.
type conformanceResult struct {
	passed   map[string]int
	statuses map[string]int
	summary  string
}

func (r *conformanceResult) total() int {
	n := 0
	for _, c := range r.passed {
		n += c
	}
	return n
}

// scenarioDir matches the output directory of one scenario: server-<scenario>-<timestamp>.
var scenarioDir = regexp.MustCompile(`^server-(.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$`)

// runConformance runs suite against url and reads the checks it wrote.
func runConformance(t *testing.T, suite conformanceSuite, url string) *conformanceResult {
	t.Helper()
	outDir := t.TempDir()
	args := append([]string{suite.entry(), "server", "--url", url, "-o", outDir}, suite.args...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// The suite exits non-zero when a check fails; the checks themselves are what counts.
	stdout, runErr := runNodeQuiet(ctx, args...)
	if ctx.Err() != nil {
		t.Fatalf("conformance %s against %s timed out:\n%s", suite.version, url, stdout)
	}
	res := &conformanceResult{passed: map[string]int{}, statuses: map[string]int{}}
	for _, line := range strings.Split(stdout, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "Total:") {
			res.summary = strings.TrimSpace(line)
		}
	}
	entries, err := os.ReadDir(outDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		m := scenarioDir.FindStringSubmatch(e.Name())
		if !e.IsDir() || m == nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join(outDir, e.Name(), "checks.json"))
		if err != nil {
			t.Errorf("scenario %s: %v", m[1], err)
			continue
		}
		var checks []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		}
		if err := json.Unmarshal(data, &checks); err != nil {
			t.Errorf("scenario %s: checks.json: %v", m[1], err)
			continue
		}
		for _, c := range checks {
			res.statuses[c.Status]++
			if c.Status == "SUCCESS" {
				res.passed[m[1]+" / "+c.ID]++
			}
		}
	}
	if len(res.statuses) == 0 {
		t.Fatalf("conformance %s against %s wrote no checks (exit: %v):\n%s", suite.version, url, runErr, stdout)
	}
	return res
}

// runNodeQuiet runs node with args and returns its combined output.
func runNodeQuiet(ctx context.Context, args ...string) (string, error) {
	var out syncBuffer
	cmd := nodeCommand(ctx, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // whatever it left behind
	}
	return out.String(), err
}

// diffPassed returns the checks (with multiplicity) that pass in a but not in b.
func diffPassed(a, b map[string]int) []string {
	var out []string
	for k, n := range a {
		for i := b[k]; i < n; i++ {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func statusLine(r *conformanceResult) string {
	var keys []string
	for k := range r.statuses {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, r.statuses[k]))
	}
	return strings.Join(parts, ", ")
}

// TestConformance runs last: it is the only parallel test, and parallel tests resume only
// once every sequential test has finished.
func TestConformance(t *testing.T) {
	requireE2E(t)
	requireFile(t, everythingBin)
	for _, s := range conformanceSuites {
		requireFile(t, s.entry())
	}
	t.Parallel()

	direct := startEverythingHTTP(t)
	behindHTTP := startEverythingHTTP(t) // its own instance, so no state leaks between runs
	viaHTTP := startServe(t, GatewayConfig{Servers: []ServerConfig{{Name: "everything", URL: behindHTTP}}})
	viaStdio := startServe(t, GatewayConfig{Servers: []ServerConfig{{Name: "everything", Command: everythingBin}}})

	for _, suite := range conformanceSuites {
		t.Run(suite.version, func(t *testing.T) {
			base := runConformance(t, suite, direct)
			t.Logf("direct against everything-server: %d checks pass (%s); %s", base.total(), statusLine(base), base.summary)
			through := map[string]*conformanceResult{}
			for _, target := range []struct{ name, url string }{
				{"http-upstream", viaHTTP.URL},
				{"stdio-upstream", viaStdio.URL},
			} {
				t.Run(target.name, func(t *testing.T) {
					got := runConformance(t, suite, target.url)
					through[target.name] = got
					lost, gained := diffPassed(base.passed, got.passed), diffPassed(got.passed, base.passed)
					t.Logf("through portcullis (%s): %d checks pass (%s); %s", target.name, got.total(), statusLine(got), got.summary)
					t.Logf("direct %d -> through the gateway %d: %d lost, %d gained", base.total(), got.total(), len(lost), len(gained))
					if len(gained) > 0 {
						t.Logf("gained (fail directly, pass through the gateway):\n  %s", strings.Join(gained, "\n  "))
					}
					if len(lost) > 0 {
						t.Errorf("%d checks pass directly but fail through the gateway:\n  %s", len(lost), strings.Join(lost, "\n  "))
					}
				})
			}
			// The gateway's answers should not depend on how it reaches the server.
			if h, s := through["http-upstream"], through["stdio-upstream"]; h != nil && s != nil {
				if d := diffPassed(s.passed, h.passed); len(d) > 0 {
					t.Logf("%d checks pass with the stdio upstream but not with the HTTP upstream:\n  %s", len(d), strings.Join(d, "\n  "))
				}
				if d := diffPassed(h.passed, s.passed); len(d) > 0 {
					t.Logf("%d checks pass with the HTTP upstream but not with the stdio upstream:\n  %s", len(d), strings.Join(d, "\n  "))
				}
			}
		})
	}
}
