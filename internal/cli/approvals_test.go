package cli

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/store"
	"github.com/portcullis-mcp/portcullis/internal/store/sqlite"
)

func TestApprovalsCommands(t *testing.T) {
	cfg := writeTestConfig(t, "auth: none\n")
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(filepath.Dir(cfg), "state", "portcullis.db"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, id := range []string{"ap_1", "ap_2", "ap_3"} {
		a := store.Approval{ID: id, ApprovalBinding: store.ApprovalBinding{Principal: "alice", PrincipalMethod: "apikey", Server: "fs", Method: "tools/call", Tool: "write", ArgsHash: "h"},
			Session: "s1", Arguments: []byte(`{"path":"/x"}`), Reason: `authz: rule "w"`, Status: store.ApprovalPending, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if id == "ap_3" {
			a.Approvers = []string{"secops"}
		}
		if err := st.CreateApproval(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()

	code, out, errs := runCLI("approvals", "list", "--config", cfg)
	if code != 0 || !strings.Contains(out, "ap_1") || !strings.Contains(out, `{"path":"/x"}`) || !strings.Contains(out, "secops") {
		t.Fatalf("list: %d %s %s", code, out, errs)
	}
	code, out, errs = runCLI("approvals", "approve", "ap_1", "--config", cfg, "--scope", "duration", "--for", "30m", "--as", "bob", "--note", "ok")
	if code != 0 || !strings.Contains(out, "approved by bob") {
		t.Fatalf("approve: %d %s %s", code, out, errs)
	}
	code, _, errs = runCLI("approvals", "deny", "ap_1", "--config", cfg, "--as", "carol")
	if code != 1 || !strings.Contains(errs, "no longer pending: approved by bob") {
		t.Errorf("deny after approve: %d %s", code, errs)
	}
	code, _, errs = runCLI("approvals", "approve", "ap_3", "--config", cfg, "--as", "alice")
	if code != 1 || !strings.Contains(errs, "may not approve its own call") {
		t.Errorf("self-approval: %d %s", code, errs)
	}
	code, _, _ = runCLI("approvals", "approve", "ap_2", "--config", cfg, "--as", "bob", "--for", "30m")
	if code != 2 {
		t.Errorf("--for without --scope duration: exit %d", code)
	}
	code, _, errs = runCLI("approvals", "approve", "nope", "--config", cfg, "--as", "bob")
	if code != 1 || !strings.Contains(errs, `no approval "nope"`) {
		t.Errorf("unknown id: %d %s", code, errs)
	}
	if code, _, _ = runCLI("approvals", "deny", "ap_2", "--config", cfg); code != 0 { // the OS user
		t.Errorf("deny as the OS user: exit %d", code)
	}
	code, out, _ = runCLI("approvals", "show", "ap_1", "--config", cfg, "--json")
	var a map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &a) != nil || a["status"] != "approved" || a["approver"] != "bob" || a["via"] != "cli" || a["scope"] != "duration" || a["grant_until"] == nil {
		t.Errorf("show: %d %s", code, out)
	}
	code, out, _ = runCLI("approvals", "list", "--config", cfg, "--status", "pending")
	if code != 0 || strings.Contains(out, "ap_1") || !strings.Contains(out, "ap_3") {
		t.Errorf("list pending: %s", out)
	}
}
