package policy

import (
	"errors"
	"strings"
)

// A glob is a pattern over names: '*' matches any run of characters (including '/', so
// "tools/*" matches every tools method and "file:///workspace/*" every URI below it), '?'
// matches one character, and '\' makes the next character literal. Everything else,
// '[' included, is literal. Unlike path.Match, '*' crosses '/': resource URIs and method
// names contain slashes, and a '*' that stops at them surprises more than it protects.
type glob struct {
	pat  string
	kind globKind
	lit  string // the literal part for the fast kinds
}

type globKind uint8

const (
	globExact  globKind = iota // no wildcard
	globAny                    // "*"
	globPrefix                 // "lit*"
	globSuffix                 // "*lit"
	globGeneral
)

var errBadGlob = errors.New("a trailing '\\' escapes nothing")

func compileGlob(p string) (glob, error) {
	if p == "" {
		return glob{}, errors.New("empty pattern (leave the list out to match anything)")
	}
	if strings.HasSuffix(p, `\`) && (len(p)-len(strings.TrimRight(p, `\`)))%2 == 1 {
		return glob{}, errBadGlob
	}
	g := glob{pat: p, kind: globGeneral}
	meta := strings.IndexAny(p, `*?\`)
	switch {
	case meta < 0:
		g.kind, g.lit = globExact, p
	case p == "*":
		g.kind = globAny
	case meta == len(p)-1 && p[meta] == '*':
		g.kind, g.lit = globPrefix, p[:meta]
	case p[0] == '*' && !strings.ContainsAny(p[1:], `*?\`):
		g.kind, g.lit = globSuffix, p[1:]
	}
	return g, nil
}

func (g *glob) match(s string) bool {
	switch g.kind {
	case globExact:
		return s == g.lit
	case globAny:
		return true
	case globPrefix:
		return strings.HasPrefix(s, g.lit)
	case globSuffix:
		return strings.HasSuffix(s, g.lit)
	}
	return matchGlob(g.pat, s)
}

// literal reports whether the pattern matches exactly one string, and which.
func (g *glob) literal() (string, bool) {
	if g.kind == globExact {
		return g.lit, true
	}
	if strings.ContainsAny(g.pat, "*?") {
		// An escaped wildcard is still one string, but such patterns are rare enough to
		// treat as general.
		return "", false
	}
	return unescapeGlob(g.pat), true
}

func unescapeGlob(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '\\' && i+1 < len(p) {
			i++
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// matchGlob matches s against p with backtracking limited to the last '*' (linear in
// practice, never exponential). Matching is by byte; '?' matches one byte of UTF-8, so
// names are best matched with '*'.
func matchGlob(p, s string) bool {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		if pi < len(p) {
			switch c := p[pi]; c {
			case '*':
				star, mark = pi, si
				pi++
				continue
			case '?':
				pi++
				si++
				continue
			case '\\':
				if pi+1 < len(p) && p[pi+1] == s[si] {
					pi += 2
					si++
					continue
				}
			default:
				if c == s[si] {
					pi++
					si++
					continue
				}
			}
		}
		if star < 0 {
			return false
		}
		pi = star + 1
		mark++
		si = mark
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// globs is a list of patterns; an empty list matches anything.
type globs []glob

func compileGlobs(ps []string) (globs, []error) {
	var gs globs
	var errs []error
	for _, p := range ps {
		g, err := compileGlob(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		gs = append(gs, g)
	}
	return gs, errs
}

func (gs globs) match(s string) bool {
	if len(gs) == 0 {
		return true
	}
	for i := range gs {
		if gs[i].match(s) {
			return true
		}
	}
	return false
}

// covers reports whether every string gs2 matches is also matched by gs (conservatively:
// false when it cannot tell).
func (gs globs) covers(gs2 globs) bool {
	if len(gs) == 0 {
		return true
	}
	for i := range gs {
		if gs[i].kind == globAny {
			return true
		}
	}
	if len(gs2) == 0 {
		return false
	}
next:
	for i := range gs2 {
		b := &gs2[i]
		for j := range gs {
			a := &gs[j]
			if a.pat == b.pat {
				continue next
			}
			if lit, ok := b.literal(); ok && a.match(lit) {
				continue next
			}
			if a.kind == globPrefix && (b.kind == globPrefix || b.kind == globGeneral) &&
				strings.HasPrefix(b.pat, a.lit) && !strings.ContainsAny(b.pat[:len(a.lit)], `*?\`) {
				continue next
			}
		}
		return false
	}
	return true
}
