package invisible

import (
	"testing"

	"github.com/portcullis-mcp/portcullis/internal/detect"
)

func TestScan(t *testing.T) {
	tests := []struct {
		text string
		rule string
		min  detect.Severity
	}{
		{"hi\U000E0069\U000E0067\U000E006E", detect.KindTag, detect.High},
		{"abc\u202Edef", detect.KindBidi, detect.Medium},
		{"\x1b[2Jcleared", detect.KindANSI, detect.Medium},
		{"a\u200bb\u200bc\u200bd", detect.KindZeroWidth, detect.Medium},
	}
	for _, tt := range tests {
		fs := Scan(tt.text, "/x")
		if len(fs) == 0 || fs[0].Rule != tt.rule || fs[0].Severity < tt.min {
			t.Errorf("Scan(%q) = %v, want %s at %v or above", tt.text, fs, tt.rule, tt.min)
		}
	}
	if fs := Scan("plain text, emoji 👍🏽 and accents é", "/x"); len(fs) != 0 {
		t.Errorf("clean text: %v", fs)
	}
}

func FuzzScan(f *testing.F) {
	f.Add("a\u200b\u202e\x1b[31m\U000E0041\ufe0f")
	f.Fuzz(func(t *testing.T, s string) {
		for _, x := range Scan(s, "") {
			if x.Start < 0 || x.End > len(s) || x.Start > x.End {
				t.Fatalf("Scan(%q): span %d..%d", s, x.Start, x.End)
			}
		}
	})
}
