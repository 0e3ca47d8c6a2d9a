package e2e

// Fault injection with a fake stdio server (testdata/crashy): a server that crashes during
// a call, a server that hangs, a client that goes away, malformed client input, and SIGTERM
// during a call.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// crashyConfig is a configuration with the fake server as the only upstream; the server
// leaves its markers in the returned directory. guards is YAML under "guards:".
func crashyConfig(t *testing.T, guards string) (GatewayConfig, string) {
	t.Helper()
	dir := t.TempDir()
	return GatewayConfig{
		Servers: []ServerConfig{{Name: "crashy", Command: crashyBin, Env: map[string]string{"CRASHY_DIR": dir},
			Sandbox: "{read_write: [" + q(dir) + "]}"}},
		Guards: guards,
	}, dir
}

func TestFaultUpstreamCrash(t *testing.T) {
	requireE2E(t)
	cfg, _ := crashyConfig(t, "")
	g := startServe(t, cfg)
	c := mustInit(t, g.URL)
	pid1 := serverPID(t, c)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	m, err := c.CallTool(ctx, "crash", nil)
	if err != nil {
		t.Fatalf("tools/call crash: %v", err)
	}
	if m.Error == nil {
		t.Fatalf("tools/call crash: want a JSON-RPC error, got result %s", m.Result)
	}
	t.Logf("crash call answered in %s: %s", time.Since(start).Round(time.Millisecond), m.Error)
	if !strings.Contains(m.Error.Message, "crashy") {
		t.Errorf("the error does not name the server %q: %s", "crashy", m.Error.Message)
	}

	// The gateway restarts the server; the same session works again.
	var last string
	err = waitFor(30*time.Second, g.Proc, func() error {
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		m, err := c.CallTool(cctx, "echo", map[string]any{"message": "after the crash"})
		switch {
		case err != nil:
			last = err.Error()
		case m.Error != nil:
			last = m.Error.String()
		default:
			text, _ := toolText(m.Result)
			if text == "after the crash" {
				return nil
			}
			last = "unexpected result " + string(m.Result)
		}
		return fmt.Errorf("echo after the crash: %s", last)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("echo works again %s after the crash", time.Since(start).Round(time.Millisecond))
	if pid2 := serverPID(t, c); pid2 == pid1 {
		t.Errorf("the server's pid is still %d after the crash: not restarted?", pid1)
	}
}

func TestFaultUpstreamHang(t *testing.T) {
	requireE2E(t)
	cfg, dir := crashyConfig(t, "  limits:\n    call_timeout: 1s\n")
	g := startServe(t, cfg)
	c := mustInit(t, g.URL)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	m, err := c.CallTool(ctx, "sleep", nil)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("tools/call sleep: %v (after %s)", err, elapsed)
	}
	if m.Error == nil {
		t.Fatalf("tools/call sleep: want a JSON-RPC error, got result %s", m.Result)
	}
	t.Logf("sleep call answered in %s: %s", elapsed.Round(time.Millisecond), m.Error)
	if !strings.Contains(m.Error.Message, "call_timeout") {
		t.Errorf("the error does not mention call_timeout: %s", m.Error.Message)
	}
	if elapsed > 15*time.Second {
		t.Errorf("the timeout took %s with call_timeout: 1s", elapsed)
	}
	// The server is told the call was cancelled.
	if _, err := markerWait(dir, 10*time.Second, "cancelled"); err != nil {
		t.Errorf("the server did not get notifications/cancelled after the timeout: %v", err)
	}
	if got := mustToolText(t, c, "echo", map[string]any{"message": "still here"}); got != "still here" {
		t.Errorf("echo after the timeout = %q", got)
	}
}

func TestFaultClientGoesAway(t *testing.T) {
	requireE2E(t)
	cfg, dir := crashyConfig(t, "")
	r := startRun(t, writeConfig(t, cfg), "crashy")
	if err := r.Initialize(); err != nil {
		t.Fatal(err)
	}
	m, err := r.Request("tools/call", map[string]any{"name": "pid", "arguments": map[string]any{}}, 30*time.Second)
	if err != nil || m.Error != nil {
		t.Fatalf("tools/call pid: %v %s", err, m.errorOrNil())
	}
	text, _ := toolText(m.Result)
	nspid, err := strconv.Atoi(text)
	if err != nil {
		t.Fatalf("pid: %q", text)
	}
	pid := hostPID(t, crashyBin, nspid)

	if err := r.Send(map[string]any{"id": 99, "method": "tools/call", "params": map[string]any{"name": "sleep", "arguments": map[string]any{}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := markerWait(dir, 20*time.Second, "call-sleep"); err != nil {
		t.Fatalf("the sleep call did not reach the server: %v", err)
	}
	if err := r.CloseStdin(); err != nil {
		t.Fatal(err)
	}
	found, err := markerWait(dir, 15*time.Second, "cancelled", "stdin-closed", "sigterm")
	if err != nil {
		t.Fatalf("after the client went away the server saw neither notifications/cancelled nor the end of its input nor SIGTERM: %v", err)
	}
	t.Logf("the server saw: %s", found)
	if err := waitFor(15*time.Second, nil, func() error {
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			return nil
		}
		return fmt.Errorf("server process %d still exists", pid)
	}); err != nil {
		t.Error(err)
	}
	if !r.Wait(15 * time.Second) {
		t.Fatal("portcullis run did not exit after its stdin closed")
	}
	if code := r.ExitCode(); code != 0 {
		t.Errorf("portcullis run exited with %d, want 0", code)
	}
}

// TestFaultHTTPClientGoesAway: a Streamable HTTP client drops its connection during a call
// and does not resume the stream: after the resume window the gateway cancels the call.
func TestFaultHTTPClientGoesAway(t *testing.T) {
	requireE2E(t)
	cfg, dir := crashyConfig(t, "")
	g := startServe(t, cfg)
	c := mustInit(t, g.URL)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := c.CallTool(ctx, "sleep", nil)
		errc <- err
	}()
	if _, err := markerWait(dir, 20*time.Second, "call-sleep"); err != nil {
		t.Fatalf("the sleep call did not reach the server: %v", err)
	}
	start := time.Now()
	cancel() // the client goes away: its request's connection closes
	select {
	case <-errc:
	case <-time.After(10 * time.Second):
		t.Fatal("the client's request did not end when its context was cancelled")
	}
	if _, err := markerWait(dir, 40*time.Second, "cancelled"); err != nil {
		t.Fatalf("the server did not get notifications/cancelled after the client went away: %v", err)
	}
	t.Logf("the server got notifications/cancelled %s after the client went away", time.Since(start).Round(time.Millisecond))
	if got := mustToolText(t, c, "echo", map[string]any{"message": "back"}); got != "back" {
		t.Errorf("echo on the same session afterwards = %q", got)
	}
}

func TestFaultMalformedInput(t *testing.T) {
	requireE2E(t)
	cfg, dir := crashyConfig(t, "")
	g := startServe(t, cfg)
	c := mustInit(t, g.URL)

	big := `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{"message":"` +
		strings.Repeat("a", 5<<20) + `"}}}`
	cases := []struct {
		name, body string
		code       int
		mention    string
	}{
		{"invalid JSON", `{"jsonrpc":"2.0","id":1,"method":"tools/call",`, -32700, "parse error"},
		{"not an object", `"hello"`, -32600, "object"},
		{"batch", `[{"jsonrpc":"2.0","id":2,"method":"ping"},{"jsonrpc":"2.0","id":3,"method":"ping"}]`, -32600, "batch"},
		{"duplicate keys", `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","name":"crash","arguments":{}}}`, -32700, "duplicate"},
		{"5 MiB body", big, -32600, "exceeds the limit"},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			resp, err := c.Post(ctx, []byte(tc.body))
			if err != nil {
				t.Fatalf("POST: %v", err)
			}
			if resp.Status < 400 || resp.Status > 499 {
				t.Errorf("HTTP %d, want 4xx", resp.Status)
			}
			if resp.Msg == nil || resp.Msg.Error == nil {
				t.Fatalf("HTTP %d, want a JSON-RPC error, got %.300s", resp.Status, resp.Body)
			}
			t.Logf("HTTP %d: %s", resp.Status, resp.Msg.Error)
			if resp.Msg.Error.Code != tc.code {
				t.Errorf("code %d, want %d", resp.Msg.Error.Code, tc.code)
			}
			if !strings.Contains(resp.Msg.Error.Message, tc.mention) {
				t.Errorf("message %q does not mention %q", resp.Msg.Error.Message, tc.mention)
			}
			if got := mustToolText(t, c, "echo", map[string]any{"message": "ok after " + tc.name}); got != "ok after "+tc.name {
				t.Errorf("echo afterwards = %q", got)
			}
		})
	}
	// Neither reading of the duplicate-key message reached the server.
	if fileExists(filepath.Join(dir, "call-crash")) {
		t.Error("the duplicate-key message reached the server as a call of crash")
	}
	// A request that is not POST/GET/DELETE, and a GET without a session, are refused too.
	req, _ := http.NewRequest(http.MethodPut, g.URL, strings.NewReader("{}"))
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Error(err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("PUT: HTTP %d, want 405", resp.StatusCode)
		}
	}
}

func TestFaultGracefulShutdown(t *testing.T) {
	requireE2E(t)
	cfg, dir := crashyConfig(t, "")
	g := startServe(t, cfg)
	c := mustInit(t, g.URL)

	type result struct {
		text string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		m, err := c.CallTool(ctx, "slow", nil)
		switch {
		case err != nil:
			done <- result{err: err}
		case m.Error != nil:
			done <- result{err: fmt.Errorf("JSON-RPC error %s", m.Error)}
		default:
			text, _ := toolText(m.Result)
			done <- result{text: text}
		}
	}()
	if _, err := markerWait(dir, 20*time.Second, "call-slow"); err != nil {
		t.Fatalf("the slow call did not reach the server: %v", err)
	}
	if err := g.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil {
			t.Errorf("the call in flight at SIGTERM failed: %v", r.err)
		} else if r.text != "slow done" {
			t.Errorf("the call in flight at SIGTERM returned %q, want %q", r.text, "slow done")
		}
	case <-time.After(30 * time.Second):
		t.Error("the call in flight at SIGTERM got no answer within 30s")
	}
	if !g.Wait(30 * time.Second) {
		t.Fatal("portcullis serve did not exit within 30s of SIGTERM")
	}
	if code := g.ExitCode(); code != 0 {
		t.Errorf("portcullis serve exited with %d after SIGTERM, want 0", code)
	}
	// The server was shut down with the gateway.
	if _, err := markerWait(dir, 10*time.Second, "stdin-closed", "sigterm"); err != nil {
		t.Errorf("the upstream server was not closed at shutdown: %v", err)
	}
}

// serverPID is the host pid of the crashy server behind c.
func serverPID(t *testing.T, c *HTTPClient) int {
	t.Helper()
	nspid, err := strconv.Atoi(mustToolText(t, c, "pid", nil))
	if err != nil {
		t.Fatal(err)
	}
	return hostPID(t, crashyBin, nspid)
}

// hostPID finds the process running exe whose pid in its own pid namespace is nspid (the
// sandbox gives each server a pid namespace): its pid as this test sees it.
func hostPID(t *testing.T, exe string, nspid int) int {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, _ := os.Readlink("/proc/" + e.Name() + "/exe"); p != exe {
			continue
		}
		b, _ := os.ReadFile("/proc/" + e.Name() + "/status")
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) > 1 && f[0] == "NSpid:" && f[len(f)-1] == strconv.Itoa(nspid) {
				return pid
			}
		}
	}
	t.Fatalf("no process of %s has pid %d in its namespace", exe, nspid)
	return 0
}
