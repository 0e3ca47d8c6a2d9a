package approval

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-mcp/portcullis/internal/config"
	"github.com/portcullis-mcp/portcullis/internal/guard"
)

// Configuration errors name the file, the line and the field.
func TestSetupErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		section string
		want    []string
	}{
		{"    timeout: -5m\n    grant_duration: 48h\n", []string{":6:5: guards.approval.timeout: must be positive", ":7:5: guards.approval.grant_duration: must be between"}},
		{"    webhook: {url: \"ftp://x\", base_url: \"https://gw/x\"}\n", []string{":6:5: guards.approval.webhook: url: want an http(s) URL", "base_url: want the gateway's"}},
		{"    webhook: {url: \"https://x\", base_url: \"https://gw\", bogus: 1}\n", []string{":6", `unknown field "bogus"`}},
		{"    bogus: 1\n", []string{":6:5: guards.approval.bogus: unknown field"}},
		{"    key_file: " + filepath.Join(dir, "k") + "\n    webhook: {url: \"https://x\", base_url: \"https://gw.example.com\"}\n", nil},
	} {
		path := filepath.Join(dir, "p.yaml")
		yaml := "auth: none\nstore: {path: ./p.db}\nservers: [{name: a, command: x}]\nguards:\n  approval:\n" + tc.section
		if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		sections := map[string]guard.Config{}
		for name, s := range cfg.GuardSections() {
			sections[name] = s
		}
		_, _, err = guard.Build(guard.HandlerFunc(nil), sections, guard.Env{})
		if tc.want == nil {
			if err != nil {
				t.Errorf("%s: %v", tc.section, err)
			}
			continue
		}
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %v, want %q", tc.section, err, w)
			}
		}
	}
}
