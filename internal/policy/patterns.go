package policy

import (
	"errors"
	"fmt"
)

// Patterns is a compiled list of name patterns, matched as authz rules match servers,
// tools and methods (see glob): other guards that select calls by name use it so that
// every selector in the configuration reads the same way. An empty list matches anything.
type Patterns struct{ gs globs }

// CompilePatterns compiles ps; the error names each bad pattern.
func CompilePatterns(ps []string) (Patterns, error) {
	var gs globs
	var errs []error
	for _, p := range ps {
		g, err := compileGlob(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("pattern %q: %w", p, err))
			continue
		}
		gs = append(gs, g)
	}
	if len(errs) > 0 {
		return Patterns{}, errors.Join(errs...)
	}
	return Patterns{gs: gs}, nil
}

// Match reports whether s matches one of the patterns (or the list is empty).
func (p Patterns) Match(s string) bool { return p.gs.match(s) }
