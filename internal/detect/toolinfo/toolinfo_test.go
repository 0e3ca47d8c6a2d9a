package toolinfo

import "testing"

func TestParseRoles(t *testing.T) {
	tl, ok := Parse([]byte(`{"name":"run_command","description":"Run a shell command","inputSchema":{"type":"object","properties":{
		"command":{"type":"string"},"cwd":{"type":"string","description":"working directory"},"url":{"type":"string","format":"uri"},"note":{"type":"string"}}}}`))
	if !ok {
		t.Fatal("Parse failed")
	}
	if tl.RoleOf("url") != URL {
		t.Errorf("url: %v", tl.RoleOf("url"))
	}
	if !IsPathLike(tl.RoleOf("cwd"), "cwd") {
		t.Errorf("cwd: %v", tl.RoleOf("cwd"))
	}
	if r := tl.RoleOf("command"); r != CommandLine && r != CommandArg {
		t.Errorf("command: %v", r)
	}
	if _, ok := Parse([]byte(`[1,2]`)); ok {
		t.Errorf("Parse of an array succeeded")
	}
	c := NewCatalog()
	c.Put("s", tl)
	if got, ok := c.Get("s", "run_command"); !ok || got.Name != "run_command" {
		t.Errorf("Catalog.Get = %v, %v", got, ok)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(`{"name":"x","inputSchema":{"type":"object","properties":{"path":{"type":"string","format":"uri"}}}}`)
	f.Fuzz(func(t *testing.T, s string) {
		if tl, ok := Parse([]byte(s)); ok {
			for _, p := range []string{"path", "url", "command", ""} {
				IsPathLike(tl.RoleOf(p), p)
			}
		}
	})
}
