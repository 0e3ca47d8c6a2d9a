package cli

import (
	"context"
	"errors"
	"expvar"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	trail "github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/config"
	"github.com/portcullis-mcp/portcullis/internal/guards/approval"
	auditguard "github.com/portcullis-mcp/portcullis/internal/guards/audit"
	tracing "github.com/portcullis-mcp/portcullis/internal/guards/trace"
	"github.com/portcullis-mcp/portcullis/internal/identity"
	"github.com/portcullis-mcp/portcullis/internal/memtrim"
	"github.com/portcullis-mcp/portcullis/internal/metrics"
	"github.com/portcullis-mcp/portcullis/internal/rawsock"
	"github.com/portcullis-mcp/portcullis/internal/transport/h1server"
	"github.com/portcullis-mcp/portcullis/internal/transport/streamablehttp"
)

func asConfigError(err error, target **config.Error) bool { return errors.As(err, target) }

func init() {
	register("serve", "serve --config FILE [--listen ADDR] [--pprof ADDR]", serve)
}

func serve(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "portcullis.yaml", "configuration file")
	listen := fs.String("listen", "", "address of the MCP endpoint (overrides listen in the file)")
	pprofAddr := fs.String("pprof", "", "serve net/http/pprof on this loopback address")
	drain := fs.Duration("drain", 30*time.Second, "how long SIGTERM waits for calls in flight")
	stdHTTP := fs.Bool("std-http", false, "serve POST /mcp with net/http too, instead of the gateway's own HTTP/1.1 fast path")
	unready := fs.Duration("unready-delay", 0, "on SIGTERM, answer /readyz with 503 for this long before the drain (for load balancers)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "portcullis: %v\n", err)
		return 1
	}
	logger := newLogger(cfg, stderr)
	addr := cfg.Listen
	if *listen != "" {
		addr = *listen
	}
	if addr == "" {
		addr = "127.0.0.1:8931"
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	auth, err := setupAuth(ctx, cfg, addr, stderr, logger)
	if err != nil {
		fmt.Fprintf(stderr, "portcullis: %v\n", err)
		return 1
	}
	defer auth.Close()
	st := auth.store
	if st == nil {
		if st, _, err = openStore(ctx, cfg); err != nil {
			fmt.Fprintf(stderr, "portcullis: %v\n", err)
			return 1
		}
		defer st.Close()
	}
	g, err := buildGateway(cfg, logger, st)
	if err != nil {
		fmt.Fprintf(stderr, "portcullis: %v\n", err)
		return 1
	}
	// Start-up (the detectors' tables above all) leaves tens of MiB of garbage; give
	// it back before serving rather than carrying it as resident memory.
	debug.FreeOSMemory()
	frontOpts := streamablehttp.Options{
		AllowedHosts: cfg.AllowedHosts, AllowedOrigins: cfg.AllowedOrigins, Logger: logger,
		Authenticate: auth.authenticate,
		OnSecurityEvent: func(ctx context.Context, e streamablehttp.SecurityEvent) {
			recordSecurityEvent(ctx, logger, e)
		},
	}
	front := streamablehttp.New(g, frontOpts)
	fl, err := fleetOf(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "portcullis: %v\n", err)
		return 1
	}
	endpoint := func(h http.Handler) http.Handler {
		if fl != nil { // a request for another replica's legacy session goes to that replica
			return fl.Handler(h, logger)
		}
		return h
	}
	mux := http.NewServeMux()
	mcp := endpoint(front)
	mux.Handle("/mcp", mcp)
	if auth.metadata != nil { // RFC 9728, at the root and for the /mcp path
		mux.Handle(identity.MetadataPath, auth.metadata)
		mux.Handle(identity.MetadataPath+"/mcp", auth.metadata)
	}
	// Each server also has an endpoint of its own, /mcp/<server>: that server alone, under
	// its own names, with the same authentication and guard chains (what `portcullis wrap`
	// points a client's HTTP entry at).
	var fronts []*streamablehttp.Handler
	for _, name := range g.Servers() {
		v, err := g.Only(name)
		if err != nil {
			fmt.Fprintf(stderr, "portcullis: %v\n", err)
			return 1
		}
		f := streamablehttp.New(v, frontOpts)
		fronts = append(fronts, f)
		mux.Handle(ServerPath(name), endpoint(f))
		if auth.metadataAt != nil {
			mux.Handle(identity.MetadataPath+ServerPath(name), auth.metadataAt(ServerPath(name)))
		}
	}
	mux.Handle(approval.LinkPath, approval.Links()) // signed approve/deny links (webhook); 404 without one
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	ready := &readiness{st: st}
	mux.Handle("/readyz", ready)              // 503 while draining or when the store does not answer
	mux.Handle("/metrics", metrics.Handler()) // Prometheus; no labels name principals
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(stderr, "portcullis: listen: %v\n", err)
		return 1
	}
	// Slow clients are bounded: headers in 10 s, a whole request in 60 s, idle keep-alive
	// connections closed after 2 minutes. Writes are bounded per write by the front.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10, TLSConfig: auth.tls}
	srv.RegisterOnShutdown(front.Shutdown)
	for _, f := range fronts {
		srv.RegisterOnShutdown(f.Shutdown)
	}
	if *pprofAddr != "" {
		if runtime.MemProfileRate == 0 {
			runtime.MemProfileRate = 512 << 10 // the default, which cmd/portcullis turns off
		}
		pm := http.NewServeMux()
		pm.HandleFunc("/debug/pprof/", pprof.Index)
		pm.HandleFunc("/debug/pprof/profile", pprof.Profile)
		pm.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		pm.HandleFunc("/debug/pprof/trace", pprof.Trace)
		pm.Handle("/debug/vars", expvar.Handler()) // memstats: exact allocation counts
		go http.ListenAndServe(*pprofAddr, pm)
	}
	errc := make(chan error, 2)
	admin, err := startDashboard(cfg, st, auth.tls, logger, errc)
	if err != nil {
		fmt.Fprintf(stderr, "portcullis: %v\n", err)
		return 1
	}
	defer admin.Shutdown(context.Background())
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	// Reload on SIGHUP and when the configuration file changes.
	go watchFile(ctx, *cfgPath, 2*time.Second, func() {
		logger.Info("configuration file changed; reloading", "file", *cfgPath)
		select {
		case hup <- syscall.SIGHUP:
		default: // a reload is already pending
		}
	})
	go func() {
		for range hup {
			ncfg, err := config.Load(*cfgPath)
			if err == nil {
				err = g.SetGuards(guardSections(ncfg))
			}
			if err != nil {
				logger.Error("reload failed; the running configuration stays", "err", err)
				continue
			}
			logger.Info("guards reloaded", "guards", g.Guards())
			admin.Reload(ncfg, logger)
		}
	}()
	scheme := "http"
	var fast *h1server.Server
	switch {
	case auth.tls != nil:
		scheme = "https"
		go func() { errc <- srv.ServeTLS(rawsock.Listener(ln), "", "") }()
	case *stdHTTP:
		go func() { errc <- srv.Serve(ln) }()
	default:
		// Plain HTTP: POST /mcp keep-alive requests are parsed and answered without
		// net/http's per-request goroutine; every other request goes to srv.
		// The fast path's requests are POST /mcp: they go to the endpoint itself, not
		// through the mux's lookup (which routes them there, and everything else reaches
		// the mux through srv).
		fast = &h1server.Server{Handler: mcp, Fallback: srv, Target: "/mcp",
			HeaderTimeout: srv.ReadHeaderTimeout, ReadTimeout: srv.ReadTimeout, IdleTimeout: srv.IdleTimeout,
			ErrorLog: func(msg string, args ...any) { logger.Error(msg, args...) }}
		go func() { errc <- fast.Serve(ln) }()
	}
	logger.Info("portcullis serving", "mcp", scheme+"://"+ln.Addr().String()+"/mcp",
		"per_server", scheme+"://"+ln.Addr().String()+ServerPath("<server>"), "auth", strings.Join(auth.methods, ","),
		"servers", g.Servers(), "guards", g.Guards(), "version", version())
	releaseStartupPages(logger)
	select {
	case err := <-errc:
		fmt.Fprintf(stderr, "portcullis: %v\n", err)
		return 1
	case <-ctx.Done():
	}
	ready.draining.Store(true)
	if *unready > 0 {
		logger.Info("shutting down: out of rotation before the drain", "unready_delay_s", unready.Seconds())
		time.Sleep(*unready)
	}
	logger.Info("shutting down: draining calls in flight", "drain_s", drain.Seconds())
	sctx, cancel := context.WithTimeout(context.Background(), *drain)
	defer cancel()
	// First the HTTP server: no new requests, long-lived streams end, and every call in
	// flight finishes and writes its response. Then the servers' sessions are closed.
	admin.Shutdown(sctx)
	shutErr := make(chan error, 1)
	go func() {
		if fast != nil {
			shutErr <- fast.Shutdown(sctx)
		} else {
			shutErr <- nil
		}
	}()
	if err := errors.Join(srv.Shutdown(sctx), <-shutErr); err != nil {
		logger.Warn("calls still in flight when the drain time ran out", "err", err)
	}
	if fast != nil {
		fast.Close()
	}
	if err := g.Shutdown(sctx); err != nil {
		logger.Warn("shutdown", "err", err)
	}
	srv.Close()
	auditguard.Close()
	tracing.Flush(sctx)
	logger.Info("stopped")
	return 0
}

// releaseStartupPages gives back the executable's pages that only start-up used (package
// initializers, building the chain): about 15 MiB that would otherwise stay resident.
func releaseStartupPages(logger *slog.Logger) {
	r, err := memtrim.ReleaseStartupPages()
	if err != nil {
		logger.Warn("could not release the start-up pages of the executable", "err", err)
		return
	}
	logger.Debug("released the start-up pages of the executable", "mappings", r.Mappings, "resident_kib", r.Bytes>>10,
		"skipped_with_breakpoints", r.Skipped)
}

// ServerPath is the path of the endpoint of one server of the gateway.
func ServerPath(name string) string { return "/mcp/" + name }

// recordSecurityEvent writes a refusal at the edge to the audit trail, when there is one.
// The request was already refused: a failure to record it is logged, not fatal.
func recordSecurityEvent(ctx context.Context, logger *slog.Logger, e streamablehttp.SecurityEvent) {
	b := auditguard.Current()
	if b == nil {
		return
	}
	ev := &trail.Event{Kind: "security", Direction: "inbound", Decision: "denied", Message: e.Message,
		Principal: e.Principal.ID, AuthMethod: e.Principal.Method, Session: e.Session}
	switch e.Kind {
	case "session-of-another-principal":
		ev.Code = trail.CodeSessionMisuse
		ev.Message = fmt.Sprintf("%s (owner %s/%s, from %s)", e.Message, e.Owner.Method, e.Owner.ID, e.Remote)
	default:
		ev.Code = trail.CodeAuthFailed
		ev.Message = fmt.Sprintf("%s (from %s)", e.Message, e.Remote)
	}
	if err := b.Record(context.WithoutCancel(ctx), ev); err != nil {
		logger.Error("could not record a refusal at the edge in the audit trail", "kind", e.Kind, "err", err)
	}
}
