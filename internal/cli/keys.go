package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/identity"
	"github.com/portcullis-mcp/portcullis/internal/store"
)

func init() {
	register("keys", "keys create|list|revoke --config FILE ...   (API keys: create prints the key once)", keysCmd)
}

const keysUsage = `Usage:
  portcullis keys create --config FILE --name NAME [--groups a,b]
  portcullis keys list   --config FILE
  portcullis keys revoke --config FILE ID
`

func keysCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, keysUsage)
		return 2
	}
	fs := flag.NewFlagSet("keys "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "portcullis.yaml", "configuration file")
	var name, groups *string
	switch args[0] {
	case "create":
		name = fs.String("name", "", "who holds the key: the principal id of its requests (required)")
		groups = fs.String("groups", "", "comma-separated groups of the principal")
	case "list", "revoke":
	case "-h", "--help", "help":
		fmt.Fprint(stdout, keysUsage)
		return 0
	default:
		fmt.Fprintf(stderr, "portcullis keys: unknown subcommand %q\n%s", args[0], keysUsage)
		return 2
	}
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return 2
	}
	ctx := context.Background()
	st, path, ok := configStore(ctx, *cfgPath, stderr)
	if !ok {
		return 1
	}
	defer st.Close()
	switch args[0] {
	case "create":
		if len(pos) != 0 || *name == "" {
			fmt.Fprint(stderr, "portcullis keys create: --name is required, and nothing else\n"+keysUsage)
			return 2
		}
		var gs []string
		for _, g := range strings.Split(*groups, ",") {
			if g = strings.TrimSpace(g); g != "" {
				gs = append(gs, g)
			}
		}
		tok, k, err := createKey(ctx, st, *name, gs)
		if err != nil {
			fmt.Fprintf(stderr, "portcullis: %v\n", err)
			return 1
		}
		fmt.Fprintf(stderr, "API key %s for %q created in %s. It is shown only this once; keep it secret:\n", k.ID, k.Name, path)
		fmt.Fprintln(stdout, tok)
		return 0
	case "list":
		if len(pos) != 0 {
			fmt.Fprint(stderr, keysUsage)
			return 2
		}
		keys, err := st.ListKeys(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "portcullis: %v\n", err)
			return 1
		}
		printKeys(stdout, keys)
		return 0
	default: // revoke
		if len(pos) != 1 {
			fmt.Fprint(stderr, "portcullis keys revoke: name exactly one key id\n"+keysUsage)
			return 2
		}
		id := pos[0]
		if kid, _, err := identity.ParseKey(id); err == nil { // the whole key, e.g. a leaked one
			id = kid
		}
		if err := st.RevokeKey(ctx, id, time.Now()); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				fmt.Fprintf(stderr, "portcullis: no API key %q (see portcullis keys list)\n", id)
			} else {
				fmt.Fprintf(stderr, "portcullis: %v\n", err)
			}
			return 1
		}
		fmt.Fprintf(stdout, "API key %s revoked; a running gateway refuses it within %s\n", id, identity.DefaultKeyCacheTTL)
		return 0
	}
}

// parseInterspersed parses flags that may come before or after positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func createKey(ctx context.Context, st store.Store, name string, groups []string) (string, store.Key, error) {
	tok, k, err := identity.NewKey(name, groups, time.Now())
	if err != nil {
		return "", store.Key{}, err
	}
	if err := st.CreateKey(ctx, k); err != nil {
		return "", store.Key{}, err
	}
	return tok, k, nil
}

func printKeys(w io.Writer, keys []store.Key) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tGROUPS\tCREATED\tLAST USED\tSTATUS")
	ts := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.Local().Format(time.DateTime)
	}
	for _, k := range keys {
		status := "active"
		if k.Revoked() {
			status = "revoked " + ts(k.RevokedAt)
		}
		groups := strings.Join(k.Groups, ",")
		if groups == "" {
			groups = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, groups, ts(&k.CreatedAt), ts(k.LastUsed), status)
	}
	tw.Flush()
}
