package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"os/user"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/config"
	auditguard "github.com/portcullis-mcp/portcullis/internal/guards/audit"
	tracing "github.com/portcullis-mcp/portcullis/internal/guards/trace"
	"github.com/portcullis-mcp/portcullis/internal/identity"
	"github.com/portcullis-mcp/portcullis/internal/transport/stdio"
)

func init() {
	register("run", "run --config FILE SERVER   (speak MCP on stdio, in front of SERVER)", runCmd)
}

func runCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "portcullis.yaml", "configuration file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "portcullis run: name exactly one server of the configuration")
		return 2
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "portcullis: %v\n", err)
		return 1
	}
	logger := newLogger(cfg, stderr) // stdout carries the protocol
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	st, _, err := openStore(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "portcullis: %v\n", err)
		return 1
	}
	defer st.Close()
	g, err := buildGateway(cfg, logger, st, fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "portcullis: %v\n", err)
		return 1
	}
	p := osPrincipal()
	debug.FreeOSMemory() // start-up's garbage, as in serve
	releaseStartupPages(logger)
	if err := stdio.Serve(ctx, g, os.Stdin, stdout, p); err != nil {
		logger.Error("stdio session ended", "err", err)
	}
	g.Shutdown(context.Background())
	auditguard.Close() // moves the store's audit journal in before the store closes
	fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	tracing.Flush(fctx) // spans still queued for the collector
	cancel()
	return 0
}

// osPrincipal is the principal of run mode: the local OS user who started it (the client
// that spawned portcullis over stdio), with the names of the user's groups.
func osPrincipal() identity.Principal {
	p := identity.Principal{ID: "unknown", Method: "os"}
	u, err := user.Current()
	if err != nil {
		return p
	}
	p.ID = u.Username
	p.Claims = map[string]any{"uid": u.Uid, "gid": u.Gid}
	if gids, err := u.GroupIds(); err == nil {
		for _, gid := range gids {
			if g, err := user.LookupGroupId(gid); err == nil {
				p.Groups = append(p.Groups, g.Name)
			}
		}
	}
	return p
}
