package detect

import (
	"cmp"
	"math/bits"
	"slices"
)

// Keywords is a case-insensitive multi-pattern matcher (Aho–Corasick over byte classes).
// ASCII letters match either case; a space in a pattern matches one or more white-space
// characters in the text. Patterns may hold any bytes (UTF-8 included), compared exactly
// apart from ASCII case. Build once at load; Scan is safe for concurrent use and allocates
// nothing.
//
// The phrase lists of the detectors are combinations of alternatives (tens of thousands of
// patterns, some 75,000 trie states), so the tables are compact: states are numbered
// breadth-first, the children of a state are consecutive states (sorted by class), and a
// state keeps only its failure link, the start of its children and the class leading to
// it (9 bytes). The states of the first few depths, where a scan spends most of its time,
// also get a full row of transitions, failure links resolved; deeper states follow
// failure links, which costs at most one extra step per byte of text, amortized.
type Keywords struct {
	class  [256]uint8
	nclass int32
	space  int32 // the class of white space (-1 when no pattern has a space)

	dense  []int32 // state*nclass + class -> next state (encoded, see NewKeywords), for states below ndense
	ndense int32
	first  []int32 // state -> its first child; the children of s are first[s]..first[s+1]-1
	label  []uint8 // state -> the class leading to it
	fail   []int32 // state -> the longest proper suffix that is a state

	hasOut []uint64   // bit per state: a pattern ends here or at a state on its failure chain
	hasOwn []uint64   // bit per state: a pattern ends here
	rank   []int32    // word of hasOwn -> set bits in the words before it
	own    []int32    // rank of a state in hasOwn -> its first entry in ids (one more at the end)
	ids    []int32    // pattern ids ending at each state of hasOwn, in the order given
	plen   []int32    // pattern lengths in bytes
	pend   []int32    // pattern -> the state where it ends (Pattern)
	bytes  [256]uint8 // class -> the (lowercase) byte of the patterns in that class
}

// denseEntries bounds the full transition rows (int32 each): whole depths are added while
// they fit.
const denseEntries = 1 << 15

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
	k := &Keywords{plen: make([]int32, len(patterns)), pend: make([]int32, len(patterns))}
	// Byte classes: every byte a pattern uses (lowercased) gets one; the rest share 0.
	var used [256]bool
	for _, p := range patterns {
		for i := 0; i < len(p); i++ {
			c := lower(p[i])
			if isSpace(c) {
				c = ' '
			}
			used[c] = true
		}
	}
	n := 0
	for c := range used {
		if used[c] {
			n++
			k.class[c] = uint8(n) // at most 256-26-5 classes: uppercase and white space fold
			k.bytes[n] = uint8(c)
			if c >= 'a' && c <= 'z' {
				k.class[c-'a'+'A'] = uint8(n)
			}
		}
	}
	k.nclass = int32(n + 1)
	k.space = -1
	if used[' '] {
		for _, c := range []byte{'\t', '\n', '\r', '\f', '\v'} {
			k.class[c] = k.class[' ']
		}
		k.space = int32(k.class[' '])
	}

	// Trie with sibling lists, in insertion order.
	type node struct {
		child, sibling int32
		label          uint8
	}
	nodes := []node{{child: -1, sibling: -1}}
	type ending struct{ node, id int32 }
	var ends []ending
	for id, p := range patterns {
		s := int32(0)
		prevSpace := false
		l := int32(0)
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
			l++
			cl := k.class[c]
			nx := nodes[s].child
			for nx >= 0 && nodes[nx].label != cl {
				nx = nodes[nx].sibling
			}
			if nx < 0 {
				nx = int32(len(nodes))
				if len(nodes) == cap(nodes) {
					nodes = slices.Grow(nodes, len(nodes)) // double (append grows large slices by a quarter: 5x the final size in copies)
				}
				nodes = append(nodes, node{child: -1, sibling: nodes[s].child, label: cl})
				nodes[s].child = nx
			}
			s = nx
		}
		k.plen[id] = l
		if l > 0 {
			ends = append(ends, ending{s, int32(id)})
		}
	}

	// Breadth-first numbering, children sorted by class.
	ns := len(nodes)
	order := make([]int32, 1, ns) // new number -> trie node
	num := make([]int32, ns)      // trie node -> new number
	k.first = make([]int32, ns+1)
	k.label = make([]uint8, ns)
	var kids []int32
	depthEnd := []int{1} // depthEnd[d]: the states of depth d or less are 0..depthEnd[d]-1
	for s := 0; s < len(order); s++ {
		if s == depthEnd[len(depthEnd)-1] { // the first of the next depth: all of it is numbered
			depthEnd = append(depthEnd, len(order))
		}
		k.first[s] = int32(len(order))
		kids = kids[:0]
		for c := nodes[order[s]].child; c >= 0; c = nodes[c].sibling {
			kids = append(kids, c)
		}
		// (Siblings have distinct labels. slices.SortFunc, unlike sort.Slice, allocates
		// nothing per state: building the detectors' automaton called it 100,000 times.)
		slices.SortFunc(kids, func(a, b int32) int { return int(nodes[a].label) - int(nodes[b].label) })
		for _, c := range kids {
			num[c] = int32(len(order))
			k.label[len(order)] = nodes[c].label
			order = append(order, c)
		}
	}
	k.first[ns] = int32(ns)
	// Full rows for whole depths while they fit.
	nd := 0
	for d, end := range depthEnd {
		if int64(end)*int64(k.nclass) > denseEntries && d > 0 {
			break
		}
		nd = end
	}
	k.ndense = int32(nd)
	order, nodes = nil, nil

	// Outputs: pattern ids per state in id order.
	words := (ns + 63) / 64
	k.hasOwn = make([]uint64, words)
	k.hasOut = make([]uint64, words)
	slices.SortStableFunc(ends, func(a, b ending) int { return cmp.Compare(num[a.node], num[b.node]) })
	for _, e := range ends {
		s := num[e.node]
		k.hasOwn[s/64] |= 1 << (s % 64)
		k.pend[e.id] = s
	}
	k.rank = make([]int32, words)
	r := int32(0)
	for w := range k.hasOwn {
		k.rank[w] = r
		r += int32(bits.OnesCount64(k.hasOwn[w]))
	}
	k.own = make([]int32, 0, r+1)
	k.ids = make([]int32, len(ends))
	prev := int32(-1)
	for i, e := range ends {
		if s := num[e.node]; s != prev {
			k.own = append(k.own, int32(i))
			prev = s
		}
		k.ids[i] = e.id
	}
	k.own = append(k.own, int32(len(ends)))

	// Failure links and full rows, breadth-first (a failure link points to a shallower
	// state, whose row and link are ready).
	k.fail = make([]int32, ns)
	k.dense = make([]int32, nd*int(k.nclass))
	nc := int(k.nclass)
	for s := int32(0); s < int32(ns); s++ {
		f := k.fail[s]
		if k.hasOwn[s/64]&(1<<(s%64)) != 0 || s > 0 && k.hasOut[f/64]&(1<<(f%64)) != 0 {
			k.hasOut[s/64] |= 1 << (s % 64)
		}
		if s < k.ndense {
			row := k.dense[int(s)*nc : int(s+1)*nc]
			if s > 0 {
				copy(row, k.dense[int(f)*nc:int(f+1)*nc])
			}
			for c := k.first[s]; c < k.first[s+1]; c++ {
				row[k.label[c]] = c
			}
		}
		for c := k.first[s]; c < k.first[s+1]; c++ {
			if s > 0 {
				k.fail[c] = k.step(f, int32(k.label[c]))
			}
		}
	}
	// Encode the rows: the code of the next state when it has a row and no pattern ends
	// there, else ^(code<<1 | 1 if patterns end there).
	for i, t := range k.dense {
		c := k.code(t)
		if out := k.hasOut[t/64]&(1<<(t%64)) != 0; out || t >= k.ndense {
			c <<= 1
			if out {
				c |= 1
			}
			c = ^c
		}
		k.dense[i] = c
	}
	return k
}

// step returns the state after class cl from state s, while the rows hold plain states
// (during NewKeywords).
func (k *Keywords) step(s, cl int32) int32 {
	for {
		if s < k.ndense {
			return k.dense[s*k.nclass+cl]
		}
		lo, hi := k.first[s], k.first[s+1]
		for ; lo < hi && int32(k.label[lo]) < cl; lo++ {
		}
		if lo < hi && int32(k.label[lo]) == cl {
			return lo
		}
		s = k.fail[s]
	}
}

// PatternLen returns the number of bytes pattern p matches in Keywords (white-space runs
// count as one).
func PatternLen(p string) int {
	n := 0
	for i := 0; i < len(p); i++ {
		if isSpace(p[i]) && i > 0 && isSpace(p[i-1]) {
			continue
		}
		n++
	}
	return n
}

// Len returns the number of bytes pattern id matches (white-space runs count as one).
func (k *Keywords) Len(id int) int { return int(k.plen[id]) }

// Pattern returns pattern id as the automaton holds it: ASCII letters lowercase, each run
// of white space one space (so that detectors need not keep the texts of their patterns).
func (k *Keywords) Pattern(id int) string {
	s := k.pend[id]
	b := make([]byte, k.plen[id])
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = k.bytes[k.label[s]]
		s = k.parent(s)
	}
	return string(b)
}

// parent returns the state whose children include s (> 0): children are numbered in the
// order of their parents, so first is sorted.
func (k *Keywords) parent(s int32) int32 {
	lo, hi := 0, len(k.first)-1 // the last state p with first[p] <= s
	for lo < hi {
		m := int(uint(lo+hi+1) >> 1)
		if k.first[m] <= s {
			lo = m
		} else {
			hi = m - 1
		}
	}
	return int32(lo)
}

// Size returns the bytes the tables take.
func (k *Keywords) Size() int {
	return len(k.class) + len(k.bytes) + 4*(len(k.dense)+len(k.first)+len(k.fail)+len(k.rank)+len(k.own)+len(k.ids)+len(k.plen)+len(k.pend)) +
		len(k.label) + 8*(len(k.hasOut)+len(k.hasOwn))
}

// Scan calls fn for each match with the pattern id and the offset in s just past the
// match; fn returns false to stop. Matches come by end offset, and at one end longest
// first (patterns of the same length in the order given).
func (k *Keywords) Scan(s string, fn func(id, end int) bool) {
	// The loop runs while the state has a row: one lookup per byte, as in a full table.
	code := int32(0) // the state's row (see code)
	lim, space, dense, class := k.ndense*k.nclass, k.space, k.dense, &k.class
	prevSpace := false
	for i := 0; i < len(s); i++ {
		cl := int32(class[s[i]])
		if cl == space {
			if prevSpace {
				continue
			}
			prevSpace = true
		} else {
			prevSpace = false
		}
		e := dense[code+cl]
		if e >= 0 {
			code = e
			continue
		}
		t := ^e >> 1
		if ^e&1 != 0 && !k.emit(k.state(t), i+1, fn) {
			return
		}
		if t < lim {
			code = t
			continue
		}
		var ok bool
		if code, i, prevSpace, ok = k.scanSparse(s, i, t-lim+k.ndense, prevSpace, fn); !ok {
			return
		}
	}
}

// scanSparse goes on from state st (one without a row) after byte i of s until a byte
// leads back to a state with a row; it returns that state's code and the byte's index
// (len(s) at the end of s), and false when fn stopped the scan.
func (k *Keywords) scanSparse(s string, i int, st int32, prevSpace bool, fn func(id, end int) bool) (int32, int, bool, bool) {
	lim, space := k.ndense*k.nclass, k.space
	first, label, fail, hasOut := k.first, k.label, k.fail, k.hasOut
	for i++; i < len(s); i++ {
		cl := int32(k.class[s[i]])
		if cl == space {
			if prevSpace {
				continue
			}
			prevSpace = true
		} else {
			prevSpace = false
		}
		for {
			lo, hi := first[st], first[st+1]
			for lo < hi && int32(label[lo]) < cl {
				lo++
			}
			if lo < hi && int32(label[lo]) == cl {
				// The children of a state without a row have none either.
				st = lo
				if hasOut[uint32(st)/64]&(1<<(uint32(st)%64)) != 0 && !k.emit(st, i+1, fn) {
					return 0, i, prevSpace, false
				}
				break
			}
			if st = fail[st]; st < k.ndense {
				e := k.dense[st*k.nclass+cl]
				if e >= 0 {
					return e, i, prevSpace, true
				}
				t := ^e >> 1
				if ^e&1 != 0 && !k.emit(k.state(t), i+1, fn) {
					return 0, i, prevSpace, false
				}
				if t < lim {
					return t, i, prevSpace, true
				}
				st = t - lim + k.ndense
				break
			}
		}
	}
	return 0, i, prevSpace, true
}

// code returns state s as the rows encode it: the start of its row for the states with
// one, ndense*nclass + s - ndense for the others.
func (k *Keywords) code(s int32) int32 {
	if s < k.ndense {
		return s * k.nclass
	}
	return s + k.ndense*k.nclass - k.ndense
}

// state is the inverse of code.
func (k *Keywords) state(code int32) int32 {
	if lim := k.ndense * k.nclass; code >= lim {
		return code - lim + k.ndense
	}
	return code / k.nclass
}

// emit reports the patterns ending at state s and along its failure chain.
func (k *Keywords) emit(s int32, end int, fn func(id, end int) bool) bool {
	for s > 0 && k.hasOut[s/64]&(1<<(s%64)) != 0 {
		w, b := s/64, uint(s%64)
		if k.hasOwn[w]&(1<<b) != 0 {
			r := k.rank[w] + int32(bits.OnesCount64(k.hasOwn[w]&(1<<b-1)))
			for _, id := range k.ids[k.own[r]:k.own[r+1]] {
				if !fn(int(id), end) {
					return false
				}
			}
		}
		s = k.fail[s]
	}
	return true
}

// Any reports whether any pattern occurs in s.
func (k *Keywords) Any(s string) bool {
	found := false
	k.Scan(s, func(int, int) bool { found = true; return false })
	return found
}
