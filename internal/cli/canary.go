package cli

import (
	"flag"
	"fmt"
	"io"

	"github.com/portcullis-mcp/portcullis/internal/detect/canary"
)

func init() {
	register("canary", "canary create|list [-file F] [-config FILE] [-kind aws|token|path|url|tool|all] [-base B] [-note N]   honeytokens the detectors watch for", canaryCmd)
}

func canaryCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "create" && args[0] != "list") {
		fmt.Fprintln(stderr, "usage: portcullis canary create|list [-file F] [-config FILE] [-kind aws|token|path|url|tool|all] [-base B] [-note N]")
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("canary "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("file", "", "canary file (default $PORTCULLIS_CANARY_FILE, or portcullis-canaries.json next to -config)")
	cfg := fs.String("config", "portcullis.yaml", "configuration file the canaries go with")
	kind := fs.String("kind", "all", "aws, token, path, url, tool (a decoy tool the gateway lists and refuses) or all (all but tool)")
	base := fs.String("base", "", "for path and url canaries: the directory or URL prefix to use; for a tool: its name")
	note := fs.String("note", "", "where you planted it, for the alert")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	path := *file
	if path == "" {
		path = canary.DefaultFile(*cfg)
	}
	f, err := canary.Load(path)
	if err != nil {
		fmt.Fprintln(stderr, "portcullis canary:", err)
		return 1
	}
	if sub == "list" {
		for _, c := range f.Canaries {
			fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\n", c.ID, c.Kind, c.Created.Format("2006-01-02"), c.Note)
		}
		return 0
	}
	kinds := []string{*kind}
	if *kind == "all" {
		kinds = []string{canary.AWS, canary.Token, canary.Path, canary.URL}
	}
	var made []canary.Canary
	for _, k := range kinds {
		c, err := canary.New(k, *base, *note)
		if err != nil {
			fmt.Fprintln(stderr, "portcullis canary:", err)
			return 2
		}
		if _, dup := f.Decoys()[c.Values[0]]; k == canary.Tool && dup {
			fmt.Fprintf(stderr, "portcullis canary: a decoy tool %q exists already; name another with -base\n", c.Values[0])
			return 2
		}
		made = append(made, c)
	}
	f.Canaries = append(f.Canaries, made...)
	if err := f.Save(path); err != nil {
		fmt.Fprintln(stderr, "portcullis canary:", err)
		return 1
	}
	for _, c := range made {
		switch c.Kind {
		case canary.AWS:
			fmt.Fprintf(stdout, "# canary %s (aws)\naws_access_key_id = %s\naws_secret_access_key = %s\n", c.ID, c.Values[0], c.Values[1])
		default:
			fmt.Fprintf(stdout, "# canary %s (%s)\n%s\n", c.ID, c.Kind, c.Values[0])
		}
	}
	fmt.Fprintf(stdout, "# saved in %s; set guards.detect-args.canary_file, guards.detect-results.canary_file and guards.detect-listings.canary_file (or %s) to it\n", path, canary.EnvFile)
	return 0
}
