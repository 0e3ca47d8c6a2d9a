package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os/user"
	"text/tabwriter"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/pins"
)

func init() {
	register("pins", "pins list|diff|approve|reset --config FILE ...   (pinned tool, prompt and template definitions)", pinsCmd)
}

const pinsUsage = `Usage:
  portcullis pins list    --config FILE [--json] [SERVER]
  portcullis pins diff    --config FILE [--kind K] SERVER NAME
  portcullis pins approve --config FILE [--kind K] [--hash H] [--by WHO] SERVER NAME
  portcullis pins reset   --config FILE [--kind K] SERVER [NAME]

K is tool, prompt or resource_template (needed only when a server uses NAME for several).
A changed or new definition stays hidden, and its calls refused, until it is approved;
--hash approves only the definition you reviewed (the one pins diff shows).
`

func pinsCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, pinsUsage)
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("pins "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "portcullis.yaml", "configuration file")
	kind := fs.String("kind", "", "tool, prompt or resource_template")
	asJSON := fs.Bool("json", false, "print JSON lines")
	hash := fs.String("hash", "", "approve only if the pending definition has this hash")
	by := fs.String("by", "", "who approves (default: the OS user)")
	switch sub {
	case "list", "diff", "approve", "reset":
	case "-h", "--help", "help":
		fmt.Fprint(stdout, pinsUsage)
		return 0
	default:
		fmt.Fprintf(stderr, "portcullis pins: unknown subcommand %q\n%s", sub, pinsUsage)
		return 2
	}
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return 2
	}
	want := map[string][2]int{"list": {0, 1}, "diff": {2, 2}, "approve": {2, 2}, "reset": {1, 2}}[sub]
	if len(pos) < want[0] || len(pos) > want[1] {
		fmt.Fprintf(stderr, "portcullis pins %s: wrong number of arguments\n%s", sub, pinsUsage)
		return 2
	}
	ctx := context.Background()
	st, _, ok := configStore(ctx, *cfgPath, stderr)
	if !ok {
		return 1
	}
	defer st.Close()
	arg := func(i int) string {
		if i < len(pos) {
			return pos[i]
		}
		return ""
	}
	switch sub {
	case "list":
		es, err := pins.List(ctx, st, arg(0))
		if err != nil {
			fmt.Fprintf(stderr, "portcullis: %v\n", err)
			return 1
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			for _, e := range es {
				rec := map[string]any{"server": e.Server, "kind": e.Kind, "name": e.Name, "status": e.Status, "hash": e.Hash,
					"pinned_at": e.PinnedAt, "pinned_by": e.PinnedBy}
				if e.Pending != nil {
					rec["pending"] = e.Pending.Hash
					rec["seen_at"] = e.Pending.SeenAt
				}
				enc.Encode(rec)
			}
			return 0
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SERVER\tKIND\tNAME\tSTATUS\tPINNED\tBY\tPENDING")
		blocked := 0
		for _, e := range es {
			pinned, pending := "-", "-"
			if e.Hash != "" {
				pinned = pins.Short(e.Hash) + " " + e.PinnedAt.Local().Format(time.DateTime)
			}
			if e.Pending != nil {
				pending = pins.Short(e.Pending.Hash) + " seen " + e.Pending.SeenAt.Local().Format(time.DateTime)
				blocked++
			}
			by := e.PinnedBy
			if by == "" {
				by = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Server, e.Kind, e.Name, e.Status, pinned, by, pending)
		}
		tw.Flush()
		if blocked > 0 {
			fmt.Fprintf(stdout, "\n%d blocked: review with portcullis pins diff SERVER NAME, then approve\n", blocked)
		}
	case "diff":
		e, err := pins.Find(ctx, st, arg(0), *kind, arg(1))
		if err != nil {
			fmt.Fprintf(stderr, "portcullis: %v\n", err)
			return 1
		}
		if e.Pending == nil {
			fmt.Fprintf(stdout, "%s %q of server %q: no change; pinned to %s by %s at %s\n", e.Kind, e.Name, e.Server, pins.Short(e.Hash), e.PinnedBy, e.PinnedAt.Local().Format(time.DateTime))
			return 0
		}
		from := "approved " + pins.Short(e.Hash)
		if e.Hash == "" {
			from = "nothing approved yet"
		}
		fmt.Fprintf(stdout, "%s %q of server %q: %s; %s\n--- %s\n+++ offered %s (seen %s)\n%s", e.Kind, e.Name, e.Server, e.Status,
			fieldsNote(e), from, e.Pending.Hash, e.Pending.SeenAt.Local().Format(time.DateTime), pins.DiffOf(e))
		fmt.Fprintf(stdout, "approve with: portcullis pins approve --config %s --hash %s %s %s\n", *cfgPath, e.Pending.Hash, e.Server, e.Name)
	case "approve":
		who := *by
		if who == "" {
			who = "cli"
			if u, err := user.Current(); err == nil {
				who = u.Username
			}
		}
		e, err := pins.Approve(ctx, st, arg(0), *kind, arg(1), *hash, who)
		if err != nil {
			fmt.Fprintf(stderr, "portcullis: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "approved %s %q of server %q: now pinned to %s by %s (running gateways apply it on the next listing or call)\n", e.Kind, e.Name, e.Server, pins.Short(e.Hash), who)
	case "reset":
		n, err := pins.Reset(ctx, st, arg(0), *kind, arg(1))
		if err != nil {
			fmt.Fprintf(stderr, "portcullis: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "removed %d pin(s) of server %q: what it offers next is pinned again (tofu) or held for review\n", n, arg(0))
	}
	return 0
}

func fieldsNote(e pins.Entry) string {
	if e.Hash == "" {
		return "new definition"
	}
	fs := pins.ChangedFields(e.Definition, e.Pending.Definition)
	if len(fs) == 0 {
		return "changed"
	}
	return fmt.Sprintf("changed: %v", fs)
}
