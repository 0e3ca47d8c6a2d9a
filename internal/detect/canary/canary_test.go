package canary

import (
	"path/filepath"
	"testing"

	"github.com/portcullis-mcp/portcullis/internal/detect"
)

func TestCreateFindRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.json")
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{AWS, Token, Path, URL} {
		c, err := New(k, "", "test")
		if err != nil {
			t.Fatal(err)
		}
		f.Canaries = append(f.Canaries, c)
	}
	if _, err := New("nope", "", ""); err == nil {
		t.Error("unknown kind accepted")
	}
	if err := f.Save(path); err != nil {
		t.Fatal(err)
	}
	g, err := Load(path)
	if err != nil || len(g.Canaries) != 4 {
		t.Fatalf("Load = %v, %v", g, err)
	}
	s := NewScanner(g)
	for _, c := range g.Canaries {
		for _, v := range c.Values {
			fs := s.Scan("before "+v+" after", "/x")
			if len(fs) != 1 || fs[0].Severity != detect.Critical || fs[0].Rule != c.Kind {
				t.Errorf("Scan(%q) = %v", v, fs)
			}
		}
	}
	if fs := s.Scan("nothing here", ""); len(fs) != 0 {
		t.Errorf("false sighting %v", fs)
	}
	if NewScanner(&File{}).Scan("x", "") != nil {
		t.Error("empty scanner found something")
	}
}

func FuzzScan(f *testing.F) {
	c, _ := New(Token, "", "")
	s := NewScanner(&File{Canaries: []Canary{c}})
	f.Add(c.Values[0])
	f.Fuzz(func(t *testing.T, x string) { s.Scan(x, "") })
}
