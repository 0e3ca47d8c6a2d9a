package detect

import "sync"

// The shared automaton: one Keywords over the patterns of every detector that takes part,
// so that a process holds each phrase once however many detectors look for it. The
// injection phrases, for instance, are wanted by the injection detector (results), the
// poisoning detector (listings, with phrases of its own) and, in one pass with the secrets
// keywords, by the results guard. Each detector registers its patterns at package
// initialization (Share) and keeps the ids of its Part; a scan reports the ids of every
// part, and each detector takes those in its own range.
var shared struct {
	mu    sync.Mutex
	parts []*Part
	once  sync.Once
	kw    *Keywords
}

// Part is one detector's patterns in the shared automaton: its pattern i has id Base()+i.
type Part struct {
	patterns func() []string
	base, n  int
}

// Share registers patterns (returned by a function called once, when the automaton is
// first needed) in the shared automaton. It must be called during package initialization:
// it panics once the automaton has been built.
func Share(patterns func() []string) *Part {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.kw != nil {
		panic("detect.Share: the shared automaton is built already (call Share from a package-level variable)")
	}
	p := &Part{patterns: patterns}
	shared.parts = append(shared.parts, p)
	return p
}

// Shared returns the shared automaton, built on first use (so that a process that never
// scans does not pay for it).
func Shared() *Keywords {
	shared.once.Do(func() {
		shared.mu.Lock()
		defer shared.mu.Unlock()
		var all []string
		for _, p := range shared.parts {
			ps := p.patterns()
			p.base, p.n = len(all), len(ps)
			all = append(all, ps...)
		}
		shared.kw = NewKeywords(all)
	})
	return shared.kw
}

// Base returns the id of the part's first pattern in the shared automaton (building it).
func (p *Part) Base() int {
	Shared()
	return p.base
}

// Len returns the number of the part's patterns (building the shared automaton).
func (p *Part) Len() int {
	Shared()
	return p.n
}

// Local returns the part's own index of shared id, and false when the id is another
// part's. Call it after Shared.
func (p *Part) Local(id int) (int, bool) {
	i := id - p.base
	return i, uint(i) < uint(p.n)
}
