package storetest

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/portcullis-mcp/portcullis/internal/store"
)

// quotaCases are the suite's cases for store.Quotas.
var quotaCases = []struct {
	name string
	fn   func(*testing.T, store.Store)
}{
	{"QuotaAdd", testQuotaAdd},
	{"QuotaAllOrNone", testQuotaAllOrNone},
	{"QuotaRefund", testQuotaRefund},
	{"QuotaListPrune", testQuotaListPrune},
	{"QuotaConcurrent", testQuotaConcurrent},
}

func quotaAdd(key string, n, limit int64) store.QuotaAdd {
	return store.QuotaAdd{Key: key, N: n, Cap: limit}
}

func mustAddQuotas(t *testing.T, s store.Store, day string, wantOK bool, want []int64, adds ...store.QuotaAdd) {
	t.Helper()
	got, ok, err := s.AddQuotas(context.Background(), day, adds)
	if err != nil {
		t.Fatalf("AddQuotas(%s, %v): %v", day, adds, err)
	}
	if ok != wantOK || !reflect.DeepEqual(got, want) {
		t.Fatalf("AddQuotas(%s, %v) = %v, %v; want %v, %v", day, adds, got, ok, want, wantOK)
	}
}

// QuotaAdds is the atomic add: it counts up to the cap and no further, per day and key.
func testQuotaAdd(t *testing.T, s store.Store) {
	const d1, d2 = "2026-07-28", "2026-07-29"
	mustAddQuotas(t, s, d1, true, []int64{1}, quotaAdd("calls/a", 1, 3))
	mustAddQuotas(t, s, d1, true, []int64{3}, quotaAdd("calls/a", 2, 3))
	mustAddQuotas(t, s, d1, false, []int64{3}, quotaAdd("calls/a", 1, 3)) // would be 4
	mustAddQuotas(t, s, d1, true, []int64{3}, quotaAdd("calls/a", 0, 3))  // nothing to add passes
	// Another key, another day: counters of their own.
	mustAddQuotas(t, s, d1, true, []int64{1}, quotaAdd("calls/b", 1, 3))
	mustAddQuotas(t, s, d2, true, []int64{3}, quotaAdd("calls/a", 3, 3))
	// A first add larger than the cap is refused, and creates nothing.
	mustAddQuotas(t, s, d1, false, []int64{0}, quotaAdd("units/a", 10, 5))
	mustAddQuotas(t, s, d1, true, []int64{5}, quotaAdd("units/a", 5, 5))
	// No cap.
	mustAddQuotas(t, s, d1, true, []int64{1000000}, quotaAdd("units/free", 1000000, -1))
	// A raised cap admits more (the configuration changed).
	mustAddQuotas(t, s, d1, true, []int64{4}, quotaAdd("calls/a", 1, 10))
	if got, err := s.ListQuotas(context.Background(), "2026-07-30"); err != nil || len(got) != 0 {
		t.Errorf("ListQuotas of a day without counters = %v, %v", got, err)
	}
}

// QuotaAllOrNone: several counters move together or not at all.
func testQuotaAllOrNone(t *testing.T, s store.Store) {
	const d = "2026-07-28"
	mustAddQuotas(t, s, d, true, []int64{1, 5}, quotaAdd("calls/a", 1, 2), quotaAdd("units/a", 5, 10))
	mustAddQuotas(t, s, d, true, []int64{2, 10}, quotaAdd("calls/a", 1, 2), quotaAdd("units/a", 5, 10))
	// calls/a is full: units/a does not move either (and the other way round).
	mustAddQuotas(t, s, d, false, []int64{0, 2}, quotaAdd("units/b", 1, 10), quotaAdd("calls/a", 1, 2))
	mustAddQuotas(t, s, d, false, []int64{0, 10}, quotaAdd("calls/c", 1, 5), quotaAdd("units/a", 1, 10))
	list, err := s.ListQuotas(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.QuotaCount{{Key: "calls/a", N: 2}, {Key: "units/a", N: 10}}
	if !reflect.DeepEqual(list, want) {
		t.Errorf("after refused adds the counters are %v, want %v", list, want)
	}
}

// QuotaRefund: a negative add gives back, is never refused, and stops at 0.
func testQuotaRefund(t *testing.T, s store.Store) {
	const d = "2026-07-28"
	mustAddQuotas(t, s, d, true, []int64{3}, quotaAdd("calls/a", 3, 3))
	mustAddQuotas(t, s, d, true, []int64{2}, quotaAdd("calls/a", -1, 3))
	mustAddQuotas(t, s, d, true, []int64{3}, quotaAdd("calls/a", 1, 3))
	mustAddQuotas(t, s, d, true, []int64{0}, quotaAdd("calls/a", -10, 3))
	mustAddQuotas(t, s, d, true, []int64{0}, quotaAdd("calls/new", -1, 3))
}

func testQuotaListPrune(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, day := range []string{"2026-07-27", "2026-07-28", "2026-07-29"} {
		mustAddQuotas(t, s, day, true, []int64{1, 2}, quotaAdd("k/b", 1, -1), quotaAdd("k/a", 2, -1))
	}
	list, err := s.ListQuotas(ctx, "2026-07-28")
	if err != nil {
		t.Fatal(err)
	}
	if want := []store.QuotaCount{{Key: "k/a", N: 2}, {Key: "k/b", N: 1}}; !reflect.DeepEqual(list, want) {
		t.Errorf("ListQuotas = %v, want %v", list, want)
	}
	n, err := s.PruneQuotas(ctx, "2026-07-29")
	if err != nil || n != 4 {
		t.Errorf("PruneQuotas = %d, %v; want 4 removed", n, err)
	}
	for day, want := range map[string]int{"2026-07-27": 0, "2026-07-28": 0, "2026-07-29": 2} {
		if list, err := s.ListQuotas(ctx, day); err != nil || len(list) != want {
			t.Errorf("after pruning, %s has %v, %v; want %d counters", day, list, err, want)
		}
	}
}

// QuotaConcurrent: 64 callers race for a cap of 10, singly and in pairs of counters
// taken in both orders: exactly 10 are admitted, and nothing deadlocks.
func testQuotaConcurrent(t *testing.T, s store.Store) {
	RaceQuota(t, []store.Store{s}, 64, 10)
}

// RaceQuota has callers goroutines add to the same counters through the given stores
// (taking turns) with a cap of limit, and checks that exactly limit adds were admitted:
// no over-admission, and no spurious refusal while there was room. Half the callers add
// to a second counter too, in the other key order.
func RaceQuota(t *testing.T, stores []store.Store, callers int, limit int64) {
	t.Helper()
	ctx := context.Background()
	const day = "2026-07-28"
	var admitted atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	start := make(chan struct{})
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := stores[i%len(stores)]
			adds := []store.QuotaAdd{quotaAdd("race/calls", 1, limit)}
			if i%2 == 1 {
				adds = []store.QuotaAdd{quotaAdd("race/units", 2, -1), quotaAdd("race/calls", 1, limit)}
			}
			<-start
			vals, ok, err := s.AddQuotas(ctx, day, adds)
			if err != nil {
				errs <- fmt.Errorf("caller %d: %w", i, err)
				return
			}
			if ok {
				admitted.Add(1)
			} else if v := vals[len(vals)-1]; v < limit {
				errs <- fmt.Errorf("caller %d refused with the counter at %d < %d", i, v, limit)
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := admitted.Load(); got != limit {
		t.Errorf("%d of %d callers admitted with a cap of %d", got, callers, limit)
	}
	list, err := stores[0].ListQuotas(ctx, day)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list {
		if c.Key == "race/calls" && c.N != limit {
			t.Errorf("race/calls = %d, want %d", c.N, limit)
		}
	}
}
