package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/config"
	"github.com/portcullis-mcp/portcullis/internal/guards/limits"
	"github.com/portcullis-mcp/portcullis/internal/store"
)

func init() {
	register("quotas", "quotas list|reset --config FILE ...   (daily call quotas and cost budgets of limits rules)", quotasCmd)
}

const quotasUsage = `Usage:
  portcullis quotas list  --config FILE [--day YYYY-MM-DD] [--json]
  portcullis quotas reset --config FILE [--day YYYY-MM-DD] KEY...

list shows the day's counters (today in the limits day_zone by default): the rule, what it
counts (calls or cost units), how much is used and the rule's cap. reset sets counters back
to 0, for every gateway sharing the store.
`

func quotasCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, quotasUsage)
		return 2
	}
	fs := flag.NewFlagSet("quotas "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "portcullis.yaml", "configuration file")
	day := fs.String("day", "", "the day (YYYY-MM-DD); default today in the limits day_zone")
	asJSON := fs.Bool("json", false, "print JSON lines")
	switch args[0] {
	case "list", "reset":
	case "-h", "--help", "help":
		fmt.Fprint(stdout, quotasUsage)
		return 0
	default:
		fmt.Fprintf(stderr, "portcullis quotas: unknown subcommand %q\n%s", args[0], quotasUsage)
		return 2
	}
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return 2
	}
	if (args[0] == "list") != (len(pos) == 0) {
		fmt.Fprint(stderr, quotasUsage)
		return 2
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "portcullis: %v\n", err)
		return 1
	}
	lc := limits.Defaults
	if s, ok := cfg.GuardSections()[limits.Name]; ok {
		if err := s.Decode(&lc); err != nil {
			fmt.Fprintf(stderr, "portcullis: %v\n", err)
			return 1
		}
	}
	if *day == "" {
		if *day, err = lc.Day(time.Now()); err != nil {
			fmt.Fprintf(stderr, "portcullis: %s: guards.limits: %v\n", cfg.File, err)
			return 1
		}
	} else if _, err := time.Parse(time.DateOnly, *day); err != nil {
		fmt.Fprintf(stderr, "portcullis: --day %q: want YYYY-MM-DD\n", *day)
		return 2
	}
	ctx := context.Background()
	st, _, err := openStore(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "portcullis: %v\n", err)
		return 1
	}
	defer st.Close()
	if args[0] == "reset" {
		var adds []store.QuotaAdd
		for _, k := range pos {
			adds = append(adds, store.QuotaAdd{Key: k, N: -(1 << 62), Cap: -1})
		}
		if _, _, err := st.AddQuotas(ctx, *day, adds); err != nil {
			fmt.Fprintf(stderr, "portcullis: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%d counters of %s reset to 0\n", len(adds), *day)
		return 0
	}
	counts, err := st.ListQuotas(ctx, *day)
	if err != nil {
		fmt.Fprintf(stderr, "portcullis: %v\n", err)
		return 1
	}
	usage := lc.Describe(counts)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, u := range usage {
			enc.Encode(u)
		}
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "KEY\tRULE\tCOUNTS\tUSED\tCAP (%s)\n", *day)
	for _, u := range usage {
		limit := "-"
		if u.Cap > 0 {
			limit = fmt.Sprint(u.Cap)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", u.Key, u.Rule, u.Counts, u.Used, limit)
	}
	tw.Flush()
	return 0
}
