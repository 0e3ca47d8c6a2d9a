package e2e

// Human approval of held calls, end to end: the real gateway in front of the reference
// memory server, an authz rule that holds create_entities, and the official TypeScript SDK
// as the client. With elicitation the user is asked through MCP; without it, the call
// waits until `portcullis approvals approve|deny` (another process) settles it. The
// memory server's file proves the server never saw a refused call.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/portcullis-mcp/portcullis/internal/store/postgres/pgtest"
)

type approvalResult struct {
	Elicitations []struct {
		Message         string          `json:"message"`
		RequestedSchema json.RawMessage `json:"requestedSchema"`
	} `json:"elicitations"`
	Calls []struct {
		Name   string          `json:"name"`
		Result json.RawMessage `json:"result"`
		Error  *RPCError       `json:"error"`
	} `json:"calls"`
}

// approvalGateway starts serve in front of the memory server with create_entities held,
// and returns it with the memory server's file.
func approvalGateway(t *testing.T, timeout string, approvalLines ...string) (*Gateway, string) {
	t.Helper()
	requireE2E(t)
	requireFile(t, memoryServerJS())
	requireFile(t, nodeModule("@modelcontextprotocol", "sdk", "package.json"))
	mem := memoryServer(t)
	dir := t.TempDir()
	guards := fmt.Sprintf(`  audit: {key_file: %s}
  authz:
    default: allow
    rules:
      - name: memory-writes
        effect: approve
        servers: [memory]
        tools: [create_entities]
  approval:
    timeout: %s
    poll_interval: 100ms
    key_file: %s
`, q(filepath.Join(dir, "audit.key")), timeout, q(filepath.Join(dir, "approval.key")))
	for _, l := range approvalLines {
		guards += "    " + l + "\n"
	}
	g := startServe(t, GatewayConfig{Servers: []ServerConfig{mem}, Guards: guards})
	return g, mem.Env["MEMORY_FILE_PATH"]
}

func entity(name string) map[string]any {
	return map[string]any{"entities": []any{map[string]any{"name": name, "entityType": "test", "observations": []string{"held by portcullis"}}}}
}

func memoryHas(t *testing.T, file, name string) bool {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return bytes.Contains(b, []byte(`"`+name+`"`))
}

func argsJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func runApprovalClient(t *testing.T, url, answer string, calls ...toolCall) *approvalResult {
	t.Helper()
	args := []string{filepath.Join(repoRoot, "test", "e2e", "clients", "approval-client.mjs"), "--url", url, "--answer", answer}
	for _, c := range calls {
		args = append(args, "--call", c.name, argsJSON(t, c.args))
	}
	out, err := runNode(t, 2*time.Minute, nil, args...)
	if err != nil {
		t.Fatalf("approval-client: %v", err)
	}
	var res approvalResult
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &res); err != nil || len(res.Calls) != len(calls) {
		t.Fatalf("approval-client output: %v\n%s", err, out)
	}
	return &res
}

// cli runs the portcullis command line and returns stdout.
func cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, portcullisBin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("portcullis %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), err
}

type pendingApproval struct {
	ID        string          `json:"id"`
	Status    string          `json:"status"`
	Principal string          `json:"principal"`
	Server    string          `json:"server"`
	Tool      string          `json:"tool"`
	Arguments json.RawMessage `json:"arguments"`
	Approver  string          `json:"approver"`
	Via       string          `json:"via"`
}

// awaitPending waits for a pending approval other than those in seen, through the CLI.
func awaitPending(t *testing.T, cfg string, seen map[string]bool) pendingApproval {
	t.Helper()
	var found pendingApproval
	err := waitFor(60*time.Second, nil, func() error {
		out, err := cli(t, "approvals", "list", "--config", cfg, "--json")
		if err != nil {
			return err
		}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var a pendingApproval
			if json.Unmarshal([]byte(line), &a) == nil && a.ID != "" && !seen[a.ID] {
				found = a
				seen[a.ID] = true
				return nil
			}
		}
		return fmt.Errorf("no new pending approval: %s", out)
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// auditDecisions returns the decision events of the trail in the store with code.
func auditDecisions(t *testing.T, cfg, code string) []map[string]any {
	t.Helper()
	out, err := cli(t, "audit", "search", "--config", cfg, "--code", code, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var evs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) == nil {
			evs = append(evs, e)
		}
	}
	return evs
}

// With elicitation: the user sees the exact server, tool and arguments; accept lets the
// call through, decline and no answer (timeout) refuse it, and the server never sees a
// refused call.
func TestApprovalElicitation(t *testing.T) {
	g, memFile := approvalGateway(t, "10s") // long enough for a loaded machine to answer; "ignore" waits it out
	for _, tc := range []struct {
		answer string
		pass   bool
	}{
		{"accept", true},
		{"decline", false},
		{"ignore", false}, // timeout
	} {
		t.Run(tc.answer, func(t *testing.T) {
			name := "approval-elicit-" + tc.answer
			res := runApprovalClient(t, g.URL, tc.answer, toolCall{"create_entities", entity(name)})
			if len(res.Elicitations) != 1 {
				t.Fatalf("the client was asked %d times, want once", len(res.Elicitations))
			}
			msg := res.Elicitations[0].Message
			for _, want := range []string{"Server: memory", "Tool: create_entities", `"name":"` + name + `"`, `rule "memory-writes"`} {
				if !strings.Contains(msg, want) {
					t.Errorf("the question does not show %q:\n%s", want, msg)
				}
			}
			c := res.Calls[0]
			if tc.pass {
				if c.Error != nil {
					t.Fatalf("accepted call refused: %s", c.Error)
				}
			} else {
				if c.Error == nil {
					t.Fatalf("%s: the call went through: %s", tc.answer, c.Result)
				}
				if c.Error.Code != -32010 || !strings.Contains(c.Error.Message, "create_entities") {
					t.Errorf("refusal %s", c.Error)
				}
			}
			if got := memoryHas(t, memFile, name); got != tc.pass {
				t.Errorf("the memory server has the entity: %v, want %v", got, tc.pass)
			}
		})
	}
	// The trail names the approver and the outcomes.
	if evs := auditDecisions(t, g.Config, "PC6002I"); len(evs) != 1 || !strings.Contains(fmt.Sprint(evs[0]["approver"]), "via elicitation") || evs[0]["approval"] == nil {
		t.Errorf("approved events %v", evs)
	}
	if evs := auditDecisions(t, g.Config, "PC6003W"); len(evs) != 1 {
		t.Errorf("denied events %v", evs)
	}
	if evs := auditDecisions(t, g.Config, "PC6004W"); len(evs) != 1 {
		t.Errorf("expired events %v", evs)
	}
}

// Without elicitation: the call waits until `approvals approve` from another process
// releases it or `deny` refuses it; an approval for one set of arguments (even for 30
// minutes) does not release a call with other arguments, and a refused call never reaches
// the server.
func TestApprovalCLI(t *testing.T) {
	g, memFile := approvalGateway(t, "60s")
	seen := map[string]bool{}
	a, b := "approval-cli-a", "approval-cli-b"

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := nodeCommand(ctx, filepath.Join(repoRoot, "test", "e2e", "clients", "sdk-client.mjs"),
		"--call", "create_entities", argsJSON(t, entity(a)),
		"--call", "create_entities", argsJSON(t, entity(b)),
		"--call", "create_entities", argsJSON(t, entity(a)),
		"--url", g.URL)
	var stdout bytes.Buffer
	stderr := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	// First call (a): held; approved for 30 minutes from another process.
	p := awaitPending(t, g.Config, seen)
	if p.Tool != "create_entities" || p.Server != "memory" || !strings.Contains(string(p.Arguments), a) {
		t.Fatalf("pending approval %+v", p)
	}
	if memoryHas(t, memFile, a) {
		t.Fatal("the server saw the held call before it was approved")
	}
	if _, err := cli(t, "approvals", "approve", p.ID, "--config", g.Config, "--scope", "duration", "--for", "30m", "--as", "bob", "--note", "e2e"); err != nil {
		t.Fatal(err)
	}
	// Second call (b): other arguments, held again although a is approved; denied.
	q := awaitPending(t, g.Config, seen)
	if !strings.Contains(string(q.Arguments), b) {
		t.Fatalf("second pending approval %+v, want arguments with %s", q, b)
	}
	if _, err := cli(t, "approvals", "deny", q.ID, "--config", g.Config, "--as", "bob"); err != nil {
		t.Fatal(err)
	}
	// Third call (a again): released by the 30-minute approval, without a new one.
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("sdk-client: %v\n%s", err, stderr.String())
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("the client did not finish\n%s", stderr.String())
	}
	var res sdkResult
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &res); err != nil || len(res.Calls) != 3 {
		t.Fatalf("sdk-client output: %v\n%s", err, stdout.String())
	}
	if res.Calls[0].Error != nil || res.Calls[2].Error != nil {
		t.Errorf("approved calls refused: %s / %s", res.Calls[0].Error, res.Calls[2].Error)
	}
	if e := res.Calls[1].Error; e == nil || e.Code != -32010 || !strings.Contains(e.Message, "denied by bob via cli") {
		t.Errorf("denied call: %s %s", e, res.Calls[1].Result)
	}
	if !memoryHas(t, memFile, a) || memoryHas(t, memFile, b) {
		t.Errorf("memory server: has %s %v (want true), has %s %v (want false)", a, memoryHas(t, memFile, a), b, memoryHas(t, memFile, b))
	}
	out, _ := cli(t, "approvals", "list", "--config", g.Config, "--status", "all", "--json")
	if n := strings.Count(strings.TrimSpace(out), "\n") + 1; n != 2 {
		t.Errorf("%d approvals recorded, want 2 (the third call was released by the first):\n%s", n, out)
	}
	if evs := auditDecisions(t, g.Config, "PC6002I"); len(evs) != 1 || evs[0]["approver"] != "bob via cli" {
		t.Errorf("approved events %v", evs)
	}
	if evs := auditDecisions(t, g.Config, "PC6005I"); len(evs) != 1 {
		t.Errorf("granted events %v", evs)
	}
	// A settled approval cannot be settled again.
	if _, err := cli(t, "approvals", "deny", p.ID, "--config", g.Config, "--as", "carol"); err == nil {
		t.Error("an approved approval was denied afterwards")
	}
}

// modernCall sends a sessionless 2026-07-28 tools/call that declares elicitation, with
// extra params (the retry's requestState and inputResponses).
func modernCall(t *testing.T, url string, id int, name string, args any, extra map[string]any) *Msg {
	t.Helper()
	params := map[string]any{"name": name, "arguments": args}
	for k, v := range extra {
		params[k] = v
	}
	params["_meta"] = map[string]any{
		"io.modelcontextprotocol/protocolVersion":    modernVersion,
		"io.modelcontextprotocol/clientCapabilities": map[string]any{"elicitation": map[string]any{"form": map[string]any{}}},
		"io.modelcontextprotocol/clientInfo":         map[string]any{"name": "portcullis-e2e", "version": "1.0.0"},
	}
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params})
	h := http.Header{}
	h.Set("MCP-Protocol-Version", modernVersion)
	h.Set("Mcp-Method", "tools/call")
	h.Set("Mcp-Name", name)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := newHTTPClient(url).PostWith(ctx, body, h)
	if err != nil || resp.Msg == nil {
		t.Fatalf("2026-07-28 tools/call: %v", err)
	}
	return resp.Msg
}

// A 2026-07-28 client is asked with an input_required result (an elicitation request and
// a signed requestState); its retry with the answer is released once, and never for other
// arguments; the server sees only the released call.
func TestApprovalModernInputRequired(t *testing.T) {
	g, memFile := approvalGateway(t, "60s")
	name := "approval-modern"
	m := modernCall(t, g.URL, 1, "create_entities", entity(name), nil)
	var ir struct {
		ResultType    string `json:"resultType"`
		InputRequests map[string]struct {
			Method string `json:"method"`
			Params struct {
				Message string `json:"message"`
			} `json:"params"`
		} `json:"inputRequests"`
		RequestState string `json:"requestState"`
	}
	if m.Error != nil || json.Unmarshal(m.Result, &ir) != nil || ir.ResultType != "input_required" || ir.RequestState == "" {
		t.Fatalf("first answer: %s %s", m.errorOrNil(), m.Result)
	}
	var key, msg string
	for k, r := range ir.InputRequests {
		if r.Method == "elicitation/create" {
			key, msg = k, r.Params.Message
		}
	}
	if key == "" || !strings.Contains(msg, `"name":"`+name+`"`) || !strings.Contains(msg, "Tool: create_entities") {
		t.Fatalf("input requests %s", m.Result)
	}
	if memoryHas(t, memFile, name) {
		t.Fatal("the server saw the held call")
	}
	accept := map[string]any{"requestState": ir.RequestState, "inputResponses": map[string]any{key: map[string]any{"action": "accept", "content": map[string]any{"scope": "once"}}}}
	// The answer on other arguments releases nothing.
	if m := modernCall(t, g.URL, 2, "create_entities", entity(name+"-other"), accept); m.Error == nil {
		t.Fatalf("a requestState released a call with other arguments: %s", m.Result)
	}
	if m := modernCall(t, g.URL, 3, "create_entities", entity(name), accept); m.Error != nil || strings.Contains(string(m.Result), "input_required") {
		t.Fatalf("accepted retry: %s %s", m.errorOrNil(), m.Result)
	}
	if !memoryHas(t, memFile, name) || memoryHas(t, memFile, name+"-other") {
		t.Fatal("the memory server does not hold exactly the approved entity")
	}
	if m := modernCall(t, g.URL, 4, "create_entities", entity(name), accept); m.Error == nil || m.Error.Code != -32010 {
		t.Fatalf("a replayed retry: %s %s", m.errorOrNil(), m.Result)
	}
}

// The webhook gets each pending approval with signed links; the gateway serves them on its
// HTTP listener: the approve link releases the held call, the deny link refuses the next,
// and a used link settles nothing again.
func TestApprovalWebhookLinks(t *testing.T) {
	requireE2E(t)
	requireFile(t, memoryServerJS())
	notices := make(chan map[string]any, 4)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n map[string]any
		json.NewDecoder(r.Body).Decode(&n)
		notices <- n
	}))
	defer hook.Close()
	mem := memoryServer(t)
	dir := t.TempDir()
	const base = "http://gateway.invalid" // links are rewritten to the gateway's real address
	g := startServe(t, GatewayConfig{Servers: []ServerConfig{mem}, Guards: fmt.Sprintf(`  authz:
    default: allow
    rules:
      - {name: memory-writes, effect: approve, tools: [create_entities], approvers: [ops]}
  approval:
    timeout: 60s
    key_file: %s
    webhook: {url: %s, base_url: %s}
`, q(filepath.Join(dir, "approval.key")), q(hook.URL), q(base))})
	memFile := mem.Env["MEMORY_FILE_PATH"]

	for _, tc := range []struct {
		link string
		pass bool
	}{{"approve_url", true}, {"deny_url", false}} {
		name := "approval-link-" + strings.TrimSuffix(tc.link, "_url")
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		cmd := nodeCommand(ctx, filepath.Join(repoRoot, "test", "e2e", "clients", "sdk-client.mjs"),
			"--call", "create_entities", argsJSON(t, entity(name)), "--url", g.URL)
		var stdout bytes.Buffer
		cmd.Stdout = &stdout
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var n map[string]any
		select {
		case n = <-notices:
		case <-time.After(60 * time.Second):
			t.Fatal("no webhook notice")
		}
		if n["tool"] != "create_entities" || n["server"] != "memory" || !strings.Contains(fmt.Sprint(n["arguments"]), name) {
			t.Fatalf("notice %v", n)
		}
		link := strings.Replace(fmt.Sprint(n[tc.link]), base, g.Base, 1)
		resp, err := http.Get(link)
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(page), "create_entities") || memoryHas(t, memFile, name) {
			t.Fatalf("GET %s: %d %s", tc.link, resp.StatusCode, page)
		}
		u, _ := neturl.Parse(link)
		resp, err = http.PostForm(g.Base+u.Path, u.Query())
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("POST %s: %v %v", tc.link, err, resp.Status)
		}
		resp.Body.Close()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("sdk-client: %v", err)
		}
		cancel()
		var res sdkResult
		json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &res)
		if len(res.Calls) != 1 || (res.Calls[0].Error == nil) != tc.pass || memoryHas(t, memFile, name) != tc.pass {
			t.Fatalf("%s: %s", tc.link, stdout.String())
		}
		// Used: the link settles nothing again.
		resp, err = http.PostForm(g.Base+u.Path, u.Query())
		if err != nil || resp.StatusCode != http.StatusConflict {
			t.Errorf("second POST %s: %v %v", tc.link, err, resp.Status)
		}
		resp.Body.Close()
	}
}

// startServePG starts serve with c's configuration on the PostgreSQL store dsn.
func startServePG(t *testing.T, c GatewayConfig, dsn string) *Gateway {
	t.Helper()
	for attempt := 0; ; attempt++ {
		c.Listen = "127.0.0.1:" + strconv.Itoa(freePort(t))
		c.Store = ""
		cfg := filepath.Join(t.TempDir(), "portcullis.yaml")
		if err := os.WriteFile(cfg, []byte(c.YAML()+"store: {driver: postgres, dsn: "+q(dsn)+"}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		p := startProc(t, "portcullis serve", exec.Command(portcullisBin, "serve", "--config", cfg))
		g := &Gateway{Proc: p, Base: "http://" + c.Listen, URL: "http://" + c.Listen + "/mcp", Config: cfg}
		err := waitFor(30*time.Second, p, func() error {
			resp, err := http.Get(g.Base + "/healthz")
			if err != nil {
				return err
			}
			resp.Body.Close()
			return nil
		})
		if err == nil {
			return g
		}
		if attempt < 2 && strings.Contains(p.Stderr.String(), "address already in use") {
			continue
		}
		t.Fatalf("portcullis serve did not come up: %v\n%s", err, p.Stderr.String())
	}
}

// A fleet on PostgreSQL: a call held on one replica is released when the command line
// (through the other replica's configuration) approves it. The replica looks at the store
// only once an hour, so only PostgreSQL's notification can release it.
func TestApprovalFleet(t *testing.T) {
	requireE2E(t)
	requireFile(t, memoryServerJS())
	dsn := pgtest.Schema(t)
	mem := memoryServer(t)
	dir := t.TempDir()
	guards := fmt.Sprintf(`  authz:
    default: allow
    rules:
      - {name: memory-writes, effect: approve, tools: [create_entities]}
  approval:
    timeout: 5m
    poll_interval: 1h
    key_file: %s
`, q(filepath.Join(dir, "approval.key")))
	r1 := startServePG(t, GatewayConfig{Servers: []ServerConfig{mem}, Guards: guards}, dsn)
	r2 := startServePG(t, GatewayConfig{Servers: []ServerConfig{mem}, Guards: guards}, dsn)
	name := "approval-fleet"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := nodeCommand(ctx, filepath.Join(repoRoot, "test", "e2e", "clients", "sdk-client.mjs"),
		"--call", "create_entities", argsJSON(t, entity(name)), "--url", r1.URL)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := awaitPending(t, r2.Config, map[string]bool{})
	// The held call subscribes to notifications right after recording its approval; wait
	// until replica 1 is listening so that the notice cannot go out before.
	waitListening(t, dsn)
	if _, err := cli(t, "approvals", "approve", p.ID, "--config", r2.Config, "--as", "bob"); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("sdk-client: %v", err)
	}
	var res sdkResult
	json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &res)
	if len(res.Calls) != 1 || res.Calls[0].Error != nil || !memoryHas(t, mem.Env["MEMORY_FILE_PATH"], name) {
		t.Fatalf("held call on replica 1: %s", stdout.String())
	}
}

// waitListening waits until some connection listens for settled approvals.
func waitListening(t *testing.T, dsn string) {
	t.Helper()
	err := waitFor(60*time.Second, nil, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		var n int
		if err := conn.QueryRow(ctx, "SELECT COUNT(*) FROM pg_stat_activity WHERE state = 'idle' AND query = 'LISTEN portcullis_approvals'").Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("nobody listens")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A held call that asked for progress keeps a real client waiting past its own request
// timeout: the official TypeScript SDK client, with a 3 s timeout restarted by progress,
// gets the gateway's "waiting for approval" reports and the call's result when a person
// approves it 8 s later.
func TestApprovalProgressKeepsClientWaiting(t *testing.T) {
	g, memFile := approvalGateway(t, "60s", "progress_interval: 500ms")
	const name = "approval-progress"
	// The approval comes well past the client's own 3 s timeout.
	p, c := heldSDKCall(t, g, "3000", "create_entities", argsJSON(t, entity(name)), 8*time.Second)
	if len(c.Progress) > 0 {
		t.Logf("%d progress reports, the first: %q", len(c.Progress), c.Progress[0])
	}
	if c.Error != nil {
		t.Fatalf("the approved call failed at the client: %s (progress %q)", c.Error, c.Progress)
	}
	if len(c.Progress) < 8 || !strings.Contains(c.Progress[0], p.ID) {
		t.Errorf("progress reports %q, want one every 500ms naming approval %s", c.Progress, p.ID)
	}
	if !memoryHas(t, memFile, name) {
		t.Error("the approved call did not reach the server")
	}
}

// Progress stays increasing across a held call and the server's own reports after its
// release: the reference everything server reports steps 1..3 of its long-running
// operation, which the client gets moved past the gateway's reports while it waited.
func TestApprovalProgressThenServerProgress(t *testing.T) {
	requireE2E(t)
	requireFile(t, nodeModule("@modelcontextprotocol", "sdk", "package.json"))
	dir := t.TempDir()
	guards := fmt.Sprintf(`  authz:
    default: allow
    rules:
      - {name: long-ops, effect: approve, tools: [trigger-long-running-operation]}
  approval:
    timeout: 60s
    poll_interval: 100ms
    progress_interval: 500ms
    key_file: %s
`, q(filepath.Join(dir, "approval.key")))
	g := startServe(t, GatewayConfig{Servers: []ServerConfig{limitsEverythingStdio(t)}, Guards: guards})
	p, c := heldSDKCall(t, g, "10000", "trigger-long-running-operation", `{"duration":1.5,"steps":3}`, 2*time.Second)
	t.Logf("progress at the client: %v %q", c.ProgressValues, c.Progress)
	if c.Error != nil {
		t.Fatalf("the approved call failed: %s", c.Error)
	}
	held, server := 0, 0
	for i, v := range c.ProgressValues {
		if i > 0 && v <= c.ProgressValues[i-1] {
			t.Errorf("progress %v after %v: it must increase", v, c.ProgressValues[i-1])
		}
		if strings.Contains(c.Progress[i], p.ID) {
			held++
		} else {
			server++
		}
	}
	if held < 3 || server != 3 {
		t.Errorf("%d reports while held and %d from the server, want at least 3 and 3: %v", held, server, c.ProgressValues)
	}
}

// progressCall is what the SDK client got for one call made with --timeout.
type progressCall struct {
	Result         json.RawMessage `json:"result"`
	Error          *RPCError       `json:"error"`
	Progress       []string        `json:"progress"`
	ProgressValues []float64       `json:"progressValues"`
}

// heldSDKCall runs the SDK client for one call of tool with args through gateway g, with
// a request timeout of timeoutMS restarted by progress; it approves the call as bob after
// it has waited for wait, and returns the approval and what the client got.
func heldSDKCall(t *testing.T, g *Gateway, timeoutMS, tool, args string, wait time.Duration) (pendingApproval, progressCall) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := nodeCommand(ctx, filepath.Join(repoRoot, "test", "e2e", "clients", "sdk-client.mjs"),
		"--timeout", timeoutMS, "--call", tool, args, "--url", g.URL)
	var stdout bytes.Buffer
	stderr := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	p := awaitPending(t, g.Config, map[string]bool{})
	time.Sleep(wait)
	if _, err := cli(t, "approvals", "approve", p.ID, "--config", g.Config, "--as", "bob"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("sdk-client: %v\n%s", err, stderr.String())
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("the client did not finish\n%s", stderr.String())
	}
	var res struct{ Calls []progressCall }
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &res); err != nil || len(res.Calls) != 1 {
		t.Fatalf("sdk-client output: %v\n%s", err, stdout.String())
	}
	return p, res.Calls[0]
}
