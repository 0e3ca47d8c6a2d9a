package limits

import (
	"math"
	"reflect"
	"sync"
	"time"
)

// The in-memory limits: token buckets and calls in flight, per rule and counter key, and
// the calls in flight per session. They are this process's own: in a fleet each replica
// keeps its own (see README.md for the bound that gives).
//
// They outlive a configuration: a reload builds a new chain, and the new chain takes over
// the counters of the rules it keeps (same name, what it counts per, and for buckets the
// same rate and burst), so that a reload neither refills buckets nor forgets calls in
// flight. One lock guards them all: a call's admission across several rules is atomic, and
// the work under it is a few map operations.

var memMu sync.Mutex

// memKey names one counter of one rule: the parts the rule does not count per are empty.
// In the shared maps rule is 0 (the map is the rule's own).
type memKey struct {
	rule              int
	method, principal string
	server, tool      string
}

type bucket struct {
	tokens float64
	last   int64 // Unix nanoseconds of the last refill
}

type bucketMap struct {
	m         map[memKey]*bucket
	lastSweep int64
}

// maxBuckets bounds the buckets of one rule; full buckets are swept first. A call that
// would need another one beyond it is refused (the rule could not be checked).
const maxBuckets = 1 << 17

// sweepEvery is how often idle buckets are dropped.
const sweepEvery = int64(time.Minute)

type perSig struct {
	name                  string
	principal, server, tl bool
}

type bucketSig struct {
	perSig
	ratePerNs, burst float64
}

// pool holds the counters of the chains built for one store (one gateway): a new chain
// takes over the counters of its predecessor's rules.
type pool struct {
	buckets  map[bucketSig]*bucketMap
	slots    map[perSig]map[memKey]int
	sessions map[string]int
}

var pools = map[any]*pool{}

// attach gives the rules their counters, carried over from the chain built before for
// the same store (owner), and returns the calls in flight per session. Counters of rules
// the new configuration no longer has are left to the old chains that hold them.
func attach(owner any, rules []*rule) map[string]int {
	memMu.Lock()
	defer memMu.Unlock()
	if owner != nil && !reflect.TypeOf(owner).Comparable() {
		owner = nil
	}
	old := pools[owner]
	if old == nil {
		old = &pool{sessions: map[string]int{}}
	}
	p := &pool{buckets: map[bucketSig]*bucketMap{}, slots: map[perSig]map[memKey]int{}, sessions: old.sessions}
	for _, r := range rules {
		ps := perSig{r.name, r.perPrincipal, r.perServer, r.perTool}
		if r.ratePerNs > 0 {
			bs := bucketSig{ps, r.ratePerNs, r.burst}
			if r.buckets = old.buckets[bs]; r.buckets == nil {
				r.buckets = &bucketMap{m: map[memKey]*bucket{}}
			}
			p.buckets[bs] = r.buckets
		}
		if r.concurrency > 0 {
			if r.slots = old.slots[ps]; r.slots == nil {
				r.slots = map[memKey]int{}
			}
			p.slots[ps] = r.slots
		}
	}
	pools[owner] = p
	return p.sessions
}

// admission is what a call took: the buckets to refund if a later limit refuses it, and
// the in-flight slots to give back when it ends.
type admission struct {
	taken []taken
	slots []taken
}

type taken struct {
	r *rule
	k memKey
}

// verdict is a refusal by one limit of one rule.
type verdict struct {
	rule  *rule
	limit string
	retry time.Duration // 0: retrying will not help
	msg   string
}

// admitMemory checks the rate and concurrency of every selected rule and, when all admit
// the call, takes a token from each bucket and a slot from each concurrency counter, all
// under one lock: concurrent calls can never both take the last token or slot.
func admitMemory(now int64, sel []*rule, keys []memKey, a *admission) *verdict {
	memMu.Lock()
	defer memMu.Unlock()
	for i, r := range sel {
		k := keys[i]
		k.rule = 0
		if r.ratePerNs > 0 {
			bm := r.buckets
			if now-bm.lastSweep > sweepEvery {
				bm.sweep(now, r)
			}
			b := bm.m[k]
			tokens := r.burst
			if b != nil {
				tokens = math.Min(r.burst, b.tokens+float64(now-b.last)*r.ratePerNs)
			} else if len(bm.m) >= maxBuckets {
				if bm.sweep(now, r); len(bm.m) >= maxBuckets {
					return &verdict{rule: r, limit: "rate", retry: time.Second,
						msg: "the gateway tracks too many rate counters to check this one; try again shortly"}
				}
			}
			if tokens < 1 {
				wait := time.Duration(math.Ceil((1 - tokens) / r.ratePerNs))
				return &verdict{rule: r, limit: "rate", retry: wait, msg: "rate limit exceeded"}
			}
		}
		if r.concurrency > 0 && r.slots[k] >= r.concurrency {
			return &verdict{rule: r, limit: "concurrency", retry: 100 * time.Millisecond, msg: "too many calls in flight"}
		}
	}
	for i, r := range sel {
		k := keys[i]
		k.rule = 0
		if r.ratePerNs > 0 {
			b := r.buckets.m[k]
			if b == nil {
				b = &bucket{tokens: r.burst, last: now}
				r.buckets.m[k] = b
			}
			b.tokens = math.Min(r.burst, b.tokens+float64(now-b.last)*r.ratePerNs) - 1
			b.last = now
			a.taken = append(a.taken, taken{r, k})
		}
		if r.concurrency > 0 {
			r.slots[k]++
			a.slots = append(a.slots, taken{r, k})
		}
	}
	return nil
}

// refundTokens gives back the tokens a call took (a later limit refused it).
func refundTokens(a *admission) {
	if len(a.taken) == 0 {
		return
	}
	memMu.Lock()
	for _, t := range a.taken {
		if b := t.r.buckets.m[t.k]; b != nil {
			b.tokens = math.Min(t.r.burst, b.tokens+1)
		}
	}
	memMu.Unlock()
	a.taken = a.taken[:0]
}

// releaseSlots gives back the in-flight slots of a call that ended.
func releaseSlots(a *admission) {
	if len(a.slots) == 0 {
		return
	}
	memMu.Lock()
	for _, t := range a.slots {
		if t.r.slots[t.k]--; t.r.slots[t.k] <= 0 {
			delete(t.r.slots, t.k)
		}
	}
	memMu.Unlock()
	a.slots = a.slots[:0]
}

// sweep drops the buckets that have refilled: a missing bucket is a full one.
func (bm *bucketMap) sweep(now int64, r *rule) {
	bm.lastSweep = now
	for k, b := range bm.m {
		if b.tokens+float64(now-b.last)*r.ratePerNs >= r.burst {
			delete(bm.m, k)
		}
	}
}
