package e2e

// The audit trail in the store (guards.audit with no other sink): every call is recorded
// in SQLite, `portcullis audit verify|search` read it through the configuration, a kill -9
// loses no answered call, and an edited row is named.

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite" // to tamper with the store as an attacker would
)

func TestAuditStore(t *testing.T) {
	requireE2E(t)
	upstream := startEverythingHTTP(t)
	dbPath := filepath.Join(t.TempDir(), "portcullis.db")
	cfg := GatewayConfig{Servers: []ServerConfig{{Name: "everything", URL: upstream}}, Store: dbPath,
		Guards: "  audit: {}\n  limits:\n    max_params_bytes: 80\n"}
	g := startServe(t, cfg)
	c := mustInit(t, g.URL)
	for range 3 {
		mustToolText(t, c, "test_simple_text", nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if m, err := c.CallTool(ctx, "test_simple_text", map[string]any{"padding": strings.Repeat("x", 100)}); err != nil || m.Error == nil {
		t.Fatalf("a call over max_params_bytes: %v %v", m, err)
	}

	out, code := auditCLI(t, "verify", "--config", g.Config)
	if code != 0 || !strings.Contains(out, "in 1 chains") {
		t.Fatalf("audit verify of the store: exit %d\n%s", code, out)
	}
	t.Logf("audit verify: %s", strings.TrimSpace(out))
	out, code = auditCLI(t, "search", "--config", g.Config, "--tool", "test_simple_text", "--json")
	if code != 0 {
		t.Fatalf("audit search: exit %d\n%s", code, out)
	}
	var allowed, denied int
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e auditEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("search printed %q: %v", line, err)
		}
		if e.Kind == "response" && e.Decision == "allowed" {
			allowed++
		}
		if e.Decision == "denied" && e.Guard == "limits" {
			denied++
		}
	}
	if allowed != 3 || denied != 1 {
		t.Errorf("the store holds %d allowed and %d denied calls, want 3 and 1:\n%s", allowed, denied, out)
	}

	// kill -9 in the middle of calls: every answered call is in the store after a restart.
	answered := map[string]bool{}
	for i := range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		m, err := c.CallTool(ctx, "test_simple_text", nil)
		cancel()
		if err == nil && m.Error == nil {
			answered[strings.Trim(string(m.ID), `"`)] = true
		}
		if i == 12 {
			syscall.Kill(-g.Cmd.Process.Pid, syscall.SIGKILL)
		}
	}
	g.Wait(5 * time.Second)
	g2 := startServe(t, cfg)
	mustToolText(t, mustInit(t, g2.URL), "test_simple_text", nil)
	out, _ = auditCLI(t, "search", "--config", g2.Config, "--decision", "allowed", "--json")
	inTrail := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e auditEvent
		json.Unmarshal([]byte(line), &e)
		if e.Kind == "response" {
			inTrail[e.RequestID] = true
		}
	}
	for id := range answered {
		if !inTrail[id] {
			t.Errorf("call %s was answered but is not in the store", id)
		}
	}
	if out, code := auditCLI(t, "verify", "--config", g2.Config); code != 0 {
		t.Fatalf("audit verify after kill -9 and restart: exit %d\n%s", code, out)
	}
	g2.Stop()

	// An attacker edits who made a call, in the sealed line.
	db, err := sql.Open("sqlite", "file:"+dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var row int64
	if err := db.QueryRow(`SELECT row FROM audit_events WHERE decision = 'denied' LIMIT 1`).Scan(&row); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE audit_events SET line = CAST(replace(CAST(line AS TEXT), '"decision":"denied"', '"decision":"allowed"') AS BLOB) WHERE row = ?`, row); err != nil {
		t.Fatal(err)
	}
	out, code = auditCLI(t, "verify", "--config", g2.Config, "--json")
	var res struct {
		OK      bool
		Problem struct {
			Kind string
			Row  int64
		}
	}
	json.Unmarshal([]byte(out), &res)
	if code != 1 || res.OK || res.Problem.Kind != "altered" || res.Problem.Row != row {
		t.Errorf("audit verify after editing row %d: exit %d\n%s", row, code, out)
	}
}
