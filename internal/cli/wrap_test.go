package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func copyFixture(t *testing.T, name, dst string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "clientconfig", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(dst), 0o755)
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// A malformed client file stops wrap with an error naming it, before anything is written.
func TestWrapMalformedWritesNothing(t *testing.T) {
	for _, tt := range []struct{ bad, client, rel string }{
		{"bad-claude-desktop.json", "claude-desktop", "claude/claude_desktop_config.json"},
		{"bad-claude-desktop-comments.json", "claude-desktop", "claude/claude_desktop_config.json"},
		{"bad-vscode-args.jsonc", "vscode", ".vscode/mcp.json"},
		{"bad-codex.toml", "codex", ".codex/config.toml"},
		{"bad-continue.yaml", "continue", ".continue/config.yaml"},
		{"bad-zed.jsonc", "zed", ".zed/settings.json"},
		{"bad-cursor.json", "cursor", ".cursor/mcp.json"},
		{"bad-claude-code.json", "claude-code", ".mcp.json"},
		{"bad-windsurf.json", "windsurf", ".codeium/windsurf/mcp_config.json"},
		{"bad-gemini.json", "gemini", ".gemini/settings.json"},
		{"bad-cline.json", "cline", "cline_mcp_settings.json"},
	} {
		t.Run(tt.bad, func(t *testing.T) {
			dir := t.TempDir()
			good := filepath.Join(dir, "good", ".cursor", "mcp.json")
			goodBytes := copyFixture(t, "cursor.json", good)
			bad := filepath.Join(dir, "bad", tt.rel)
			badBytes := copyFixture(t, tt.bad, bad)
			cfg := filepath.Join(dir, "pc", "portcullis.yaml")
			var out, errb bytes.Buffer
			code := run([]string{"wrap", "--config", cfg, "--portcullis", "/opt/portcullis", "--file", good, "--file", bad, "--client", tt.client}, &out, &errb)
			if code != 1 || !strings.Contains(errb.String(), bad) || !strings.Contains(errb.String(), "nothing was changed") {
				t.Errorf("exit %d, stderr %q: want 1 and an error naming %s", code, errb.String(), bad)
			}
			for path, want := range map[string][]byte{good: goodBytes, bad: badBytes} {
				if b, _ := os.ReadFile(path); !bytes.Equal(b, want) {
					t.Errorf("%s was changed", path)
				}
			}
			if _, err := os.Stat(filepath.Dir(cfg)); !os.IsNotExist(err) {
				t.Errorf("wrap wrote into %s", filepath.Dir(cfg))
			}
		})
	}
}

func TestWrapDryRun(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, ".codex", "config.toml")
	orig := copyFixture(t, "codex.toml", f)
	cfg := filepath.Join(dir, "pc", "portcullis.yaml")
	var out, errb bytes.Buffer
	if code := run([]string{"wrap", "--dry-run", "--config", cfg, "--portcullis", "/opt/portcullis", "--file", f}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), `+command = "/opt/portcullis"`) || !strings.Contains(out.String(), "nothing was written") {
		t.Errorf("dry run output:\n%s", out.String())
	}
	if b, _ := os.ReadFile(f); !bytes.Equal(b, orig) {
		t.Error("dry run changed the file")
	}
	if _, err := os.Stat(cfg); !os.IsNotExist(err) {
		t.Error("dry run wrote the configuration")
	}
}
