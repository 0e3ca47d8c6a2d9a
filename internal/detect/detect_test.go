package detect

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestWalkPointers(t *testing.T) {
	doc := `{"content":[{"type":"text","text":"a\u00e9\"b"},{"x/y":{"m~n":["q",1,true,null]}}],"n":2.5e3}`
	var got []string
	if err := Walk([]byte(doc), func(v *Value) bool {
		got = append(got, v.Pointer()+"="+v.Text)
		if doc[v.Start] != '"' || doc[v.End-1] != '"' {
			t.Errorf("span %d..%d of %q is not the quoted string", v.Start, v.End, v.Text)
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{"/content/0/type=text", "/content/0/text=aé\"b", "/content/1/x~1y/m~0n/0=q"}
	if !slices.Equal(got, want) {
		t.Errorf("Walk = %q, want %q", got, want)
	}
}

func TestWalkMalformed(t *testing.T) {
	for _, doc := range []string{`{"a":`, `["x`, `{"a" 1}`, `[1,]`, `{`, strings.Repeat("[", 1000)} {
		if err := Walk([]byte(doc), func(*Value) bool { return true }); err == nil {
			t.Errorf("Walk(%q) = nil, want an error", doc)
		}
	}
}

func TestApplyKeepsOtherBytes(t *testing.T) {
	doc := []byte(`{ "a" : "secret" ,"b":[ "x", "keep" ] }`)
	var edits []Edit
	Walk(doc, func(v *Value) bool {
		if v.Text != "keep" {
			edits = append(edits, Edit{Start: v.Start, End: v.End, Text: "[R:" + v.Text + "]"})
		}
		return true
	})
	got := string(Apply(doc, edits))
	want := `{ "a" : "[R:secret]" ,"b":[ "[R:x]", "keep" ] }`
	if got != want {
		t.Errorf("Apply = %s, want %s", got, want)
	}
	if !json.Valid([]byte(got)) {
		t.Error("result is not valid JSON")
	}
}

func TestReplace(t *testing.T) {
	got := Replace("abcdefghij", []Span{{6, 8, "<2>"}, {1, 3, "<1>"}, {2, 4, "<x>"}})
	if got != "a<1>ef<2>ij" {
		t.Errorf("Replace = %q", got)
	}
}

func TestKeywords(t *testing.T) {
	k := NewKeywords([]string{"ignore previous", "he", "she", "hers", "é!"})
	type hit struct{ id, end int }
	var hits []hit
	k.Scan("USHERS ignore\n\t PREVIOUS é!", func(id, end int) bool { hits = append(hits, hit{id, end}); return true })
	want := []hit{{2, 4}, {1, 4}, {3, 6}, {0, 24}, {4, 28}}
	if !slices.Equal(hits, want) {
		t.Errorf("hits = %v, want %v", hits, want)
	}
	if k.Any("nothing to see") {
		t.Error("Any matched")
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain text", "plain text"},
		{"ig\u200bnore \u202eprevious", "ignore previous"},
		{"ＩＧＮＯＲＥ", "IGNORE"},
		{"𝐢𝐠𝐧𝐨𝐫𝐞", "ignore"},
		{"іgnоrе", "ignore"}, // Cyrillic і, о, е
		{"red \x1b[31mtext\x1b[0m", "red text"},
		{"a\U000E0069\U000E0067b", "ab\nig"},
		{"family 👨\u200d👩\u200d👧", "family 👨👩👧"},
	}
	for _, tt := range tests {
		if got := Normalize(tt.in); got != tt.want {
			t.Errorf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFindHidden(t *testing.T) {
	s := "a\u200bb\u200b\u200bc\x1b]8;;http://x\x07link\x1b]8;;\x07 \u202e 👍\ufe0f"
	var kinds []string
	for _, h := range FindHidden(s) {
		kinds = append(kinds, h.Kind)
	}
	want := []string{KindZeroWidth, KindZeroWidth, KindANSI, KindANSI, KindBidi}
	if !slices.Equal(kinds, want) {
		t.Errorf("kinds = %v, want %v", kinds, want)
	}
	clean, _ := Clean(s, false)
	if clean != "abclink  👍\ufe0f" {
		t.Errorf("Clean = %q", clean)
	}
	vis, _ := Clean("x\u200by", true)
	if vis != "x⟨U+200B⟩y" {
		t.Errorf("Clean visible = %q", vis)
	}
}

func TestPointerEscapes(t *testing.T) {
	if got := Pointer("a/b", "c~d", ""); got != "/a~1b/c~0d/" {
		t.Errorf("Pointer = %q", got)
	}
}

func TestSeverityText(t *testing.T) {
	for s := Info; s <= Critical; s++ {
		b, _ := s.MarshalText()
		var back Severity
		if err := back.UnmarshalText(b); err != nil || back != s {
			t.Errorf("%v round-trips to %v, %v", s, back, err)
		}
	}
	if _, err := ParseSeverity("severe"); err == nil {
		t.Error("ParseSeverity accepted a bad name")
	}
}

func FuzzWalk(f *testing.F) {
	f.Add(`{"a":["b",{"c":"d\u0000"}]}`)
	f.Add(`"x"`)
	f.Fuzz(func(t *testing.T, doc string) {
		var edits []Edit
		err := Walk([]byte(doc), func(v *Value) bool {
			edits = append(edits, Edit{Start: v.Start, End: v.End, Text: strings.ToUpper(v.Text)})
			return true
		})
		if err == nil && json.Valid([]byte(doc)) {
			if out := Apply([]byte(doc), edits); !json.Valid(out) {
				t.Errorf("Apply broke %q into %q", doc, out)
			}
		}
	})
}

func FuzzNormalize(f *testing.F) {
	f.Add("ig\u200bnore \x1b[31m\U000E0041")
	f.Add("\x1b]")
	f.Fuzz(func(t *testing.T, s string) {
		_ = Normalize(s)
		c, _ := Clean(s, true)
		_ = c
		for _, h := range FindHidden(s) {
			if h.Start < 0 || h.End > len(s) || h.Start >= h.End {
				t.Fatalf("bad hidden range %+v in %q", h, s)
			}
		}
	})
}
