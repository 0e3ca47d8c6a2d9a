package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	trail "github.com/portcullis-mcp/portcullis/internal/audit"
)

func auditTrail(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	f, err := trail.OpenFile(trail.FileOptions{Path: path, RotateBytes: 1500})
	if err != nil {
		t.Fatal(err)
	}
	b, err := trail.NewBroker([]trail.Sink{f}, trail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i, who := range []string{"alice", "bob", "alice", "carol", "alice", "bob"} {
		e := &trail.Event{Code: trail.CodeAllowed, Kind: trail.KindResponse, Decision: trail.Allowed, Principal: who,
			Server: "fs", Method: "tools/call", Tool: "read_file", LatencyMicros: int64(1000 * (i + 1))}
		if who == "bob" {
			e.Code, e.Decision, e.Guard, e.Incident = trail.CodeDeniedAuthz, trail.Denied, "authz", "abc"
		}
		if err := b.Record(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()
	return path
}

func TestAuditVerify(t *testing.T) {
	path := auditTrail(t)
	code, out, errs := runCLI("audit", "verify", "--file", path)
	if code != 0 || !strings.Contains(out, "ok: 7 events") {
		t.Fatalf("verify = %d %q %q", code, out, errs)
	}
	files, _ := trail.Files(path)
	if len(files) < 2 {
		t.Fatalf("files %v: want rotation", files)
	}
	// Delete the second line of the first file.
	data, _ := os.ReadFile(files[0])
	lines := strings.SplitAfter(string(data), "\n")
	os.WriteFile(files[0], []byte(lines[0]+strings.Join(lines[2:], "")), 0o600)
	code, out, _ = runCLI("audit", "verify", "--file", path, "--json")
	var res struct {
		OK      bool
		Problem struct {
			Kind string
			File string
			Line int
			Seq  uint64
		}
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err, out)
	}
	if code != 1 || res.OK || res.Problem.Kind != "removed" || res.Problem.Seq != 2 || res.Problem.Line != 2 || res.Problem.File != files[0] {
		t.Errorf("verify after a deletion = %d %s", code, out)
	}
	code, out, _ = runCLI("audit", "verify", "--file", path)
	if code != 1 || !strings.Contains(out, "event 2 removed") {
		t.Errorf("text output: %s", out)
	}
}

func TestAuditSearchExportTail(t *testing.T) {
	path := auditTrail(t)
	code, out, _ := runCLI("audit", "search", "--file", path, "--principal", "bob", "--decision", "denied", "--json")
	if code != 0 || strings.Count(out, "\n") != 2 || strings.Contains(out, "alice") {
		t.Errorf("search = %d %q", code, out)
	}
	code, out, _ = runCLI("audit", "search", "--file", path, "--server", "fs", "--since", "1h")
	if code != 0 || strings.Count(out, "\n") != 6 || !strings.Contains(out, "guard=authz") {
		t.Errorf("search text = %d %q", code, out)
	}
	code, out, _ = runCLI("audit", "export", "--file", path, "--format", "cef", "--tool", "read_file")
	if code != 0 || strings.Count(out, "CEF:0|") != 6 {
		t.Errorf("export = %d %q", code, out)
	}
	code, out, _ = runCLI("audit", "tail", "--file", path, "-n", "2", "--json")
	if code != 0 || strings.Count(out, "\n") != 2 || !strings.Contains(out, `"seq":7`) {
		t.Errorf("tail = %d %q", code, out)
	}
	if code, _, _ := runCLI("audit", "search", "--file", path, "--decision", "maybe"); code != 2 {
		t.Errorf("a bad decision: exit %d", code)
	}
}

func TestAuditFromConfig(t *testing.T) {
	path := auditTrail(t)
	cfg := filepath.Join(t.TempDir(), "p.yaml")
	os.WriteFile(cfg, []byte("auth: none\nservers:\n  - {name: fs, command: x}\nguards:\n  audit:\n    file: "+path+"\n"), 0o600)
	if code, out, errs := runCLI("audit", "verify", "--config", cfg); code != 0 {
		t.Errorf("verify --config = %d %s %s", code, out, errs)
	}
}
