package wrap

import (
	"fmt"
	"strings"
)

// Unified returns a unified diff (three lines of context) of two versions of a file.
func Unified(path string, a, b []byte) string {
	al, bl := splitLines(string(a)), splitLines(string(b))
	// Common head and tail are not compared line by line.
	pre := 0
	for pre < len(al) && pre < len(bl) && al[pre] == bl[pre] {
		pre++
	}
	suf := 0
	for suf < len(al)-pre && suf < len(bl)-pre && al[len(al)-1-suf] == bl[len(bl)-1-suf] {
		suf++
	}
	ops := lcsOps(al[pre:len(al)-suf], bl[pre:len(bl)-suf])
	type line struct {
		op   byte // ' ', '-', '+'
		text string
		ai   int // index in a of this line (or of the next a line for '+')
		bi   int
	}
	var all []line
	for i := 0; i < pre; i++ {
		all = append(all, line{' ', al[i], i, i})
	}
	ai, bi := pre, pre
	for _, op := range ops {
		switch op {
		case ' ':
			all = append(all, line{' ', al[ai], ai, bi})
			ai++
			bi++
		case '-':
			all = append(all, line{'-', al[ai], ai, bi})
			ai++
		case '+':
			all = append(all, line{'+', bl[bi], ai, bi})
			bi++
		}
	}
	for i := 0; i < suf; i++ {
		all = append(all, line{' ', al[ai], ai, bi})
		ai++
		bi++
	}
	from := "a/" + strings.TrimPrefix(path, "/")
	if len(a) == 0 {
		from = "/dev/null"
	}
	var out strings.Builder
	fmt.Fprintf(&out, "--- %s\n+++ b/%s\n", from, strings.TrimPrefix(path, "/"))
	const ctx = 3
	for i := 0; i < len(all); {
		if all[i].op == ' ' {
			i++
			continue
		}
		start := max(i-ctx, 0)
		end := i
		for end < len(all) {
			if all[end].op != ' ' {
				end++
				continue
			}
			j := end
			for j < len(all) && all[j].op == ' ' && j-end < 2*ctx {
				j++
			}
			if j < len(all) && all[j].op != ' ' {
				end = j
				continue
			}
			end = min(end+ctx, len(all))
			break
		}
		na, nb := 0, 0
		for _, l := range all[start:end] {
			if l.op != '+' {
				na++
			}
			if l.op != '-' {
				nb++
			}
		}
		fmt.Fprintf(&out, "@@ -%d,%d +%d,%d @@\n", all[start].ai+1, na, all[start].bi+1, nb)
		for _, l := range all[start:end] {
			out.WriteByte(l.op)
			out.WriteString(l.text)
			if !strings.HasSuffix(l.text, "\n") {
				out.WriteString("\n\\ No newline at end of file\n")
			}
		}
		i = end
	}
	return out.String()
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	l := strings.SplitAfter(s, "\n")
	if l[len(l)-1] == "" {
		l = l[:len(l)-1]
	}
	return l
}

// lcsOps returns the edit script from a to b (' ' keep, '-' delete, '+' insert). Large
// regions, which wrap never produces, are shown as a whole replacement.
func lcsOps(a, b []string) []byte {
	var ops []byte
	if len(a)*len(b) > 4_000_000 {
		for range a {
			ops = append(ops, '-')
		}
		for range b {
			ops = append(ops, '+')
		}
		return ops
	}
	n, m := len(a), len(b)
	t := make([][]int32, n+1)
	for i := range t {
		t[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				t[i][j] = t[i+1][j+1] + 1
			} else {
				t[i][j] = max(t[i+1][j], t[i][j+1])
			}
		}
	}
	i, j := 0, 0
	for i < n && j < m {
		switch {
		case a[i] == b[j]:
			ops = append(ops, ' ')
			i++
			j++
		case t[i+1][j] >= t[i][j+1]:
			ops = append(ops, '-')
			i++
		default:
			ops = append(ops, '+')
			j++
		}
	}
	for ; i < n; i++ {
		ops = append(ops, '-')
	}
	for ; j < m; j++ {
		ops = append(ops, '+')
	}
	return ops
}
