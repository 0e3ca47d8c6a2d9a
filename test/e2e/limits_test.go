package e2e

// Limits through the real gateway with the reference everything server (npm, stdio): each
// limit refuses with its data.limit and data.retryAfterMs, a daily budget runs out, a loop
// is throttled and alerted in the audit trail, and 64 sessions at once against a daily
// quota of 10 get exactly 10 calls through.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/store/postgres/pgtest"
)

// limitsEverythingStdio is the reference everything server as a stdio upstream.
func limitsEverythingStdio(t *testing.T) ServerConfig {
	t.Helper()
	js := nodeModule("@modelcontextprotocol", "server-everything", "dist", "index.js")
	requireFile(t, js)
	return ServerConfig{Name: "everything", Command: nodeBin, Args: []string{js, "stdio"}}
}

// limitsEverythingHTTP starts the reference everything server with its Streamable HTTP
// transport (one process for many sessions) and returns it as an upstream.
func limitsEverythingHTTP(t *testing.T) ServerConfig {
	t.Helper()
	js := nodeModule("@modelcontextprotocol", "server-everything", "dist", "index.js")
	requireFile(t, js)
	port := strconv.Itoa(freePort(t))
	cmd := exec.Command(nodeBin, js, "streamableHttp")
	cmd.Env = append(cmd.Environ(), "PORT="+port)
	p := startProc(t, "server-everything (streamable http)", cmd)
	if err := waitFor(30*time.Second, p, func() error {
		if !strings.Contains(p.Stderr.String(), "listening on port "+port) {
			return errors.New("not listening yet")
		}
		return nil
	}); err != nil {
		t.Fatalf("server-everything did not start: %v\n%s", err, p.Stderr.String())
	}
	return ServerConfig{Name: "everything", URL: "http://127.0.0.1:" + port + "/mcp"}
}

// limitsRefusal is a refusal's error data as the client sees it.
type limitsRefusal struct {
	Guard        string `json:"guard"`
	Limit        string `json:"limit"`
	Rule         string `json:"rule"`
	RetryAfterMs *int64 `json:"retryAfterMs"`
	Incident     string `json:"incident"`
}

// limitsCall calls a tool and returns the result, or the refusal's data (nil when the call
// passed).
func limitsCall(t *testing.T, c *HTTPClient, name string, args any) (*Msg, *limitsRefusal) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	m, err := c.CallTool(ctx, name, args)
	if err != nil {
		t.Fatalf("tools/call %s: %v", name, err)
	}
	if m.Error == nil {
		return m, nil
	}
	var le limitsRefusal
	if err := json.Unmarshal(m.Error.Data, &le); err != nil {
		t.Fatalf("tools/call %s: error data %s: %v", name, m.Error.Data, err)
	}
	return m, &le
}

// refused checks that a call was refused by the limits guard's limit with code, and that
// retryAfterMs is within [minMs, maxMs] (maxMs < 0: absent).
func limitsRefused(t *testing.T, m *Msg, le *limitsRefusal, code int, limit, rule string, minMs, maxMs int64) {
	t.Helper()
	if le == nil {
		t.Fatalf("want a refusal by %s, the call passed: %s", limit, m.Result)
	}
	if m.Error.Code != code || le.Guard != "limits" || le.Limit != limit || le.Rule != rule || le.Incident == "" {
		t.Fatalf("refusal %s, want code %d, guard limits, limit %q, rule %q", m.Error, code, limit, rule)
	}
	switch {
	case maxMs < 0 && le.RetryAfterMs != nil:
		t.Errorf("%s: retryAfterMs %d, want none (retrying cannot help)", limit, *le.RetryAfterMs)
	case maxMs >= 0 && (le.RetryAfterMs == nil || *le.RetryAfterMs < minMs || *le.RetryAfterMs > maxMs):
		t.Errorf("%s: retryAfterMs %v, want %d..%d (%s)", limit, le.RetryAfterMs, minMs, maxMs, m.Error)
	}
	t.Logf("%s refused: %s", limit, m.Error.Message)
}

// limitsPass calls a tool and fails the test unless it passed.
func limitsPass(t *testing.T, c *HTTPClient, name string, args any) {
	t.Helper()
	if m, le := limitsCall(t, c, name, args); le != nil {
		t.Fatalf("tools/call %s refused: %s", name, m.Error)
	}
}

const (
	limitsCodeLimit   = -32011
	limitsCodeTimeout = -32013
	limitsDayMs       = 24 * 3600 * 1000
)

// limitsUntilMidnight is what a daily refusal's retryAfterMs should be now.
func limitsUntilMidnight() int64 {
	now := time.Now().UTC()
	y, mo, d := now.Date()
	return time.Date(y, mo, d+1, 0, 0, 0, 0, time.UTC).Sub(now).Milliseconds()
}

func TestLimitsEachLimit(t *testing.T) {
	requireE2E(t)
	g := startServe(t, GatewayConfig{Servers: []ServerConfig{limitsEverythingStdio(t)}, Guards: `  limits:
    rules:
      - name: echo-rate
        tools: [echo]
        rate: 1/h
        burst: 2
      - name: long-ops
        tools: [trigger-long-running-operation]
        concurrency: 1
        timeout: 2s
      - name: sums
        tools: [get-sum]
        daily_calls: 3
      - name: small-results
        tools: [get-tiny-image]
        max_result_bytes: 100
      - name: annotated-costs
        tools: [get-annotated-message]
        cost: 3
      - name: wallet
        tools: [get-annotated-message, get-env]
        daily_budget: 7
`})
	c := mustInit(t, g.URL)

	t.Run("rate", func(t *testing.T) {
		for i := range 2 {
			limitsPass(t, c, "echo", map[string]any{"message": fmt.Sprint("hello ", i)})
		}
		m, le := limitsCall(t, c, "echo", map[string]any{"message": "one too many"})
		// One token an hour: the next is due within the hour.
		limitsRefused(t, m, le, limitsCodeLimit, "rate", "echo-rate", 3500*1000, 3600*1000)
	})

	t.Run("daily calls", func(t *testing.T) {
		for i := range 3 {
			limitsPass(t, c, "get-sum", map[string]any{"a": i, "b": 1})
		}
		m, le := limitsCall(t, c, "get-sum", map[string]any{"a": 10, "b": 1})
		want := limitsUntilMidnight()
		limitsRefused(t, m, le, limitsCodeLimit, "daily_calls", "sums", want-60000, want+1000)
	})

	t.Run("budget runs out", func(t *testing.T) {
		// get-annotated-message costs 3 of the 7 units; get-env costs 1.
		for range 2 {
			limitsPass(t, c, "get-annotated-message", map[string]any{"messageType": "success"})
		}
		m, le := limitsCall(t, c, "get-annotated-message", map[string]any{"messageType": "error"})
		want := limitsUntilMidnight()
		limitsRefused(t, m, le, limitsCodeLimit, "daily_budget", "wallet", want-60000, want+1000)
		if !strings.Contains(m.Error.Message, "costs 3 units and 1 of 7 are left today") {
			t.Errorf("the refusal does not say what is left: %s", m.Error.Message)
		}
		limitsPass(t, c, "get-env", nil) // the last unit
		m, le = limitsCall(t, c, "get-env", nil)
		limitsRefused(t, m, le, limitsCodeLimit, "daily_budget", "wallet", want-60000, want+1000)
	})

	t.Run("max result bytes", func(t *testing.T) {
		m, le := limitsCall(t, c, "get-tiny-image", nil)
		limitsRefused(t, m, le, limitsCodeLimit, "max_result_bytes", "small-results", 0, -1)
	})

	t.Run("concurrency and timeout", func(t *testing.T) {
		// A long operation holds the rule's one slot until its 2s timeout cancels it.
		type res struct {
			m  *Msg
			le *limitsRefusal
		}
		long := make(chan res, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			m, err := c.CallTool(ctx, "trigger-long-running-operation", map[string]any{"duration": 30, "steps": 1})
			if err != nil || m.Error == nil {
				long <- res{m, nil}
				return
			}
			var le limitsRefusal
			json.Unmarshal(m.Error.Data, &le)
			long <- res{m, &le}
		}()
		// Until the long call is in flight a short one may pass; once it is, one is refused.
		var m *Msg
		var le *limitsRefusal
		for range 200 {
			m, le = limitsCall(t, c, "trigger-long-running-operation", map[string]any{"duration": 0.01, "steps": 1})
			if le != nil {
				break
			}
		}
		limitsRefused(t, m, le, limitsCodeLimit, "concurrency", "long-ops", 1, 1000)
		r := <-long
		limitsRefused(t, r.m, r.le, limitsCodeTimeout, "timeout", "long-ops", 0, -1)
		// The slot is free again.
		limitsPass(t, c, "trigger-long-running-operation", map[string]any{"duration": 0.01, "steps": 1})
	})

	// A tool no rule limits works on, in this session and another.
	limitsPass(t, c, "get-structured-content", map[string]any{"location": "New York"})
	limitsPass(t, mustInit(t, g.URL), "get-structured-content", map[string]any{"location": "Chicago"})
}

func TestLimitsExistingKeys(t *testing.T) {
	requireE2E(t)
	// The keys that existed before rules keep working.
	g := startServe(t, GatewayConfig{Servers: []ServerConfig{limitsEverythingStdio(t)}, Guards: "  limits:\n    max_params_bytes: 150\n    call_timeout: 1s\n"})
	c := mustInit(t, g.URL)
	m, le := limitsCall(t, c, "echo", map[string]any{"message": strings.Repeat("x", 200)})
	limitsRefused(t, m, le, limitsCodeLimit, "max_params_bytes", "", 0, -1)
	m, le = limitsCall(t, c, "trigger-long-running-operation", map[string]any{"duration": 10, "steps": 1})
	limitsRefused(t, m, le, limitsCodeTimeout, "call_timeout", "", 0, -1)
}

func TestLimitsLoop(t *testing.T) {
	requireE2E(t)
	g := startServe(t, GatewayConfig{Servers: []ServerConfig{limitsEverythingStdio(t)}, Guards: `  audit: {}
  limits:
    loop:
      calls: 3
      window: 1m
      cooldown: 1m
`})
	c := mustInit(t, g.URL)
	same := map[string]any{"message": "are we there yet?"}
	for range 2 {
		limitsPass(t, c, "echo", same)
	}
	limitsPass(t, c, "echo", map[string]any{"message": "something else"})
	m, le := limitsCall(t, c, "echo", same)
	limitsRefused(t, m, le, limitsCodeLimit, "loop", "", 59000, 60000)
	m, le = limitsCall(t, c, "echo", same) // still cooling down
	limitsRefused(t, m, le, limitsCodeLimit, "loop", "", 1, 60000)
	limitsPass(t, c, "echo", map[string]any{"message": "a different question"})

	// The alert: a finding in the audit trail (once, with the call that completed the
	// loop) and a warning in the log.
	out, code := auditCLI(t, "search", "--config", g.Config, "--json")
	if code != 0 {
		t.Fatalf("audit search: exit %d\n%s", code, out)
	}
	var alerts, loopRefusals int
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e struct {
			Decision string `json:"decision"`
			Guard    string `json:"guard"`
			Findings []struct {
				Detector, Rule, Severity, Message string
			} `json:"findings"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("search printed %q: %v", line, err)
		}
		if e.Decision == "denied" && e.Guard == "limits" {
			loopRefusals++
		}
		for _, f := range e.Findings {
			if f.Detector == "limits" && f.Rule == "loop" && f.Severity == "high" {
				alerts++
				t.Logf("alert: %s", f.Message)
			}
		}
	}
	if alerts != 1 || loopRefusals != 2 {
		t.Errorf("the trail holds %d loop alerts and %d refusals by limits, want 1 and 2:\n%s", alerts, loopRefusals, out)
	}
	if !strings.Contains(g.Stderr.String(), "loop detected") {
		t.Errorf("no loop warning in the log")
	}
}

// TestLimits64Sessions: 64 sessions call at once against a daily quota of 10 for the
// whole gateway: exactly 10 calls reach the server, the other 54 are refused by the quota.
func TestLimits64Sessions(t *testing.T) {
	requireE2E(t)
	const quota = 10
	g := startServe(t, GatewayConfig{Servers: []ServerConfig{limitsEverythingHTTP(t)}, Guards: fmt.Sprintf(`  limits:
    max_concurrent_per_session: 4
    rules:
      - name: gateway-quota
        tools: [echo]
        per: []
        daily_calls: %d
`, quota)})
	clients := make([]*HTTPClient, 64)
	for i := range clients {
		clients[i] = mustInit(t, g.URL)
	}
	var ok, quotaRefused atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			m, err := c.CallTool(ctx, "echo", map[string]any{"message": fmt.Sprint("session ", i)})
			switch {
			case err != nil:
				t.Errorf("session %d: %v", i, err)
			case m.Error == nil:
				if text, _ := toolText(m.Result); !strings.Contains(text, fmt.Sprint("session ", i)) {
					t.Errorf("session %d: result %s", i, m.Result)
				}
				ok.Add(1)
			default:
				var le limitsRefusal
				json.Unmarshal(m.Error.Data, &le)
				if le.Limit != "daily_calls" || le.Rule != "gateway-quota" || le.RetryAfterMs == nil {
					t.Errorf("session %d: %s", i, m.Error)
				}
				quotaRefused.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	if ok.Load() != quota || quotaRefused.Load() != 64-quota {
		t.Errorf("%d calls passed and %d were refused by the quota; want exactly %d and %d", ok.Load(), quotaRefused.Load(), quota, 64-quota)
	}
	// And the quota stays used up.
	m, le := limitsCall(t, clients[0], "echo", map[string]any{"message": "later"})
	limitsRefused(t, m, le, limitsCodeLimit, "daily_calls", "gateway-quota", 1, limitsDayMs)
}

// TestLimitsFleet: two `portcullis serve` replicas share one PostgreSQL store; 64
// sessions, half on each, call at once against a daily quota of 10 for the whole fleet:
// exactly 10 calls pass. Runs with a PostgreSQL (bash test/pg.sh go test ./test/e2e
// -run TestLimitsFleet); skipped without one.
func TestLimitsFleet(t *testing.T) {
	requireE2E(t)
	dsn := pgtest.Schema(t)
	const quota = 10
	cfg := GatewayConfig{Servers: []ServerConfig{limitsEverythingHTTP(t)}, StoreDSN: dsn, Guards: fmt.Sprintf(`  limits:
    rules:
      - name: fleet-quota
        tools: [echo]
        per: []
        daily_calls: %d
`, quota)}
	replicas := []*Gateway{startServe(t, cfg), startServe(t, cfg)}
	clients := make([]*HTTPClient, 64)
	for i := range clients {
		clients[i] = mustInit(t, replicas[i%2].URL)
	}
	var passedBy [2]atomic.Int64
	var refusedN atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			m, err := c.CallTool(ctx, "echo", map[string]any{"message": fmt.Sprint("session ", i)})
			switch {
			case err != nil:
				t.Errorf("session %d: %v", i, err)
			case m.Error == nil:
				passedBy[i%2].Add(1)
			default:
				var le limitsRefusal
				json.Unmarshal(m.Error.Data, &le)
				if le.Limit != "daily_calls" || le.Rule != "fleet-quota" {
					t.Errorf("session %d: %s", i, m.Error)
				}
				refusedN.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	total := passedBy[0].Load() + passedBy[1].Load()
	t.Logf("replica 1 passed %d, replica 2 passed %d, %d refused", passedBy[0].Load(), passedBy[1].Load(), refusedN.Load())
	if total != quota || refusedN.Load() != 64-quota {
		t.Errorf("%d calls passed across the replicas and %d were refused; want exactly %d and %d", total, refusedN.Load(), quota, 64-quota)
	}
}
