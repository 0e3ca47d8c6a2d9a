package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/portcullis-mcp/portcullis/internal/config"
	auditguard "github.com/portcullis-mcp/portcullis/internal/guards/audit"
	"github.com/portcullis-mcp/portcullis/internal/store/sqlite"
)

func init() {
	register("config", "config check FILE", func(args []string, stdout, stderr io.Writer) int {
		if len(args) != 2 || args[0] != "check" {
			fmt.Fprintln(stderr, "usage: portcullis config check FILE")
			return 2
		}
		cfg, err := config.Load(args[1])
		if err != nil {
			fmt.Fprintf(stderr, "%v\n", err)
			return 1
		}
		// The guards are built against an empty in-memory store: a check must not create
		// or change the real one.
		st, err := sqlite.Open(context.Background(), ":memory:")
		if err != nil {
			fmt.Fprintf(stderr, "%v\n", err)
			return 1
		}
		defer st.Close()
		auditguard.SetCheckOnly(true) // no sink is opened: a running gateway may own them
		g, err := buildGateway(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), st)
		if err != nil {
			fmt.Fprintf(stderr, "%v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: ok (servers: %v; guards: %v)\n", args[1], g.Servers(), g.Guards())
		return 0
	})
}
