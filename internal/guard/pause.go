package guard

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// A Timeout bounds a call's time (limits' call_timeout) and can be paused: a guard that
// waits for a person (approval) pauses it, so that the wait does not count against the
// time the server has to answer, and the person gets the approval's own timeout.
type Timeout struct {
	mu       sync.Mutex
	d        time.Duration // what is left while paused, or in all before the start
	deadline time.Time
	timer    *time.Timer
	paused   int
	fired    bool
	fire     func()
}

// StartTimeout calls fire after d of unpaused time.
func StartTimeout(d time.Duration, fire func()) *Timeout {
	t := &Timeout{d: d, fire: fire}
	t.start()
	return t
}

func (t *Timeout) start() {
	t.deadline = time.Now().Add(t.d)
	t.timer = time.AfterFunc(t.d, t.expire)
}

func (t *Timeout) expire() {
	t.mu.Lock()
	if t.paused > 0 || t.fired {
		t.mu.Unlock()
		return
	}
	t.fired = true
	t.mu.Unlock()
	t.fire()
}

// Pause stops the clock until the returned resume is called (once; pauses nest).
func (t *Timeout) Pause() (resume func()) {
	t.mu.Lock()
	if t.paused == 0 && !t.fired {
		t.timer.Stop()
		t.d = time.Until(t.deadline)
	}
	t.paused++
	t.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			t.mu.Lock()
			defer t.mu.Unlock()
			t.paused--
			if t.paused == 0 && !t.fired {
				t.deadline = time.Now().Add(t.d)
				t.timer = time.AfterFunc(t.d, t.expire)
			}
		})
	}
}

// Stop stops the timeout for good.
func (t *Timeout) Stop() {
	t.mu.Lock()
	t.fired = true
	t.timer.Stop()
	t.mu.Unlock()
}

type timeoutKey struct{}

// WithTimeout returns ctx carrying t, for PauseTimeouts.
func WithTimeout(ctx context.Context, t *Timeout) context.Context {
	prev, _ := ctx.Value(timeoutKey{}).([]*Timeout)
	return context.WithValue(ctx, timeoutKey{}, append(prev[:len(prev):len(prev)], t))
}

// PauseTimeouts pauses every Timeout of the call in ctx until resume is called.
func PauseTimeouts(ctx context.Context) (resume func()) {
	ts, _ := ctx.Value(timeoutKey{}).([]*Timeout)
	resumes := make([]func(), 0, len(ts))
	for _, t := range ts {
		resumes = append(resumes, t.Pause())
	}
	return func() {
		for _, r := range resumes {
			r()
		}
	}
}

// timeoutCtx is the context of PausableTimeout: cancelled with the timeout's cause when
// its unpaused time runs out, and then its Err is context.DeadlineExceeded, as with
// context.WithTimeoutCause. It carries its Timeout for PauseTimeouts itself, so that a
// call's timeout is one allocation and not three.
type timeoutCtx struct {
	context.Context
	t        Timeout
	cancel   context.CancelCauseFunc
	cause    error
	timedOut atomic.Bool
}

func (c *timeoutCtx) Err() error {
	if err := c.Context.Err(); err != nil {
		if c.timedOut.Load() {
			return context.DeadlineExceeded
		}
		return err
	}
	return nil
}

func (c *timeoutCtx) Value(key any) any {
	if key == (timeoutKey{}) {
		prev, _ := c.Context.Value(timeoutKey{}).([]*Timeout)
		return append(prev[:len(prev):len(prev)], &c.t)
	}
	return c.Context.Value(key)
}

func (c *timeoutCtx) fire() {
	c.timedOut.Store(true)
	c.cancel(c.cause)
}

func (c *timeoutCtx) stop() {
	c.t.Stop()
	c.cancel(nil)
}

// PausableTimeout is context.WithTimeoutCause with a clock that PauseTimeouts can stop:
// the returned context is cancelled with cause after d of unpaused time. Call stop when
// done.
func PausableTimeout(parent context.Context, d time.Duration, cause error) (ctx context.Context, stop func()) {
	inner, cancel := context.WithCancelCause(parent)
	c := &timeoutCtx{Context: inner, cancel: cancel, cause: cause}
	c.t.d, c.t.fire = d, c.fire
	c.t.start()
	return c, c.stop
}
