package e2e

// The audit trail through `portcullis serve`: every call and its outcome are recorded and
// chained; a refusal names its guard; when the trail cannot be written, calls are refused
// and the server sees nothing; `portcullis audit verify` passes on the real trail and names
// the place after tampering; a kill -9 loses no answered call.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

type auditEvent struct {
	Principal string `json:"principal"`
	Session   string `json:"session"`
	Message   string `json:"message"`
	Seq       uint64 `json:"seq"`
	ID        string `json:"id"`
	Code      string `json:"code"`
	Kind      string `json:"kind"`
	Decision  string `json:"decision"`
	Method    string `json:"method"`
	Tool      string `json:"tool"`
	Server    string `json:"server"`
	Guard     string `json:"guard"`
	Incident  string `json:"incident"`
	RequestID string `json:"request_id"`
	Call      string `json:"call"`
	Prev      string `json:"prev"`
	Hash      string `json:"hash"`
}

func readTrail(t *testing.T, files ...string) []auditEvent {
	t.Helper()
	var out []auditEvent
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			if line == "" {
				continue
			}
			var e auditEvent
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatalf("%s: %v: %s", f, err, line)
			}
			out = append(out, e)
		}
	}
	return out
}

func auditCLI(t *testing.T, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, portcullisBin, append([]string{"audit"}, args...)...).CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// webhookReceiver counts signed events by id.
type webhookReceiver struct {
	mu  sync.Mutex
	ids map[string]int
	bad int
}

func (w *webhookReceiver) count() (n, dups int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.ids {
		n++
		if c > 1 {
			dups++
		}
	}
	return n, dups
}

func TestAuditTrail(t *testing.T) {
	requireE2E(t)
	upstream := startEverythingHTTP(t)
	dir := t.TempDir()
	trail := filepath.Join(dir, "audit.jsonl")
	rcv := &webhookReceiver{ids: map[string]int{}}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		if !strings.HasPrefix(r.Header.Get("X-Portcullis-Signature"), "sha256=") || !json.Valid(body) {
			rcv.bad++
		}
		rcv.ids[r.Header.Get("X-Portcullis-Event-Id")]++
	}))
	defer hook.Close()
	guards := fmt.Sprintf(`  audit:
    file: %s
    rotate_bytes: 4096
    webhook: {url: %s, secret: s3cret, format: ocsf}
  limits:
    max_params_bytes: 80
`, q(trail), q(hook.URL))
	g := startServe(t, GatewayConfig{Servers: []ServerConfig{{Name: "everything", URL: upstream}}, Guards: guards})
	c := mustInit(t, g.URL)
	for range 3 {
		mustToolText(t, c, "test_simple_text", nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := c.CallTool(ctx, "test_simple_text", map[string]any{"padding": strings.Repeat("x", 100)})
	if err != nil || m.Error == nil || m.Error.Code != -32011 {
		t.Fatalf("a call over max_params_bytes: %v %v", m, err)
	}
	var data struct{ Incident string }
	json.Unmarshal(m.Error.Data, &data)

	files, _ := filepath.Glob(trail + "*")
	t.Logf("trail files: %v", files)
	out, code := auditCLI(t, "verify", "--file", trail)
	if code != 0 {
		t.Fatalf("audit verify on the real trail: exit %d\n%s", code, out)
	}
	t.Logf("audit verify: %s", strings.TrimSpace(out))

	out, _ = auditCLI(t, "search", "--file", trail, "--method", "tools/call", "--json")
	var calls []auditEvent
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e auditEvent
		json.Unmarshal([]byte(line), &e)
		calls = append(calls, e)
	}
	var allowed, denied int
	byID := map[string]auditEvent{}
	for _, e := range calls {
		byID[e.ID] = e
	}
	for _, e := range calls {
		if e.Kind != "response" {
			continue
		}
		if req, ok := byID[e.Call]; !ok || req.Seq >= e.Seq || req.Tool != "test_simple_text" {
			t.Errorf("response %d has no request before it: %+v", e.Seq, e)
		}
		switch e.Decision {
		case "allowed":
			allowed++
		case "denied":
			denied++
			if e.Guard != "limits" || e.Code != "PC3001W" || e.Incident != data.Incident {
				t.Errorf("denied event %+v, want guard limits, PC3001W, incident %s", e, data.Incident)
			}
		}
	}
	if allowed != 3 || denied != 1 {
		t.Errorf("%d allowed and %d denied calls in the trail, want 3 and 1:\n%s", allowed, denied, out)
	}

	// /metrics counts the decisions.
	resp, err := http.Get(g.Base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`portcullis_calls_total{direction="inbound",server="everything",method="tools/call",decision="denied"} 1`,
		`portcullis_refusals_total{guard="limits",code="-32011"} 1`,
		`portcullis_call_duration_seconds_count{server="everything",tool="test_simple_text"} 4`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s:\n%s", want, body)
		}
	}

	// The webhook got every event, signed, once.
	all := readTrail(t, mustFiles(t, trail)...)
	err = waitFor(10*time.Second, nil, func() error {
		if n, _ := rcv.count(); n < len(all) {
			return fmt.Errorf("the webhook has %d of %d events", n, len(all))
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	if n, dups := rcv.count(); dups > 0 || rcv.bad > 0 {
		t.Errorf("webhook: %d events, %d twice, %d unsigned or invalid", n, dups, rcv.bad)
	}

	// kill -9: every call the client saw answered is in the trail after a restart.
	answered := map[string]bool{}
	for i := range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		m, err := c.CallTool(ctx, "test_simple_text", nil)
		cancel()
		if err == nil && m.Error == nil {
			answered[string(m.ID)] = true
		}
		if i == 15 {
			syscall.Kill(-g.Cmd.Process.Pid, syscall.SIGKILL)
		}
	}
	g.Wait(5 * time.Second)
	g2 := startServe(t, GatewayConfig{Servers: []ServerConfig{{Name: "everything", URL: upstream}}, Guards: guards})
	mustToolText(t, mustInit(t, g2.URL), "test_simple_text", nil)
	inTrail := map[string]bool{}
	for _, e := range readTrail(t, mustFiles(t, trail)...) {
		if e.Kind == "response" && e.Decision == "allowed" {
			inTrail[e.RequestID] = true
		}
	}
	for id := range answered {
		if !inTrail[strings.Trim(id, `"`)] {
			t.Errorf("call %s was answered but is not in the trail", id)
		}
	}
	if out, code := auditCLI(t, "verify", "--file", trail); code != 0 {
		t.Fatalf("audit verify after kill -9: exit %d\n%s", code, out)
	}

	// Tampering: edit the second event of the last file holding two (the live file may
	// have just been rotated).
	g2.Stop()
	files = mustFiles(t, trail)
	var last string
	var lines []string
	for i := len(files) - 1; i >= 0 && last == ""; i-- {
		b, _ := os.ReadFile(files[i])
		if lines = strings.Split(string(b), "\n"); len(lines) > 2 {
			last = files[i]
		}
	}
	lines[1] = strings.Replace(lines[1], `"kind":"`, `"kind":"x`, 1)
	os.WriteFile(last, []byte(strings.Join(lines, "\n")), 0o600)
	out, code = auditCLI(t, "verify", "--file", trail)
	if code != 1 || !strings.Contains(out, last+":2: event") || !strings.Contains(out, "altered") {
		t.Errorf("audit verify after editing line 2 of %s: exit %d\n%s", last, code, out)
	}
}

func mustFiles(t *testing.T, trail string) []string {
	t.Helper()
	rotated, _ := filepath.Glob(trail + ".[0-9]*")
	// names are zero-padded: lexical order is numeric order
	return append(rotated, trail)
}

func TestAuditUnavailable(t *testing.T) {
	requireE2E(t)
	dir := t.TempDir()
	trail := filepath.Join(dir, "audit.jsonl")
	cfg, markers := crashyConfig(t, fmt.Sprintf("  audit:\n    file: %s\n", q(trail)))
	g := startServe(t, cfg)
	c := mustInit(t, g.URL)
	if got := mustToolText(t, c, "echo", map[string]any{"message": "one"}); got != "one" {
		t.Fatalf("echo: %q", got)
	}
	os.Remove(filepath.Join(markers, "call-echo"))

	// The trail's path now names a full device: nothing can be recorded.
	if err := os.Rename(trail, trail+".000001"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/full", trail); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := c.CallTool(ctx, "echo", map[string]any{"message": "two"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Error == nil || m.Error.Code != -32014 || !strings.Contains(string(m.Error.Data), `"incident"`) {
		t.Fatalf("with the trail unwritable: %s / %s", m.Error, m.Result)
	}
	time.Sleep(300 * time.Millisecond)
	if fileExists(filepath.Join(markers, "call-echo")) {
		t.Errorf("the server saw a call that could not be recorded")
	}
	if !strings.Contains(g.Stderr.String(), "AUDIT UNAVAILABLE") {
		t.Errorf("the gateway did not say so loudly")
	}

	// Writable again: calls go through, and the trail says calls were refused.
	os.Remove(trail)
	if got := mustToolText(t, c, "echo", map[string]any{"message": "three"}); got != "three" {
		t.Fatalf("echo after recovery: %q", got)
	}
	out, code := auditCLI(t, "verify", "--file", trail)
	if code != 0 {
		t.Fatalf("audit verify: exit %d\n%s", code, out)
	}
	out, _ = auditCLI(t, "search", "--file", trail, "--code", "PC1901W")
	if !strings.Contains(out, "PC1901W") {
		t.Errorf("no recovery event in the trail")
	}
	out, _ = auditCLI(t, "search", "--file", trail, "--tool", "echo", "--json")
	if strings.Count(out, `"kind":"response"`) != 2 {
		t.Errorf("want the responses of echo one and three only:\n%s", out)
	}
}

func TestAuditRefusesToStart(t *testing.T) {
	requireE2E(t)
	cfg, _ := crashyConfig(t, "  audit:\n    file: /dev/full\n")
	cfg.Listen = "127.0.0.1:0"
	dir := t.TempDir()
	cfg.Store = filepath.Join(dir, "portcullis.db") // never the home directory's
	path := filepath.Join(dir, "portcullis.yaml")
	os.WriteFile(path, []byte(cfg.YAML()), 0o600)
	p := startProc(t, "portcullis serve", exec.Command(portcullisBin, "serve", "--config", path))
	if !p.Wait(20 * time.Second) {
		t.Fatal("serve started with no working audit sink")
	}
	if code := p.ExitCode(); code == 0 || !strings.Contains(p.Stderr.String(), "no sink works") {
		t.Errorf("exit %d, stderr:\n%s", code, p.Stderr.String())
	}
}

// TestAuditByDefault: a configuration that says nothing of audit still records every call
// in the store, where `portcullis audit` finds it; `audit: off` records nothing.
func TestAuditByDefault(t *testing.T) {
	requireE2E(t)
	upstream := startEverythingHTTP(t)
	g := startServe(t, GatewayConfig{Servers: []ServerConfig{{Name: "everything", URL: upstream}}})
	c := mustInit(t, g.URL)
	mustToolText(t, c, "test_simple_text", nil)

	out, code := auditCLI(t, "search", "--config", g.Config, "--tool", "test_simple_text", "--json")
	if code != 0 {
		t.Fatalf("audit search on a configuration without guards.audit: exit %d\n%s", code, out)
	}
	kinds := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e auditEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		kinds[e.Kind+"/"+e.Decision]++
	}
	t.Logf("the call in the default trail: %v", kinds)
	if kinds["request/"] != 1 || kinds["response/allowed"] != 1 {
		t.Errorf("the default trail has %v for the call, want its request and its allowed response:\n%s", kinds, out)
	}
	if out, code := auditCLI(t, "verify", "--config", g.Config); code != 0 {
		t.Errorf("audit verify of the default trail: exit %d\n%s", code, out)
	}

	off := startServe(t, GatewayConfig{Servers: []ServerConfig{{Name: "everything", URL: upstream}}, Guards: "  audit: off\n"})
	mustToolText(t, mustInit(t, off.URL), "test_simple_text", nil)
	if out, code := auditCLI(t, "search", "--config", off.Config); code == 0 || !strings.Contains(out, "guards.audit is off") {
		t.Errorf("audit search with audit off: exit %d\n%s", code, out)
	}
	out, code = auditCLI(t, "search", "--config", off.Config, "--store", "--json")
	if code != 0 || strings.Contains(out, "test_simple_text") {
		t.Errorf("a gateway with audit off recorded its call (exit %d):\n%s", code, out)
	}
}
