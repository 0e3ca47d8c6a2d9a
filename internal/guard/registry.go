package guard

import (
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/portcullis-mcp/portcullis/internal/store"
)

// Config decodes a guard's own section of the configuration into v, strictly.
type Config interface {
	Decode(v any) error
}

// Env is what a guard's setup gets besides its configuration.
type Env struct {
	Logger *slog.Logger
	// Store is the gateway's durable state (pins, approvals, quotas, audit), shared by
	// every guard and by the commands that settle things from another process. It is nil
	// in tests that build chains without one: a guard that needs it refuses to set up.
	Store store.Store
	// Servers names the servers the gateway fronts, in configuration order (for guards
	// that compare servers or ask each of them, such as registry).
	Servers []string
	// Txn, when set, holds what setups stage until the whole configuration is built (see
	// Defer); nil commits at once.
	Txn *Txn
}

// Setup builds a guard from its configuration. cfg is nil when the section is absent and
// the guard is on by default.
type Setup func(cfg Config, env Env) (Middleware, error)

type registration struct {
	setup     Setup
	byDefault bool
}

var (
	regMu    sync.Mutex
	registry = map[string]registration{}
)

// Register makes a guard known. It is called from the guard package's init. A guard that
// is on by default runs without a configuration section.
func Register(name string, byDefault bool, s Setup) {
	regMu.Lock()
	defer regMu.Unlock()
	if !slices.Contains(Order, name) {
		panic(fmt.Sprintf("guard %q is not in guard.Order", name))
	}
	if _, dup := registry[name]; dup {
		panic(fmt.Sprintf("guard %q registered twice", name))
	}
	registry[name] = registration{setup: s, byDefault: byDefault}
}

// Known reports whether a guard of that name is registered.
func Known(name string) bool {
	regMu.Lock()
	defer regMu.Unlock()
	_, ok := registry[name]
	return ok
}

// Build returns the chain around terminal: each registered guard in Order that is on by
// default or has a section in sections, outermost first, except those whose section says
// off (a Config with an Off method that reports true). Every guard is wrapped by Safe.
func Build(terminal Handler, sections map[string]Config, env Env) (Handler, []string, error) {
	regMu.Lock()
	defer regMu.Unlock()
	for name := range sections {
		if _, ok := registry[name]; !ok {
			return nil, nil, fmt.Errorf("unknown guard %q (known: %v)", name, knownLocked())
		}
	}
	type built struct {
		name string
		mw   Middleware
	}
	var mws []built
	for _, name := range Order {
		reg, ok := registry[name]
		if !ok {
			continue
		}
		cfg, configured := sections[name]
		if !configured && !reg.byDefault || configured && isOff(cfg) {
			continue
		}
		mw, err := reg.setup(cfg, env)
		if err != nil {
			return nil, nil, fmt.Errorf("guard %s: %w", name, err)
		}
		mws = append(mws, built{name, mw})
	}
	h := terminal
	names := make([]string, len(mws))
	for i := len(mws) - 1; i >= 0; i-- {
		h = Safe(mws[i].name, mws[i].mw(h))
		names[i] = mws[i].name
	}
	return h, names, nil
}

// BuildOnly returns the chain of the named guards around terminal (those registered, in
// Order, configured or not), for calls refused before the full chain: the gateway passes
// calls its router refuses through the audit guard alone so that they are recorded.
func BuildOnly(terminal Handler, sections map[string]Config, env Env, names ...string) (Handler, error) {
	regMu.Lock()
	defer regMu.Unlock()
	h := terminal
	for i := len(Order) - 1; i >= 0; i-- {
		name := Order[i]
		reg, ok := registry[name]
		if !ok || !slices.Contains(names, name) {
			continue
		}
		cfg, configured := sections[name]
		if !configured && !reg.byDefault || configured && isOff(cfg) {
			continue
		}
		mw, err := reg.setup(cfg, env)
		if err != nil {
			return nil, fmt.Errorf("guard %s: %w", name, err)
		}
		h = Safe(name, mw(h))
	}
	return h, nil
}

func knownLocked() []string {
	var ks []string
	for _, n := range Order {
		if _, ok := registry[n]; ok {
			ks = append(ks, n)
		}
	}
	return ks
}

// isOff reports whether cfg turns its guard off ("NAME: off" in the configuration).
func isOff(cfg Config) bool {
	o, ok := cfg.(interface{ Off() bool })
	return ok && o.Off()
}
