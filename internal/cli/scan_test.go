package cli

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

type scanJSON struct {
	Findings []struct {
		Rule     string `json:"rule"`
		Severity string `json:"severity"`
		Location struct {
			File   string `json:"file"`
			Line   int    `json:"line"`
			Server string `json:"server"`
		} `json:"location"`
	} `json:"findings"`
}

func TestScanStaticExitCodes(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, ".cursor", "mcp.json")
	copyFixture(t, "cursor.json", f)
	for _, tt := range []struct {
		failOn string
		code   int
	}{{"high", 1}, {"critical", 0}, {"none", 0}, {"medium", 1}} {
		var out, errb bytes.Buffer
		if code := run([]string{"scan", "--static", "--fail-on", tt.failOn, "--config", filepath.Join(dir, "none.yaml"), f}, &out, &errb); code != tt.code {
			t.Errorf("--fail-on %s: exit %d, want %d (%s)", tt.failOn, code, tt.code, errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"scan", "--static", "--format", "xml", f}, &out, &errb); code != 2 {
		t.Errorf("bad format: exit %d", code)
	}
	if code := run([]string{"scan", "--static", filepath.Join(dir, "missing.json")}, &out, &errb); code != 2 {
		t.Errorf("missing file: exit %d", code)
	}
}

// After wrap, scan reads the server behind `portcullis run` and points at where it is
// written: the portcullis configuration.
func TestScanWrappedEntry(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, ".cursor", "mcp.json")
	copyFixture(t, "cursor.json", f)
	cfg := filepath.Join(dir, "pc", "portcullis.yaml")
	var out, errb bytes.Buffer
	if code := run([]string{"wrap", "--config", cfg, "--portcullis", "/opt/portcullis", "--file", f}, &out, &errb); code != 0 {
		t.Fatalf("wrap: %d %s", code, errb.String())
	}
	out.Reset()
	run([]string{"scan", "--static", "--format", "json", "--config", cfg, f}, &out, &errb)
	var j scanJSON
	if err := json.Unmarshal(out.Bytes(), &j); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	found := false
	for _, fd := range j.Findings {
		if fd.Rule == "secret-in-config" && fd.Location.File == cfg && fd.Location.Line > 0 && fd.Location.Server == "linear" {
			found = true
		}
	}
	if !found || !strings.Contains(out.String(), "unpinned-package") {
		t.Errorf("the wrapped servers' findings are missing or misplaced: %s", out.String())
	}
}
