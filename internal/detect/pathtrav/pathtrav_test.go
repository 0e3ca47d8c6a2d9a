package pathtrav

import (
	"testing"

	"github.com/portcullis-mcp/portcullis/internal/detect"
)

func TestCheck(t *testing.T) {
	none := New(Options{})
	ws := New(Options{Roots: []string{"/workspace"}})
	tests := []struct {
		c         *Checker
		v         string
		pathParam bool
		want      string // rule of the first finding, "" for none
	}{
		{none, "../../etc/passwd", true, "escape"},
		{none, "..%2f..%2fetc%2fpasswd", true, "escape"},
		{none, "%252e%252e%252fsecret", true, "escape"},
		{none, `..\..\windows\win.ini`, true, "escape"},
		{none, "/etc/passwd", true, "sensitive-file"},
		{none, "/etc/shadow", false, "sensitive-file"},
		{none, "~/.ssh/id_rsa", true, "sensitive-file"},
		{none, "/home/bob/.aws/credentials", true, "sensitive-file"},
		{none, "project/.env", true, "sensitive-file"},
		{none, "project/.env.example", true, ""},
		{none, "/var/www/../../etc/hosts", true, "dotdot"},
		{none, "src/main.go", true, ""},
		{none, "docs/a/../b.md", true, ""},
		{none, "hello world", false, ""},
		{none, "/workspace/notes.txt\x00.png", true, "encoding"},
		{ws, "/workspace/src/main.go", true, ""},
		{ws, "src/main.go", true, ""},
		{ws, "/tmp/x", true, "outside-roots"},
		{ws, "/workspace-evil/x", true, "outside-roots"},
		{ws, "/workspace/../etc/hosts", true, "dotdot"},
		{ws, "file:///etc/hosts", true, "outside-roots"},
		{ws, "ＮＯＴＥＳ", true, ""},
	}
	for _, tt := range tests {
		fs := tt.c.Check(tt.v, "/arguments/path", tt.pathParam)
		got := ""
		if len(fs) > 0 {
			got = fs[0].Rule
		}
		if got != tt.want {
			t.Errorf("Check(%q, roots %v) = %v, want rule %q", tt.v, tt.c.roots, fs, tt.want)
		}
		for _, f := range fs {
			if f.Severity < detect.Medium {
				t.Errorf("Check(%q): finding below medium: %v", tt.v, f)
			}
		}
	}
}

func FuzzCheck(f *testing.F) {
	c := New(Options{Roots: []string{"/workspace"}})
	for _, s := range []string{"../../etc/passwd", "%2e%2e/", "file:///x", `C:\Windows`, "~/.ssh"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c.Check(s, "/p", true)
		c.Check(s, "/p", false)
	})
}
