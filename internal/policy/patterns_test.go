package policy

import (
	"strings"
	"testing"
)

func TestPatterns(t *testing.T) {
	tests := []struct {
		ps       []string
		in, out  []string
		wantErrs []string
	}{
		{ps: nil, in: []string{"", "x"}},
		{ps: []string{"*"}, in: []string{"", "tools/call"}},
		{ps: []string{"create_*", "delete_repo"}, in: []string{"create_issue", "delete_repo"}, out: []string{"delete_repos", "list"}},
		{ps: []string{"file:///w/*"}, in: []string{"file:///w/a/b"}, out: []string{"file:///x"}},
		{ps: []string{"ok", "bad\\", ""}, wantErrs: []string{`pattern "bad\\"`, "escapes nothing", `pattern ""`, "empty pattern"}},
	}
	for _, tt := range tests {
		p, err := CompilePatterns(tt.ps)
		if len(tt.wantErrs) > 0 {
			for _, w := range tt.wantErrs {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("%q: error %v, want %q", tt.ps, err, w)
				}
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", tt.ps, err)
		}
		for _, s := range tt.in {
			if !p.Match(s) {
				t.Errorf("%q does not match %q", tt.ps, s)
			}
		}
		for _, s := range tt.out {
			if p.Match(s) {
				t.Errorf("%q matches %q", tt.ps, s)
			}
		}
	}
}
