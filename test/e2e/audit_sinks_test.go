package e2e

// The audit trail's sinks and its durability through the real `portcullis serve`:
//   - kill -9 during a load run of concurrent sessions: every call a client saw answered is
//     in the trail after a restart, and the chain verifies (store and JSONL);
//   - Debian's rsyslog, started here on a loopback port, receives RFC 5424 messages that it
//     parses; stopped and started again, it gets the queued events, none twice;
//   - a SOAR webhook gets signed bodies; down and up again, every event arrives once;
//   - alert rules on findings of an allowed call reach a webhook that takes only alerts,
//     and no secret a detector found is written in clear;
//   - OpenTelemetry logs carry the call's trace;
//   - with every sink failing, calls are refused and the server sees nothing.

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// sealed reports whether line is a sealed audit event whose hash matches its content
// (the same check `portcullis audit verify` makes, written again here on purpose).
func sealed(line string) bool {
	const tail = len(`,"hash":"`) + 64 + len(`"}`)
	if len(line) < tail+2 || !strings.HasSuffix(line, `"}`) || line[len(line)-tail:len(line)-tail+9] != `,"hash":"` {
		return false
	}
	body := line[:len(line)-tail] + "}"
	sum := sha256.Sum256([]byte(body))
	return hex.EncodeToString(sum[:]) == line[len(line)-66:len(line)-2]
}

// ---- kill -9 under load ----

type answeredCall struct{ session, id string }

// loadUntilKilled runs sessions concurrent clients calling tool in a loop, kills the
// gateway (SIGKILL to its process group) once minAnswered calls were answered, and
// returns the calls the clients saw answered.
func loadUntilKilled(t *testing.T, g *Gateway, sessions, minAnswered int, tool string) map[answeredCall]bool {
	t.Helper()
	var mu sync.Mutex
	answered := map[answeredCall]bool{}
	var n atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range sessions {
		c := mustInit(t, g.URL)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				m, err := c.CallTool(ctx, tool, nil)
				cancel()
				if err != nil {
					if g.Exited() {
						return
					}
					continue
				}
				if m.Error == nil {
					mu.Lock()
					answered[answeredCall{c.SessionID, strings.Trim(string(m.ID), `"`)}] = true
					mu.Unlock()
					n.Add(1)
				}
			}
		}()
	}
	deadline := time.Now().Add(60 * time.Second)
	for n.Load() < int64(minAnswered) && time.Now().Before(deadline) && !g.Exited() {
		time.Sleep(5 * time.Millisecond)
	}
	if err := syscall.Kill(-g.Cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	g.Wait(10 * time.Second)
	close(stop)
	wg.Wait()
	if len(answered) < minAnswered {
		t.Fatalf("only %d calls answered before the kill, want at least %d", len(answered), minAnswered)
	}
	return answered
}

func TestAuditCrashUnderLoad(t *testing.T) {
	requireE2E(t)
	upstream := startEverythingHTTP(t)
	for _, sink := range []string{"store", "file"} {
		t.Run(sink, func(t *testing.T) {
			dir := t.TempDir()
			trailFile := filepath.Join(dir, "audit.jsonl")
			cfg := GatewayConfig{Servers: []ServerConfig{{Name: "everything", URL: upstream}}, Store: filepath.Join(dir, "portcullis.db"),
				Guards: "  audit: {}\n"}
			if sink == "file" {
				cfg.Guards = fmt.Sprintf("  audit:\n    file: %s\n    rotate_bytes: 65536\n", q(trailFile))
			}
			g := startServe(t, cfg)
			answered := loadUntilKilled(t, g, 8, 1000, "test_simple_text")
			cfgPath := g.Config
			verify := []string{"verify", "--config", cfgPath}
			search := []string{"search", "--config", cfgPath, "--tool", "test_simple_text", "--decision", "allowed", "--json"}
			if sink == "file" {
				verify = []string{"verify", "--file", trailFile}
				search = []string{"search", "--file", trailFile, "--tool", "test_simple_text", "--decision", "allowed", "--json"}
			}
			check := func(stage string) {
				t.Helper()
				out, code := auditCLI(t, verify...)
				if code != 0 {
					t.Fatalf("%s: audit verify: exit %d\n%s", stage, code, out)
				}
				t.Logf("%s: %d calls answered before kill -9; %s", stage, len(answered), strings.TrimSpace(out))
				out, code = auditCLI(t, search...)
				if code != 0 {
					t.Fatalf("%s: audit search: exit %d\n%s", stage, code, out)
				}
				inTrail := map[answeredCall]bool{}
				for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
					var e auditEvent
					if err := json.Unmarshal([]byte(line), &e); err != nil {
						t.Fatalf("%s: search printed %q: %v", stage, line, err)
					}
					if e.Kind == "response" {
						inTrail[answeredCall{e.Session, e.RequestID}] = true
					}
				}
				missing := 0
				for c := range answered {
					if !inTrail[c] {
						missing++
						if missing <= 5 {
							t.Errorf("%s: call %s of session %s was answered but is not in the trail", stage, c.id, c.session)
						}
					}
				}
				if missing > 0 {
					t.Errorf("%s: %d of %d answered calls are missing from the trail", stage, missing, len(answered))
				}
			}
			// Right after the crash (the store's journal is read too), and after a restart
			// (which moves the journal into the store) and one more call.
			check("after kill -9")
			g2 := startServe(t, cfg)
			mustToolText(t, mustInit(t, g2.URL), "test_simple_text", nil)
			check("after the restart")
		})
	}
}

// ---- syslog: Debian's rsyslog ----

const rsyslogConf = `global(workDirectory=%[1]q)
module(load="imtcp")
template(name="fields" type="list" option.jsonf="on") {
  property(outname="version" name="protocol-version" format="jsonf")
  property(outname="pri" name="pri" format="jsonf")
  property(outname="time" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="host" name="hostname" format="jsonf")
  property(outname="app" name="app-name" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="sd" name="structured-data" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
}
ruleset(name="audit") {
  action(type="omfile" file=%[2]q template="fields")
}
input(type="imtcp" port="%[3]d" address="127.0.0.1" ruleset="audit")
`

func rsyslogBin(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("rsyslogd"); err == nil {
		return p
	}
	if fileExists("/usr/sbin/rsyslogd") {
		return "/usr/sbin/rsyslogd"
	}
	t.Skip("rsyslogd is not installed (test/e2e/deps.sh installs Debian's rsyslog)")
	return ""
}

// startRsyslog runs rsyslogd in the foreground with its own configuration: TCP on a
// loopback port, every message parsed as RFC 5424 and written as JSON fields to out.
func startRsyslog(t *testing.T, bin, dir string, port int, out string) *Proc {
	t.Helper()
	conf := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(rsyslogConf, dir, out, port)), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "rsyslogd", exec.Command(bin, "-n", "-f", conf, "-i", filepath.Join(dir, "rsyslogd.pid")))
	err := waitFor(20*time.Second, p, func() error {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return err
		}
		return c.Close()
	})
	if err != nil {
		t.Fatalf("rsyslogd did not listen: %v\n%s", err, p.Stderr.String())
	}
	return p
}

type rsyslogLine struct {
	Version, Pri, Time, Host, App, Procid, Msgid, SD, Msg string
}

var sdID = regexp.MustCompile(`^\[portcullis@32473 id="([0-9a-f]{32})" seq="([0-9]+)" prev="([0-9a-f]{64})" hash="([0-9a-f]{64})"`)

func readRsyslog(t *testing.T, path string) []rsyslogLine {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []rsyslogLine
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l rsyslogLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("rsyslog wrote %q: %v", sc.Text(), err)
		}
		out = append(out, l)
	}
	return out
}

func TestAuditSyslogRsyslog(t *testing.T) {
	requireE2E(t)
	bin := rsyslogBin(t)
	upstream := startEverythingHTTP(t)
	dir := t.TempDir()
	port := freePort(t)
	received := filepath.Join(dir, "received.jsonl")
	rs := startRsyslog(t, bin, dir, port, received)
	trailFile := filepath.Join(dir, "audit.jsonl")
	cfg := GatewayConfig{Servers: []ServerConfig{{Name: "everything", URL: upstream}}, Guards: fmt.Sprintf(
		"  audit:\n    file: %s\n    syslog: {address: \"127.0.0.1:%d\", queue_dir: %s}\n", q(trailFile), port, q(filepath.Join(dir, "queue")))}
	g := startServe(t, cfg)
	c := mustInit(t, g.URL)
	for range 5 {
		mustToolText(t, c, "test_simple_text", nil)
	}

	// checkAll waits until rsyslog holds every event of the trail, once, each parsed as
	// RFC 5424 with the event in its parts.
	checkAll := func(stage string) {
		t.Helper()
		var lines []rsyslogLine
		trail := readTrail(t, trailFile)
		err := waitFor(30*time.Second, nil, func() error {
			lines = readRsyslog(t, received)
			if len(lines) < len(trail) {
				return fmt.Errorf("rsyslog has %d of %d events", len(lines), len(trail))
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", stage, err)
		}
		byID := map[string]auditEvent{}
		for _, e := range trail {
			byID[e.ID] = e
		}
		seen := map[string]int{}
		for _, l := range lines {
			m := sdID.FindStringSubmatch(l.SD)
			if l.Version != "1" || l.App != "portcullis" || m == nil {
				t.Errorf("%s: not an RFC 5424 message from portcullis: %+v", stage, l)
				continue
			}
			seen[m[1]]++
			e, ok := byID[m[1]]
			if !ok {
				t.Errorf("%s: rsyslog got event %s, which is not in the trail", stage, m[1])
				continue
			}
			if l.Msgid != e.Code || m[2] != strconv.FormatUint(e.Seq, 10) || m[4] != e.Hash || !sealed(strings.TrimSpace(l.Msg)) {
				t.Errorf("%s: message %+v does not carry event %+v", stage, l, e)
			}
			if _, err := time.Parse(time.RFC3339, l.Time); err != nil {
				t.Errorf("%s: timestamp %q: %v", stage, l.Time, err)
			}
		}
		for id, n := range seen {
			if n > 1 {
				t.Errorf("%s: event %s arrived %d times", stage, id, n)
			}
		}
		if len(seen) != len(trail) {
			t.Errorf("%s: rsyslog has %d distinct events, the trail %d", stage, len(seen), len(trail))
		}
	}
	checkAll("receiver up")

	// The receiver goes away; calls go on and their events wait in the queue.
	rs.Stop()
	for range 5 {
		mustToolText(t, c, "test_simple_text", nil)
	}
	time.Sleep(500 * time.Millisecond) // a few delivery attempts fail
	startRsyslog(t, bin, dir, port, received)
	checkAll("receiver restarted")
}

// ---- webhook: down and up again ----

// signedReceiver is a SOAR webhook receiver that checks signatures and counts events.
type signedReceiver struct {
	secret string
	addr   string
	mu     sync.Mutex
	srv    *http.Server
	ids    map[string]int
	bodies []string
	bad    []string
}

func newSignedReceiver(t *testing.T, secret string) *signedReceiver {
	r := &signedReceiver{secret: secret, ids: map[string]int{}}
	r.start(t)
	t.Cleanup(r.stop)
	return r
}

func (r *signedReceiver) start(t *testing.T) {
	t.Helper()
	addr := r.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	err := waitFor(10*time.Second, nil, func() (err error) { ln, err = net.Listen("tcp", addr); return err })
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(r.serve)}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go srv.Serve(ln)
}

func (r *signedReceiver) stop() {
	r.mu.Lock()
	srv := r.srv
	r.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

func (r *signedReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	m := hmac.New(sha256.New, []byte(r.secret))
	m.Write([]byte(req.Header.Get("X-Portcullis-Timestamp") + "."))
	m.Write(body)
	want := "sha256=" + hex.EncodeToString(m.Sum(nil))
	r.mu.Lock()
	defer r.mu.Unlock()
	if !hmac.Equal([]byte(want), []byte(req.Header.Get("X-Portcullis-Signature"))) {
		r.bad = append(r.bad, "bad signature on "+req.Header.Get("X-Portcullis-Event-Id"))
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	r.ids[req.Header.Get("X-Portcullis-Event-Id")]++
	r.bodies = append(r.bodies, string(body))
}

func (r *signedReceiver) snapshot() (ids map[string]int, bodies, bad []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids = map[string]int{}
	for k, v := range r.ids {
		ids[k] = v
	}
	return ids, append([]string(nil), r.bodies...), append([]string(nil), r.bad...)
}

func TestAuditWebhookRestart(t *testing.T) {
	requireE2E(t)
	upstream := startEverythingHTTP(t)
	rcv := newSignedReceiver(t, "s3cret")
	dir := t.TempDir()
	trailFile := filepath.Join(dir, "audit.jsonl")
	cfg := GatewayConfig{Servers: []ServerConfig{{Name: "everything", URL: upstream}}, Guards: fmt.Sprintf(
		"  audit:\n    file: %s\n    webhook: {url: %s, secret: s3cret}\n", q(trailFile), q("http://"+rcv.addr+"/hook"))}
	g := startServe(t, cfg)
	c := mustInit(t, g.URL)
	mustToolText(t, c, "test_simple_text", nil)

	allOnce := func(stage string) {
		t.Helper()
		trail := readTrail(t, trailFile)
		err := waitFor(30*time.Second, nil, func() error {
			if ids, _, _ := rcv.snapshot(); len(ids) < len(trail) {
				return fmt.Errorf("the webhook has %d of %d events", len(ids), len(trail))
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", stage, err)
		}
		ids, bodies, bad := rcv.snapshot()
		if len(bad) > 0 {
			t.Errorf("%s: %v", stage, bad)
		}
		for _, e := range trail {
			if ids[e.ID] != 1 {
				t.Errorf("%s: event %d (%s) arrived %d times", stage, e.Seq, e.Code, ids[e.ID])
			}
		}
		for _, b := range bodies {
			if !sealed(b) {
				t.Errorf("%s: body is not a sealed event: %s", stage, b)
			}
		}
	}
	allOnce("receiver up")
	rcv.stop()
	for range 5 {
		mustToolText(t, c, "test_simple_text", nil) // calls go on: the queue has their events
	}
	time.Sleep(500 * time.Millisecond)
	rcv.start(t)
	allOnce("receiver restarted")

	// The gateway is stopped while the receiver is down; the queue survives and is
	// delivered by the next gateway.
	rcv.stop()
	mustToolText(t, c, "test_simple_text", nil)
	g.Stop()
	rcv.start(t)
	g2 := startServe(t, cfg)
	mustToolText(t, mustInit(t, g2.URL), "test_simple_text", nil)
	allOnce("gateway and receiver restarted")
}

// ---- alerts on findings, to a SOAR webhook that takes only alerts ----

func TestAuditAlertsToWebhook(t *testing.T) {
	requireE2E(t)
	bin := buildLeaky(t)
	rcv := newSignedReceiver(t, "alert-secret")
	dir := t.TempDir()
	trailFile := filepath.Join(dir, "audit.jsonl")
	g := startServe(t, GatewayConfig{
		Servers: []ServerConfig{{Name: "leaky", Command: bin}},
		Guards: fmt.Sprintf(`  audit:
    file: %s
    arguments: full
    results: full
    webhook: {url: %s, secret: alert-secret, events: alerts, format: ocsf}
    alerts:
      - {name: secret-in-result, min_severity: high, detectors: [secrets]}
`, q(trailFile), q("http://"+rcv.addr+"/soar")),
	})
	c := mustInit(t, g.URL)
	mustToolText(t, c, "echo", map[string]any{"text": "nothing to see"})
	cfgText := mustToolText(t, c, "get_config", nil) // allowed, with its secrets redacted
	if strings.Contains(cfgText, "AKIA") {
		t.Fatalf("a secret reached the client: %s", cfgText)
	}
	err := waitFor(20*time.Second, nil, func() error {
		if ids, _, _ := rcv.snapshot(); len(ids) == 0 {
			return errors.New("no alert reached the webhook")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	ids, bodies, bad := rcv.snapshot()
	if len(ids) != 1 || len(bad) > 0 {
		t.Fatalf("the webhook got %d events (%v), want the one alert", len(ids), bad)
	}
	var alert struct {
		ClassUID int `json:"class_uid"`
		Metadata struct {
			EventCode string `json:"event_code"`
		} `json:"metadata"`
		Unmapped map[string]any `json:"unmapped"`
	}
	if err := json.Unmarshal([]byte(bodies[0]), &alert); err != nil || alert.ClassUID != 6003 || alert.Metadata.EventCode != "PC8001W" {
		t.Errorf("alert body: %v\n%s", err, bodies[0])
	}
	// testdata/leaky's secrets; evidence keeps only their well-known prefixes.
	secrets := []string{"Z7QJ3NB4X5TLUE6M", "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dE3fG5"}
	for _, s := range secrets {
		if strings.Contains(bodies[0], s) {
			t.Errorf("the alert holds a secret in clear: %s", bodies[0])
		}
	}
	// The trail: the allowed call has its findings; the alert names it; nothing in clear.
	raw, _ := os.ReadFile(trailFile)
	for _, s := range secrets {
		if strings.Contains(string(raw), s) {
			t.Errorf("the trail holds a secret in clear:\n%s", raw)
		}
	}
	out, _ := auditCLI(t, "search", "--file", trailFile, "--tool", "get_config", "--json")
	var resp, alertEv map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e map[string]any
		json.Unmarshal([]byte(line), &e)
		switch e["kind"] {
		case "response":
			resp = e
		case "alert":
			alertEv = e
		}
	}
	if resp == nil || resp["decision"] != "allowed" || resp["findings"] == nil {
		t.Fatalf("the allowed call's event lacks its findings: %v\n%s", resp, out)
	}
	if alertEv == nil || alertEv["alert"] != "secret-in-result" || alertEv["call"] != resp["id"] {
		t.Errorf("alert event %v for call %v", alertEv, resp["id"])
	}
	resp2, err := http.Get(g.Base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	for _, want := range []string{`portcullis_alerts_total{rule="secret-in-result"} 1`, `portcullis_findings_total{detector="secrets"`, `portcullis_upstream_up{server="leaky"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// ---- OpenTelemetry logs ----

var hexID = regexp.MustCompile(`"(traceId|spanId)":"([0-9a-f]+)"`)

func TestAuditOTLPLogs(t *testing.T) {
	requireE2E(t)
	upstream := startEverythingHTTP(t)
	var mu sync.Mutex
	var records []string // per log record: its JSON, its trace id, its body
	var bad []string
	var spanHits int
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		switch r.URL.Path {
		case "/v1/traces":
			spanHits++
			return
		case "/v1/logs":
		default:
			bad = append(bad, r.URL.Path)
			return
		}
		if r.Header.Get("Content-Type") != "application/json" {
			bad = append(bad, "content type "+r.Header.Get("Content-Type"))
		}
		// OTLP/JSON writes trace and span ids in hex; the protobuf JSON mapping reads
		// bytes as base64: convert them, then decode strictly (unknown fields fail).
		fixed := hexID.ReplaceAllStringFunc(string(body), func(s string) string {
			m := hexID.FindStringSubmatch(s)
			b, _ := hex.DecodeString(m[2])
			return fmt.Sprintf("%q:%q", m[1], base64.StdEncoding.EncodeToString(b))
		})
		var req collogs.ExportLogsServiceRequest
		if err := protojson.Unmarshal([]byte(fixed), &req); err != nil {
			bad = append(bad, err.Error())
			return
		}
		for _, rl := range req.ResourceLogs {
			for _, sl := range rl.ScopeLogs {
				for _, lr := range sl.LogRecords {
					b, _ := protojson.Marshal(lr)
					records = append(records, string(b)+"\t"+hex.EncodeToString(lr.TraceId)+"\t"+lr.Body.GetStringValue())
				}
			}
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	endpoint := "http://" + ln.Addr().String()
	dir := t.TempDir()
	g := startServe(t, GatewayConfig{Servers: []ServerConfig{{Name: "everything", URL: upstream}},
		Guards: fmt.Sprintf("  audit:\n    otlp: {endpoint: %s, queue_dir: %s}\n  trace:\n    endpoint: %s\n", q(endpoint), q(filepath.Join(dir, "q")), q(endpoint))})
	c := mustInit(t, g.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	m, err := c.Request(ctx, "tools/call", map[string]any{"name": "test_simple_text", "arguments": map[string]any{},
		"_meta": map[string]any{"traceparent": "00-" + traceID + "-00f067aa0ba902b7-01"}})
	if err != nil || m.Error != nil {
		t.Fatalf("tools/call: %v %v", m, err)
	}
	err = waitFor(20*time.Second, nil, func() error {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, r := range records {
			if strings.Contains(r, "\t"+traceID+"\t") {
				n++
			}
		}
		if n < 2 {
			return fmt.Errorf("%d log records in the client's trace, want the request and its outcome (%d records, bad: %v)", n, len(records), bad)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Errorf("bad exports: %v", bad)
	}
	for _, r := range records {
		parts := strings.SplitN(r, "\t", 3)
		if !sealed(parts[2]) {
			t.Errorf("a log record's body is not a sealed event: %s", parts[2])
		}
		if strings.Contains(parts[2], `"kind":"response"`) && strings.Contains(parts[2], "test_simple_text") &&
			(!strings.Contains(parts[0], `"portcullis.decision"`) || parts[1] != traceID) {
			t.Errorf("the call's outcome record: %s", r)
		}
	}
}

// ---- every sink failing ----

func TestAuditAllSinksFail(t *testing.T) {
	requireE2E(t)
	dir := t.TempDir()
	trailFile := filepath.Join(dir, "audit.jsonl")
	// Two sinks: the file, and a webhook whose queue cannot be created.
	cfg, markers := crashyConfig(t, fmt.Sprintf("  audit:\n    file: %s\n    webhook: {url: \"http://127.0.0.1:9/x\", secret: s, queue_dir: /dev/null/queue}\n", q(trailFile)))
	g := startServe(t, cfg)
	c := mustInit(t, g.URL)
	if got := mustToolText(t, c, "echo", map[string]any{"message": "one"}); got != "one" {
		t.Fatalf("echo: %q", got)
	}
	os.Remove(filepath.Join(markers, "call-echo"))
	if err := os.Rename(trailFile, trailFile+".000001"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/full", trailFile); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		m, err := c.CallTool(ctx, "echo", map[string]any{"message": "refused"})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if m.Error == nil || m.Error.Code != -32014 || !strings.Contains(string(m.Error.Data), `"incident"`) {
			t.Fatalf("call %d with no working sink: %v / %s", i, m.Error, m.Result)
		}
	}
	time.Sleep(300 * time.Millisecond)
	if fileExists(filepath.Join(markers, "call-echo")) {
		t.Errorf("the server saw a call that could not be recorded")
	}
	if !strings.Contains(g.Stderr.String(), "AUDIT UNAVAILABLE") {
		t.Errorf("the gateway did not say so loudly")
	}
}

// Two gateways on one host and one store, both with the default chain (the host name): the
// second takes the next free chain, and both trails verify.
func TestAuditStoreTwoGateways(t *testing.T) {
	requireE2E(t)
	upstream := startEverythingHTTP(t)
	db := filepath.Join(t.TempDir(), "portcullis.db")
	cfg := GatewayConfig{Servers: []ServerConfig{{Name: "everything", URL: upstream}}, Store: db, Guards: "  audit: {}\n"}
	a, b := startServe(t, cfg), startServe(t, cfg)
	mustToolText(t, mustInit(t, a.URL), "test_simple_text", nil)
	mustToolText(t, mustInit(t, b.URL), "test_simple_text", nil)
	out, code := auditCLI(t, "verify", "--config", a.Config, "--json")
	var res struct {
		OK     bool
		Chains map[string]int
	}
	json.Unmarshal([]byte(out), &res)
	if code != 0 || !res.OK || len(res.Chains) != 2 {
		t.Fatalf("audit verify: exit %d\n%s", code, out)
	}
	for c, n := range res.Chains {
		if n != 3 { // started, request, response
			t.Errorf("chain %s has %d events, want 3", c, n)
		}
	}
}
