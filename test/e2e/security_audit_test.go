package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAuditEdgeRefusals: a failed authentication and a session id presented by another
// principal are refused before any guard runs, and both land in the audit trail.
func TestAuditEdgeRefusals(t *testing.T) {
	requireE2E(t)
	rs := startRecordingServer(t)
	var trailFile string
	g := startAuthServe(t, "http", nil, func(string) string {
		trailFile = filepath.Join(t.TempDir(), "audit.jsonl")
		return "auth: {api_keys: true}\n" + serversYAML(rs.URL) + fmt.Sprintf("guards:\n  audit:\n    file: %q\n", trailFile)
	})
	alice := keysCLI(t, g.Config, "create", "--name", "alice")
	mallory := keysCLI(t, g.Config, "create", "--name", "mallory")
	c := g.session(t, "Authorization", "Bearer "+alice)
	if _, err := c.CallToolWith(t, "echo", "Authorization", "Bearer "+mallory); err == nil {
		t.Error("mallory used alice's session")
	}
	if resp, err := g.post(t, g.URL, initBody(), "Authorization", "Bearer pc_wrong_key"); err == nil && statusOf(resp) != 401 {
		t.Errorf("a wrong key got HTTP %d", statusOf(resp))
	}
	err := waitFor(10*time.Second, nil, func() error {
		var misuse, authFailed bool
		for _, e := range readTrail(t, trailFile) {
			switch e.Code {
			case "PC7002W":
				misuse = e.Principal == "mallory" && e.Session != "" && strings.Contains(e.Message, "alice")
			case "PC7001W":
				authFailed = true
			}
		}
		if !misuse || !authFailed {
			return fmt.Errorf("session misuse recorded: %v, failed authentication recorded: %v", misuse, authFailed)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if out, code := auditCLI(t, "verify", "--config", g.Config); code != 0 {
		t.Fatalf("audit verify: %d\n%s", code, out)
	}
}
