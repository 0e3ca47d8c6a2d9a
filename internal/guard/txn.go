package guard

import "sync"

// Txn collects what guard setups must only do once the whole configuration was built: a
// reload that fails at a later guard (or in the other direction's chain) must leave the
// running configuration alone, so a setup that switches shared state (the audit sinks)
// stages the switch with Env.Defer and the caller commits or aborts them all.
type Txn struct {
	mu      sync.Mutex
	commits []func()
	aborts  []func()
	done    bool
}

// NewTxn returns an empty transaction.
func NewTxn() *Txn { return &Txn{} }

// Commit runs the staged commits, in the order they were staged.
func (t *Txn) Commit() { t.finish(true) }

// Abort runs the staged aborts, last staged first.
func (t *Txn) Abort() { t.finish(false) }

func (t *Txn) finish(commit bool) {
	t.mu.Lock()
	if t.done {
		t.mu.Unlock()
		return
	}
	t.done = true
	cs, as := t.commits, t.aborts
	t.commits, t.aborts = nil, nil
	t.mu.Unlock()
	if commit {
		for _, f := range cs {
			f()
		}
		return
	}
	for i := len(as) - 1; i >= 0; i-- {
		as[i]()
	}
}

// Defer stages commit and abort (either may be nil) in the environment's transaction.
// Without a transaction (tests, a one-off chain) commit runs at once.
func (e Env) Defer(commit, abort func()) {
	if e.Txn == nil {
		if commit != nil {
			commit()
		}
		return
	}
	e.Txn.mu.Lock()
	defer e.Txn.mu.Unlock()
	if commit != nil {
		e.Txn.commits = append(e.Txn.commits, commit)
	}
	if abort != nil {
		e.Txn.aborts = append(e.Txn.aborts, abort)
	}
}
