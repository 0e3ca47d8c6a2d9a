package limits

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/store"
)

// Daily quotas and budgets are counted in the store, so that every process and replica
// sharing it sees one count: the store adds atomically and never past a cap.

// keepDays is how many past days of counters are kept (for `portcullis` commands and the
// dashboard to show); older ones are pruned when a day starts.
const keepDays = 7

// days knows the current day in the configured zone, recomputing it only when now
// leaves the cached day.
type days struct {
	zone       *time.Location
	mu         sync.Mutex
	day        string
	start, end int64 // Unix nanoseconds of the day's midnight and the next
}

// at returns the day of now ("2006-01-02"), when it ends, and whether the day changed
// since the last call (a new day: time to prune old counters).
func (d *days) at(now time.Time) (day string, end time.Time, changed bool) {
	n := now.UnixNano()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.day != "" && n >= d.start && n < d.end {
		return d.day, time.Unix(0, d.end), false
	}
	t := now.In(d.zone)
	y, m, dd := t.Date()
	start := time.Date(y, m, dd, 0, 0, 0, 0, d.zone)
	next := time.Date(y, m, dd+1, 0, 0, 0, 0, d.zone)
	day = t.Format(time.DateOnly)
	changed = d.day != day
	d.day, d.start, d.end = day, start.UnixNano(), next.UnixNano()
	return day, next, changed
}

// counterKey names a daily counter in the store: the rule, what is counted ("calls" or
// "units"), and the parts the rule counts per, each escaped so that no two differ only
// in where a separator falls.
func counterKey(r *rule, what string, k memKey) string {
	var b strings.Builder
	b.Grow(len(r.name) + len(k.principal) + len(k.server) + len(k.tool) + 32)
	b.WriteString(r.name)
	b.WriteByte('/')
	b.WriteString(what)
	if r.perPrincipal {
		b.WriteString("/p=")
		b.WriteString(url.PathEscape(k.method))
		b.WriteByte(':')
		b.WriteString(url.PathEscape(k.principal))
	}
	if r.perServer {
		b.WriteString("/s=")
		b.WriteString(url.PathEscape(k.server))
	}
	if r.perTool {
		b.WriteString("/t=")
		b.WriteString(url.PathEscape(k.tool))
	}
	return b.String()
}

// prune removes counters older than keepDays, in the background.
func prune(q store.Quotas, log *slog.Logger, now time.Time, zone *time.Location) {
	before := now.In(zone).AddDate(0, 0, -keepDays).Format(time.DateOnly)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := q.PruneQuotas(ctx, before); err != nil && log != nil {
			log.Warn("pruning old quota counters failed", "guard", Name, "before", before, "err", err)
		}
	}()
}

// Usage is one daily counter as an operator reads it (portcullis quotas).
type Usage struct {
	Key    string `json:"key"`
	Rule   string `json:"rule"`
	Counts string `json:"counts"` // "calls" or "units"
	Used   int64  `json:"used"`
	Cap    int64  `json:"cap"` // the rule's daily_calls or daily_budget now; 0 when the rule is gone
}

// Day returns the day of now in the configuration's day_zone ("2006-01-02").
func (c Config) Day(now time.Time) (string, error) {
	zone := time.UTC
	if c.DayZone != "" && c.DayZone != "UTC" {
		z, err := time.LoadLocation(c.DayZone)
		if err != nil {
			return "", fmt.Errorf("day_zone %q: %w", c.DayZone, err)
		}
		zone = z
	}
	return now.In(zone).Format(time.DateOnly), nil
}

// Describe names the rule and the cap of each counter.
func (c Config) Describe(counts []store.QuotaCount) []Usage {
	out := make([]Usage, 0, len(counts))
	for _, q := range counts {
		u := Usage{Key: q.Key, Used: q.N}
		parts := strings.SplitN(q.Key, "/", 3)
		if len(parts) >= 2 {
			u.Rule, u.Counts = parts[0], parts[1]
		}
		for _, r := range c.Rules {
			if r.Name != u.Rule {
				continue
			}
			switch u.Counts {
			case "calls":
				u.Cap = r.DailyCalls
			case "units":
				u.Cap = r.DailyBudget
			}
		}
		out = append(out, u)
	}
	return out
}
