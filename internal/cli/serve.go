package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/config"
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
	if host, _, err := net.SplitHostPort(addr); err == nil && cfg.Auth == "none" {
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			logger.Warn("serving WITHOUT authentication on a non-loopback address: anyone who can reach it can use every server", "listen", addr)
		} else {
			logger.Warn("serving without authentication (auth: none); loopback only", "listen", addr)
		}
	}
	g, err := buildGateway(cfg, logger)
	if err != nil {
		fmt.Fprintf(stderr, "portcullis: %v\n", err)
		return 1
	}
	front := streamablehttp.New(g, streamablehttp.Options{
		AllowedHosts: cfg.AllowedHosts, AllowedOrigins: cfg.AllowedOrigins, Logger: logger,
	})
	mux := http.NewServeMux()
	mux.Handle("/mcp", front)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(stderr, "portcullis: listen: %v\n", err)
		return 1
	}
	// Slow clients are bounded: headers in 10 s, a whole request in 60 s, idle keep-alive
	// connections closed after 2 minutes. Writes are bounded per write by the front.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	srv.RegisterOnShutdown(front.Shutdown)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if *pprofAddr != "" {
		pm := http.NewServeMux()
		pm.HandleFunc("/debug/pprof/", pprof.Index)
		pm.HandleFunc("/debug/pprof/profile", pprof.Profile)
		pm.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		pm.HandleFunc("/debug/pprof/trace", pprof.Trace)
		go http.ListenAndServe(*pprofAddr, pm)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
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
		}
	}()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("portcullis serving", "mcp", "http://"+ln.Addr().String()+"/mcp", "servers", g.Servers(), "guards", g.Guards(), "version", version())
	select {
	case err := <-errc:
		fmt.Fprintf(stderr, "portcullis: %v\n", err)
		return 1
	case <-ctx.Done():
	}
	logger.Info("shutting down: draining calls in flight", "drain_s", drain.Seconds())
	sctx, cancel := context.WithTimeout(context.Background(), *drain)
	defer cancel()
	// First the HTTP server: no new requests, long-lived streams end, and every call in
	// flight finishes and writes its response. Then the servers' sessions are closed.
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("calls still in flight when the drain time ran out", "err", err)
	}
	if err := g.Shutdown(sctx); err != nil {
		logger.Warn("shutdown", "err", err)
	}
	srv.Close()
	logger.Info("stopped")
	return 0
}
