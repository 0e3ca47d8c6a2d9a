package canary

import (
	"net/http"
	"net/url"
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

func TestRequest(t *testing.T) {
	tok, _ := New(Token, "", "")
	u, _ := New(URL, "", "")
	decoy, _ := New(Tool, "", "")
	f := &File{Canaries: []Canary{tok, u, decoy}}
	s := NewScanner(f)
	tests := []struct {
		method, url string
		header      http.Header
		want        int
	}{
		{"GET", "https://exfil.example/?k=" + tok.Values[0], nil, 1},
		{"GET", "https://exfil.example/?k=" + url.QueryEscape(tok.Values[0][:3]) + tok.Values[0][3:], nil, 1},
		{"POST", "https://api.example/v1", http.Header{"Authorization": {"Bearer " + tok.Values[0]}}, 1},
		{"GET", u.Values[0], nil, 1},
		{"CONNECT", "exfil.example:443", nil, 0},
		{"GET", "https://api.example/v1?q=hello", http.Header{"Accept": {"*/*"}}, 0},
	}
	for _, tt := range tests {
		fs := s.Request(tt.method, tt.url, tt.header)
		if len(fs) != tt.want {
			t.Errorf("Request(%s %s %v) = %v, want %d findings", tt.method, tt.url, tt.header, fs, tt.want)
		}
		for _, f := range fs {
			if f.Severity != detect.Critical {
				t.Errorf("severity %v", f.Severity)
			}
		}
	}
	if c, ok := s.Match("x " + tok.Values[0]); !ok || c.ID != tok.ID {
		t.Errorf("Match = %v, %v", c, ok)
	}
	// Decoys are matched by name when called, never in text.
	if fs := s.Scan("call "+decoy.Values[0], ""); len(fs) != 0 {
		t.Errorf("decoy name seen in text: %v", fs)
	}
	if d := f.Decoys(); len(d) != 1 || d[decoy.Values[0]].ID != decoy.ID {
		t.Errorf("Decoys = %v", d)
	}
	if _, err := New(Tool, "bad name!", ""); err == nil {
		t.Error("a decoy name with a space was accepted")
	}
	if NewScanner(&File{Canaries: []Canary{decoy}}) != nil {
		t.Error("a scanner with nothing to scan for")
	}
}

func FuzzRequest(f *testing.F) {
	c, _ := New(Token, "", "")
	s := NewScanner(&File{Canaries: []Canary{c}})
	f.Add("GET", "https://x.example/?a=%"+c.Values[0], "Bearer "+c.Values[0])
	f.Fuzz(func(t *testing.T, method, u, h string) {
		s.Request(method, u, http.Header{"X": {h}})
		s.Match(u)
	})
}

func FuzzScan(f *testing.F) {
	c, _ := New(Token, "", "")
	s := NewScanner(&File{Canaries: []Canary{c}})
	f.Add(c.Values[0])
	f.Fuzz(func(t *testing.T, x string) { s.Scan(x, "") })
}
