package limits

import (
	"context"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
	"github.com/portcullis-mcp/portcullis/internal/store"
)

// state is one configuration's limits and what they have counted, shared by the chains
// built from it.
type state struct {
	c     *compiled
	o     Options
	loops *loops
	days  *days

	sessions map[string]int // calls in flight per session, guarded by memMu (memory.go)
}

// storeTimeout bounds one visit to the store on the hot path.
const storeTimeout = 5 * time.Second

// counted is what a call added to the daily counters, to give back if it never reached
// the server.
type counted struct {
	day  string
	adds []store.QuotaAdd
}

// count adds the call to the daily quotas and budgets of the rules that select it, all or
// none. It refuses the call when one is used up, and when the store cannot say (fail
// closed).
func (s *state) count(ctx context.Context, c *guard.Call, now time.Time, sel []*rule, keys []memKey) (*counted, error) {
	day, end, changed := s.days.at(now)
	if changed {
		prune(s.o.Quotas, s.o.Logger, now, s.c.zone)
	}
	cost := int64(1)
	for _, r := range sel {
		if r.cost > 0 {
			cost = r.cost
			break
		}
	}
	adds := make([]store.QuotaAdd, 0, 2*len(sel))
	type owner struct {
		r      *rule
		budget bool
	}
	owners := make([]owner, 0, 2*len(sel))
	for i, r := range sel {
		if r.dailyCalls > 0 {
			adds = append(adds, store.QuotaAdd{Key: counterKey(r, "calls", keys[i]), N: 1, Cap: r.dailyCalls})
			owners = append(owners, owner{r, false})
		}
		if r.budget > 0 {
			adds = append(adds, store.QuotaAdd{Key: counterKey(r, "units", keys[i]), N: cost, Cap: r.budget})
			owners = append(owners, owner{r, true})
		}
	}
	sctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	vals, ok, err := s.o.Quotas.AddQuotas(sctx, day, adds)
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err() // the client gave up: nothing to refuse
	}
	if err != nil {
		r := guard.Deny(Name, jsonrpc.CodeGatewayError, "the daily quotas of %s could not be checked, so the call was refused; retry shortly", what(c))
		r.Data = map[string]any{"limit": "store", "retryAfterMs": 1000}
		if s.o.Logger != nil {
			s.o.Logger.Error("daily quotas could not be checked", "guard", Name, "incident", r.Incident, "err", err)
		}
		return nil, r
	}
	if ok {
		return &counted{day: day, adds: adds}, nil
	}
	for i, a := range adds {
		if vals[i]+a.N <= a.Cap {
			continue
		}
		r := owners[i].r
		left := max(0, a.Cap-vals[i])
		wait := end.Sub(now)
		var ref *guard.Refusal
		if !owners[i].budget {
			ref = deny("the daily call quota of %s is used up (limits rule %q: %d calls a day); it renews at midnight %s, in %s", what(c), r.name, a.Cap, zoneName(s.c.zone), roundUp(wait))
			ref.Data = map[string]any{"limit": "daily_calls", "rule": r.name, "used": vals[i], "cap": a.Cap, "retryAfterMs": retryMs(wait)}
		} else if a.N > a.Cap {
			ref = deny("%s costs %d units, more than the whole daily budget of limits rule %q (%d units): it can never be admitted", what(c), a.N, r.name, a.Cap)
			ref.Data = map[string]any{"limit": "daily_budget", "rule": r.name, "used": vals[i], "cap": a.Cap, "cost": a.N}
		} else {
			ref = deny("the daily budget of limits rule %q is used up: %s costs %d units and %d of %d are left today; it renews at midnight %s, in %s", r.name, what(c), a.N, left, a.Cap, zoneName(s.c.zone), roundUp(wait))
			ref.Data = map[string]any{"limit": "daily_budget", "rule": r.name, "used": vals[i], "cap": a.Cap, "cost": a.N, "retryAfterMs": retryMs(wait)}
		}
		return nil, ref
	}
	// Refused, yet every counter has room now: another call gave some back meanwhile.
	r := deny("the daily quotas of %s changed while the call was counted; retry", what(c))
	r.Data = map[string]any{"limit": "daily_calls", "retryAfterMs": 1}
	return nil, r
}

// refund gives back what a call counted.
func (s *state) refund(ctx context.Context, k *counted) {
	back := make([]store.QuotaAdd, len(k.adds))
	for i, a := range k.adds {
		back[i] = store.QuotaAdd{Key: a.Key, N: -a.N, Cap: -1}
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if _, _, err := s.o.Quotas.AddQuotas(rctx, k.day, back); err != nil && s.o.Logger != nil {
		s.o.Logger.Warn("a refused call's daily quota could not be given back", "guard", Name, "err", err)
	}
}

func zoneName(z *time.Location) string {
	if z == time.UTC {
		return "UTC"
	}
	return z.String()
}
