package limits

import (
	"math"
	"sync"
	"time"
)

// The in-memory limits of rules: token buckets and calls in flight, one of each per rule
// and counter key. They are this process's own: in a fleet each replica keeps its own
// (see README.md for the bound that gives).

// memKey names one counter of one rule: the parts the rule does not count per are empty.
type memKey struct {
	rule              int
	method, principal string
	server, tool      string
}

type bucket struct {
	tokens float64
	last   int64 // Unix nanoseconds of the last refill
}

// maxBuckets bounds the buckets kept; full buckets are swept first. A call that would
// need another one beyond it is refused (the rule could not be checked).
const maxBuckets = 1 << 17

// sweepEvery is how often idle buckets are dropped.
const sweepEvery = int64(time.Minute)

type memory struct {
	rules     []*rule
	mu        sync.Mutex
	buckets   map[memKey]*bucket
	inflight  map[memKey]int
	lastSweep int64
}

func newMemory(rules []*rule) *memory {
	return &memory{rules: rules, buckets: map[memKey]*bucket{}, inflight: map[memKey]int{}}
}

// admission is what a call took: the buckets to refund if a later limit refuses it, and
// the in-flight slots to give back when it ends.
type admission struct {
	taken []memKey // buckets a token was taken from
	slots []memKey // in-flight slots held
}

// verdict is a refusal by one limit of one rule.
type verdict struct {
	rule  *rule
	limit string
	retry time.Duration // 0: retrying will not help
	msg   string
}

// admit checks the rate and concurrency of every selected rule and, when all admit the
// call, takes a token from each bucket and a slot from each concurrency counter, all
// under one lock: concurrent calls can never both take the last token or slot.
func (m *memory) admit(now int64, keys []memKey, a *admission) *verdict {
	m.mu.Lock()
	defer m.mu.Unlock()
	if now-m.lastSweep > sweepEvery {
		m.sweep(now)
	}
	for _, k := range keys {
		r := m.rules[k.rule]
		if r.ratePerNs > 0 {
			b := m.buckets[k]
			tokens := r.burst
			if b != nil {
				tokens = math.Min(r.burst, b.tokens+float64(now-b.last)*r.ratePerNs)
			} else if len(m.buckets) >= maxBuckets {
				if m.sweep(now); len(m.buckets) >= maxBuckets {
					return &verdict{rule: r, limit: "rate", retry: time.Second,
						msg: "the gateway tracks too many rate counters to check this one; try again shortly"}
				}
			}
			if tokens < 1 {
				wait := time.Duration(math.Ceil((1 - tokens) / r.ratePerNs))
				return &verdict{rule: r, limit: "rate", retry: wait,
					msg: "rate limit exceeded"}
			}
		}
		if r.concurrency > 0 && m.inflight[k] >= r.concurrency {
			return &verdict{rule: r, limit: "concurrency", retry: 100 * time.Millisecond,
				msg: "too many calls in flight"}
		}
	}
	for _, k := range keys {
		r := m.rules[k.rule]
		if r.ratePerNs > 0 {
			b := m.buckets[k]
			if b == nil {
				b = &bucket{tokens: r.burst, last: now}
				m.buckets[k] = b
			}
			b.tokens = math.Min(r.burst, b.tokens+float64(now-b.last)*r.ratePerNs) - 1
			b.last = now
			a.taken = append(a.taken, k)
		}
		if r.concurrency > 0 {
			m.inflight[k]++
			a.slots = append(a.slots, k)
		}
	}
	return nil
}

// refund gives back the tokens a call took (a later limit refused it).
func (m *memory) refund(a *admission) {
	if len(a.taken) == 0 {
		return
	}
	m.mu.Lock()
	for _, k := range a.taken {
		if b := m.buckets[k]; b != nil {
			b.tokens = math.Min(m.rules[k.rule].burst, b.tokens+1)
		}
	}
	m.mu.Unlock()
	a.taken = a.taken[:0]
}

// release gives back the in-flight slots of a call that ended.
func (m *memory) release(a *admission) {
	if len(a.slots) == 0 {
		return
	}
	m.mu.Lock()
	for _, k := range a.slots {
		if m.inflight[k]--; m.inflight[k] <= 0 {
			delete(m.inflight, k)
		}
	}
	m.mu.Unlock()
	a.slots = a.slots[:0]
}

// sweep drops the buckets that have refilled: a missing bucket is a full one.
func (m *memory) sweep(now int64) {
	m.lastSweep = now
	for k, b := range m.buckets {
		r := m.rules[k.rule]
		if b.tokens+float64(now-b.last)*r.ratePerNs >= r.burst {
			delete(m.buckets, k)
		}
	}
}
