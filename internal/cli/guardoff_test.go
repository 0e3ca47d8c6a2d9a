package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The default chain is every guard but trace and authz, audit included; "NAME: off" takes
// a default guard out of the chain that config check reports (and serve builds); other
// guards stay.
func TestConfigCheckGuardOff(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		guards       string
		want, absent []string
	}{
		{"", []string{"audit", "limits", "registry", "detect-args", "approval", "detect-results", "detect-listings"}, []string{"trace", "authz"}},
		{"guards:\n  detect-results: off\n  detect-listings: false\n",
			[]string{"audit", "limits", "registry", "detect-args", "approval"}, []string{"detect-results", "detect-listings"}},
		{"guards:\n  audit: off\n", []string{"limits", "registry"}, []string{"audit"}},
	} {
		path := filepath.Join(dir, "c.yaml")
		cfg := "auth: none\nstore: {driver: sqlite, path: " + filepath.Join(dir, "s.db") + "}\nservers:\n  - name: a\n    url: http://127.0.0.1:1/mcp\n" + tc.guards
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, errs := runCLI("config", "check", path)
		if code != 0 {
			t.Fatalf("config check %q: exit %d: %s", tc.guards, code, errs)
		}
		_, list, _ := strings.Cut(out, "guards: ")
		for _, g := range tc.want {
			if !strings.Contains(list, g) {
				t.Errorf("%q: guard %s missing from %q", tc.guards, g, out)
			}
		}
		for _, g := range tc.absent {
			if strings.Contains(list, g) {
				t.Errorf("%q: guard %s still in %q", tc.guards, g, out)
			}
		}
	}
}
