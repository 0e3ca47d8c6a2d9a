package pins

import (
	"bytes"
	"encoding/json"
	"strings"
)

// maxDiffLines bounds the lines diffed (a definition is small; a hostile one is cut).
const maxDiffLines = 2000

// Diff returns a unified line diff of two canonical definitions, indented for reading:
// lines only in old start with "-", lines only in new with "+", shared lines with " ".
// Either may be empty (nothing approved yet).
func Diff(old, new []byte) string {
	a, b := lines(old), lines(new)
	// Longest common subsequence, by dynamic programming over the (bounded) lines.
	n, m := len(a), len(b)
	lcs := make([][]int32, n+1)
	for i := range lcs {
		lcs[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out strings.Builder
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			out.WriteString(" " + a[i] + "\n")
			i++
			j++
		case j < m && (i == n || lcs[i][j+1] >= lcs[i+1][j]):
			out.WriteString("+" + b[j] + "\n")
			j++
		default:
			out.WriteString("-" + a[i] + "\n")
			i++
		}
	}
	return out.String()
}

// ChangedFields lists the top-level members that differ between two canonical definitions
// ("description", "inputSchema", ...), for short messages.
func ChangedFields(old, new []byte) []string {
	var a, b map[string]json.RawMessage
	json.Unmarshal(old, &a)
	json.Unmarshal(new, &b)
	var out []string
	for _, k := range []string{"uriTemplate", "name", "title", "description", "mimeType", "arguments", "inputSchema", "outputSchema", "annotations"} {
		if !bytes.Equal(a[k], b[k]) {
			out = append(out, k)
		}
	}
	return out
}

func lines(canon []byte) []string {
	if len(canon) == 0 {
		return nil
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, canon, "", "  "); err != nil {
		buf.Reset()
		buf.Write(canon)
	}
	ls := strings.Split(buf.String(), "\n")
	if len(ls) > maxDiffLines {
		ls = append(ls[:maxDiffLines], "… (cut)")
	}
	return ls
}
