package limits_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/guards/limits"
	"github.com/portcullis-mcp/portcullis/internal/identity"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
	"github.com/portcullis-mcp/portcullis/internal/store"
	"github.com/portcullis-mcp/portcullis/internal/store/postgres"
	"github.com/portcullis-mcp/portcullis/internal/store/postgres/pgtest"
)

// benchRules are ten rules of which two select the benchmark's calls (a rate and a
// concurrency bound that never refuse them).
func benchRules() []limits.Rule {
	var rs []limits.Rule
	for i := range 8 {
		rs = append(rs, limits.Rule{Name: fmt.Sprintf("other-%d", i), Servers: []string{fmt.Sprintf("srv-%d", i)}, Tools: []string{"create_*"}, Rate: "10/s"})
	}
	return append(rs,
		limits.Rule{Name: "rate", Groups: []string{"eng"}, Rate: "1000000000/s"},
		limits.Rule{Name: "conc", Servers: []string{"gh"}, Concurrency: 1 << 20, Per: []string{}},
	)
}

func benchGuard(b *testing.B, c limits.Config, o limits.Options) guard.Handler {
	b.Helper()
	c.CallTimeout, c.MaxConcurrentPerSession = time.Minute, 1<<20
	mw, err := limits.New(c, o)
	if err != nil {
		b.Fatal(err)
	}
	return mw(guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) { return nil, nil }))
}

func benchCall() *guard.Call {
	p := identity.Principal{ID: "user", Method: "apikey", Groups: []string{"eng"}}
	c := toolCall(p, "gh", "search", `{"q":"portcullis","page":1}`)
	c.Session = "s"
	return c
}

func runBench(b *testing.B, h guard.Handler) {
	c, ctx := benchCall(), context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Handle(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRules is the in-memory path: ten rules matched, a token bucket and a
// concurrency counter taken and given back.
func BenchmarkRules(b *testing.B) {
	runBench(b, benchGuard(b, limits.Config{Rules: benchRules()}, limits.Options{}))
}

// BenchmarkRulesParallel is the in-memory path from every core at once (the rules'
// counters are shared: this measures the lock).
func BenchmarkRulesParallel(b *testing.B) {
	h := benchGuard(b, limits.Config{Rules: benchRules()}, limits.Options{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c, ctx := benchCall(), context.Background()
		for pb.Next() {
			if _, err := h.Handle(ctx, c); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkLoop adds loop detection (a hash of the call and its arguments, and a ring of
// times) to the in-memory path.
func BenchmarkLoop(b *testing.B) {
	runBench(b, benchGuard(b, limits.Config{Rules: benchRules(), Loop: &limits.Loop{Calls: 1000, Window: time.Millisecond, Cooldown: time.Millisecond}}, limits.Options{}))
}

// BenchmarkDaily adds a daily quota and budget, counted in the store (one atomic add of
// two counters per call).
func BenchmarkDaily(b *testing.B) {
	daily := append(benchRules(),
		limits.Rule{Name: "quota", DailyCalls: 1 << 40},
		limits.Rule{Name: "wallet", Cost: 3, DailyBudget: 1 << 50})
	stores := map[string]func(b *testing.B) store.Store{
		"sqlite": func(b *testing.B) store.Store { return openStore(b) },
		"postgres": func(b *testing.B) store.Store {
			s, err := postgres.Open(context.Background(), pgtest.Schema(b))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s
		},
	}
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			s := stores[name](b)
			runBench(b, benchGuard(b, limits.Config{Rules: daily}, limits.Options{Quotas: s}))
		})
	}
}
