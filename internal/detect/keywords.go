package detect

import "sort"

// Keywords is a case-insensitive multi-pattern matcher (Aho–Corasick compiled to a DFA
// over byte classes). ASCII letters match either case; a space in a pattern matches one or
// more white-space characters in the text. Patterns may hold any bytes (UTF-8 included),
// compared exactly apart from ASCII case. Build once at load; Scan is safe for concurrent use
// and allocates nothing.
type Keywords struct {
	class  [256]uint16
	nclass int
	next   []int32   // state*nclass + class -> next state*nclass, negated when it has outputs
	space  uint16    // the class of white space (0xFFFF when no pattern has a space)
	out    [][]int32 // pattern ids ending at each state (fail links included)
	plen   []int     // pattern lengths in bytes
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// NewKeywords compiles patterns; their index is the id Scan reports.
func NewKeywords(patterns []string) *Keywords {
	k := &Keywords{plen: make([]int, len(patterns))}
	// Byte classes: every byte a pattern uses (lowercased) gets one; the rest share 0.
	used := map[byte]bool{}
	for _, p := range patterns {
		for i := 0; i < len(p); i++ {
			c := lower(p[i])
			if isSpace(c) {
				c = ' '
			}
			used[c] = true
		}
	}
	bytesUsed := make([]int, 0, len(used))
	for c := range used {
		bytesUsed = append(bytesUsed, int(c))
	}
	sort.Ints(bytesUsed)
	k.nclass = len(bytesUsed) + 1
	for i, c := range bytesUsed {
		k.class[c] = uint16(i + 1)
		if c >= 'a' && c <= 'z' {
			k.class[c-'a'+'A'] = uint16(i + 1)
		}
	}
	k.space = 0xFFFF
	if used[' '] {
		for _, c := range []byte{'\t', '\n', '\r', '\f', '\v'} {
			k.class[c] = k.class[' ']
		}
		k.space = k.class[' ']
	}
	// Trie.
	type node struct {
		next map[uint16]int32
		fail int32
		out  []int32
	}
	nodes := []node{{next: map[uint16]int32{}}}
	for id, p := range patterns {
		s := int32(0)
		prevSpace := false
		n := 0
		for i := 0; i < len(p); i++ {
			c := lower(p[i])
			if isSpace(c) {
				if prevSpace {
					continue
				}
				c, prevSpace = ' ', true
			} else {
				prevSpace = false
			}
			n++
			cl := k.class[c]
			nx, ok := nodes[s].next[cl]
			if !ok {
				nodes = append(nodes, node{next: map[uint16]int32{}})
				nx = int32(len(nodes) - 1)
				nodes[s].next[cl] = nx
			}
			s = nx
		}
		k.plen[id] = n
		if n > 0 {
			nodes[s].out = append(nodes[s].out, int32(id))
		}
	}
	// Breadth-first: fail links and the full transition table.
	k.next = make([]int32, len(nodes)*k.nclass)
	k.out = make([][]int32, len(nodes))
	queue := []int32{}
	for cl := 0; cl < k.nclass; cl++ {
		if nx, ok := nodes[0].next[uint16(cl)]; ok {
			nodes[nx].fail = 0
			k.next[cl] = nx
			queue = append(queue, nx)
		}
	}
	k.out[0] = nodes[0].out
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		f := nodes[s].fail
		k.out[s] = append(append([]int32(nil), nodes[s].out...), k.out[f]...)
		for cl := 0; cl < k.nclass; cl++ {
			if nx, ok := nodes[s].next[uint16(cl)]; ok {
				nodes[nx].fail = k.next[int(f)*k.nclass+cl]
				k.next[int(s)*k.nclass+cl] = nx
				queue = append(queue, nx)
			} else {
				k.next[int(s)*k.nclass+cl] = k.next[int(f)*k.nclass+cl]
			}
		}
	}
	// Pre-multiply states and mark those with outputs.
	for i, nx := range k.next {
		v := nx * int32(k.nclass)
		if len(k.out[nx]) > 0 {
			v = -v
		}
		k.next[i] = v
	}
	return k
}

// Len returns the number of bytes pattern id matches (white-space runs count as one).
func (k *Keywords) Len(id int) int { return k.plen[id] }

// Scan calls fn for each match with the pattern id and the offset in s just past the
// match; fn returns false to stop.
func (k *Keywords) Scan(s string, fn func(id, end int) bool) {
	state := int32(0)
	n := int32(k.nclass)
	next, class, space := k.next, &k.class, k.space
	prevSpace := false
	for i := 0; i < len(s); i++ {
		cl := class[s[i]]
		if cl == space {
			if prevSpace {
				continue
			}
			prevSpace = true
		} else {
			prevSpace = false
		}
		state = next[state+int32(cl)]
		if state < 0 {
			state = -state
			for _, id := range k.out[state/n] {
				if !fn(int(id), i+1) {
					return
				}
			}
		}
	}
}

// Any reports whether any pattern occurs in s.
func (k *Keywords) Any(s string) bool {
	found := false
	k.Scan(s, func(int, int) bool { found = true; return false })
	return found
}
