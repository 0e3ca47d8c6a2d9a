package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/identity"
	"github.com/portcullis-mcp/portcullis/internal/identity/oidctest"
	"github.com/portcullis-mcp/portcullis/internal/store"
	"github.com/portcullis-mcp/portcullis/internal/store/sqlite"
)

const chromiumBin = "/usr/bin/chromium" // Debian's chromium (test/e2e/deps.sh)

// dashboardRun is what test/e2e/clients/dashboard.mjs saw.
type dashboardRun struct {
	AdminRole, ApproverRole, ViewerRole string
	SSOUser, SSORole                    string
	FeedRow                             string
	ApproveID, DenyID                   string
	ShownArguments                      string
	AnonymousApprove                    int
	ViewerApprove                       int
	CrossSiteApprove                    int
	CrossOriginApprove                  int
	ApproveMessage, DenyMessage         string
	HeldApproved, HeldDenied            json.RawMessage
	PinBefore, PinAfter                 json.RawMessage
	NewPendingNotice                    string
	FeedFiltered                        int
	Diff                                string
	PinMessage, PinStatusAfter          string
	AuditCount                          int
	AuditTools                          []string
	ExportLines                         int
	SummaryCalls                        int
	Failures                            []string
}

// TestDashboard drives the dashboard of a real `portcullis serve` in headless Chromium:
// logging in, a call appearing in the live feed, approving and denying held calls,
// refusing unauthenticated, viewer and cross-site approvals, approving a changed tool
// definition, and searching and exporting the audit trail. It takes a screenshot of each
// view (into docs/screenshots with PORTCULLIS_SCREENSHOTS=1).
func TestDashboard(t *testing.T) {
	requireE2E(t)
	requireFile(t, chromiumBin)
	requireFile(t, nodeModule("playwright-core", "package.json"))
	ctx := context.Background()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "portcullis.db")
	st, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	keys := map[string]string{}
	for name, groups := range map[string][]string{"ada": {"secops"}, "otto": {"oncall"}, "vera": {"auditors"}} {
		tok, k, err := identity.NewKey(name, groups, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := st.CreateKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		keys[name] = tok
	}
	adminAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	iss := oidctest.New() // single sign-on: the authorization code flow
	defer iss.Close()
	flow := iss.ServeCodeFlow("portcullis-dashboard", "e2e-secret")
	flow.SetUser(map[string]any{"sub": "u-17", "email": "sam@example.com", "groups": []any{"auditors"}})
	// The rugpull server: its tool add changes right after the first listing (a rug pull,
	// which the registry guard holds back until a person approves the new definition), and
	// its tool echo is held for a person's approval when the message starts with "hold".
	guards := fmt.Sprintf(`  audit: {key_file: %s}
  authz:
    default: allow
    rules:
      - name: needs-a-person
        effect: approve
        tools: [echo]
        when: 'has(args.message) && args.message.startsWith("hold")'
        approvers: [oncall]
  approval:
    timeout: 2m
    poll_interval: 100ms
    key_file: %s
`, q(filepath.Join(dir, "audit.key")), q(filepath.Join(dir, "approval.key")))
	g := startServe(t, GatewayConfig{
		Store:   dbPath,
		Servers: []ServerConfig{{Name: "rug", Command: buildRugpull(t), Env: map[string]string{"RUGPULL_CHANGE": "description"}}},
		Guards:  guards,
		Extra: fmt.Sprintf("admin:\n  listen: %q\n  roles: {admin: [secops], approver: [oncall], viewer: [auditors]}\n"+
			"  oidc: {issuer: %q, client_id: portcullis-dashboard, client_secret: e2e-secret, redirect_url: %q, user_claim: email}\n",
			adminAddr, iss.URL, "http://"+adminAddr+"/login/oidc/callback"),
	})
	// The screenshots go to a scratch directory, so that a test run leaves the tree as it
	// was; PORTCULLIS_SCREENSHOTS=1 writes them to docs/screenshots to refresh the docs.
	shots := filepath.Join(dir, "screenshots")
	if os.Getenv("PORTCULLIS_SCREENSHOTS") == "1" {
		shots = filepath.Join(repoRoot, "docs", "screenshots")
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{"BASE=http://" + adminAddr, "MCP_URL=" + g.URL, "SHOTS=" + shots, "CHROMIUM=" + chromiumBin,
		"ADMIN_KEY=" + keys["ada"], "APPROVER_KEY=" + keys["otto"], "VIEWER_KEY=" + keys["vera"],
		"HELD=1", "HELD_TOOL=echo", "PIN_SERVER=rug", "PIN_NAME=add", "SSO=1"}
	out, err := runNode(t, 3*time.Minute, env, filepath.Join(repoRoot, "test", "e2e", "clients", "dashboard.mjs"))
	if err != nil {
		t.Fatalf("dashboard.mjs: %v\n%s", err, g.Stderr.String())
	}
	var run dashboardRun
	if err := json.Unmarshal([]byte(out), &run); err != nil {
		t.Fatalf("dashboard.mjs printed %q: %v", out, err)
	}
	t.Logf("browser run: %+v", run)
	t.Logf("held calls at the client: approved %s; denied %s", run.HeldApproved, run.HeldDenied)
	t.Logf("the changed tool at the client: before approval %s; after %s", run.PinBefore, run.PinAfter)

	if len(run.Failures) > 0 {
		t.Errorf("script errors or CSP violations in the pages: %v", run.Failures)
	}
	if run.AdminRole != "admin" || run.ApproverRole != "approver" || run.ViewerRole != "viewer" {
		t.Errorf("roles: %q %q %q", run.AdminRole, run.ApproverRole, run.ViewerRole)
	}
	if run.SSOUser != "sam@example.com" || run.SSORole != "viewer" {
		t.Errorf("single sign-on in the browser: %q as %q, want sam@example.com as viewer", run.SSOUser, run.SSORole)
	}
	if !strings.Contains(run.FeedRow, "allowed") || !strings.Contains(run.FeedRow, "anonymous") {
		t.Errorf("live feed row %q", run.FeedRow)
	}
	if run.FeedFiltered < 1 {
		t.Errorf("the feed's filter hid %d rows", run.FeedFiltered)
	}
	if !strings.Contains(run.ShownArguments, `"message": "hold: approve me"`) {
		t.Errorf("the approvals view shows arguments %q", run.ShownArguments)
	}
	if run.AnonymousApprove != 401 && run.AnonymousApprove != 403 {
		t.Errorf("unauthenticated approve: %d", run.AnonymousApprove)
	}
	if run.ViewerApprove != 403 {
		t.Errorf("viewer approve: %d, want 403", run.ViewerApprove)
	}
	if run.CrossSiteApprove != 403 || run.CrossOriginApprove != 403 {
		t.Errorf("cross-site approve: %d, same-site cross-origin approve: %d, want 403", run.CrossSiteApprove, run.CrossOriginApprove)
	}
	for id, want := range map[string]string{run.ApproveID: store.ApprovalApproved, run.DenyID: store.ApprovalDenied} {
		a, err := st.GetApproval(ctx, id)
		if err != nil {
			t.Fatalf("approval %q: %v", id, err)
		}
		if a.Status != want || a.Approver != "otto" || a.Via != "dashboard" || a.Tool != "echo" {
			t.Errorf("approval %s of %s: %s by %q via %q, want %s by otto via dashboard", id, a.Tool, a.Status, a.Approver, a.Via, want)
		}
		if want == store.ApprovalDenied && a.Note != "not in production" {
			t.Errorf("deny note %q", a.Note)
		}
	}
	if !strings.Contains(run.NewPendingNotice, "1 new call is waiting") {
		t.Errorf("the approvals page's notice of a new held call: %q", run.NewPendingNotice)
	}
	// The held calls: the approved one completed at the client, the denied one was refused.
	if !strings.Contains(string(run.HeldApproved), `echo (changed:`) || strings.Contains(string(run.HeldApproved), `"error"`) {
		t.Errorf("the approved call at the client: %s", run.HeldApproved)
	}
	if !strings.Contains(string(run.HeldDenied), `"error"`) {
		t.Errorf("the denied call at the client: %s", run.HeldDenied)
	}
	// The changed tool: refused before the approval, answered after it.
	if !strings.Contains(string(run.PinBefore), "-32010") || !strings.Contains(string(run.PinAfter), "add (changed: true)") {
		t.Errorf("the changed tool before approval: %s; after: %s", run.PinBefore, run.PinAfter)
	}
	if !strings.Contains(run.Diff, "+") || !strings.Contains(run.Diff, "notes") {
		t.Errorf("the servers view's diff: %q", run.Diff)
	}
	ps, err := st.ListPins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	approved := false
	for _, p := range ps {
		if p.Server == "rug" && p.Kind == "tool" && p.Name == "add" {
			approved = p.Pending == nil && p.PinnedBy == "ada" && strings.Contains(string(p.Definition), "notes")
		}
	}
	if !approved || run.PinStatusAfter != "pinned" {
		t.Errorf("pin of add after approval from the dashboard: %+v (page says %q)", ps, run.PinStatusAfter)
	}
	if run.AuditCount < 1 || run.ExportLines != run.AuditCount {
		t.Errorf("audit search found %d, export has %d lines", run.AuditCount, run.ExportLines)
	}
	for _, tool := range run.AuditTools {
		if tool != "echo" {
			t.Errorf("audit search for echo returned %q", tool)
		}
	}
	if run.SummaryCalls < 1 {
		t.Errorf("summary counts %d calls", run.SummaryCalls)
	}
	// Every action is in the audit trail with the person who did it.
	recs, err := st.SearchAudit(ctx, store.AuditQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, r := range recs {
		e, err := audit.ParseLine(r.Line)
		if err != nil {
			t.Fatal(err)
		}
		if e.Kind == audit.KindAdmin {
			seen[e.Code+" "+e.Principal+" "+e.Method]++
		}
	}
	for _, want := range []string{
		"PC9001I ada dashboard/login", "PC9001I sam@example.com dashboard/login", "PC9001I otto dashboard/login", "PC9001I vera dashboard/login",
		"PC9002W  dashboard/login",
		"PC9102I otto dashboard/approve", "PC9102I otto dashboard/deny", "PC9102I ada dashboard/approve-pin",
		"PC9103W vera dashboard", "PC9103W  dashboard", "PC9102I ada dashboard/export", "PC9101I otto dashboard/approve",
	} {
		if seen[want] == 0 {
			t.Errorf("no audit event %q; dashboard events: %v", want, seen)
		}
	}
	for _, v := range []string{"login", "live", "approvals", "servers", "alerts", "audit", "summary"} {
		requireShot(t, filepath.Join(shots, v+".png"))
	}
}

func requireShot(t *testing.T, p string) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil || fi.Size() < 1000 {
		t.Errorf("screenshot %s: %v", p, err)
	}
}
