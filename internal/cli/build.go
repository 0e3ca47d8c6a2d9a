package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/config"
	"github.com/portcullis-mcp/portcullis/internal/gateway"
	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
	"github.com/portcullis-mcp/portcullis/internal/store"
	"github.com/portcullis-mcp/portcullis/internal/upstream"

	// Guards register themselves.
	_ "github.com/portcullis-mcp/portcullis/internal/guards/audit"
	_ "github.com/portcullis-mcp/portcullis/internal/guards/authz"
	_ "github.com/portcullis-mcp/portcullis/internal/guards/detectargs"
	_ "github.com/portcullis-mcp/portcullis/internal/guards/detectlistings"
	_ "github.com/portcullis-mcp/portcullis/internal/guards/detectresults"
	_ "github.com/portcullis-mcp/portcullis/internal/guards/limits"
	_ "github.com/portcullis-mcp/portcullis/internal/guards/trace"
)

// buildGateway turns a configuration into a gateway; only names (when set) are fronted.
// st is the store the guards share (pins, approvals, quotas, audit).
func buildGateway(cfg *config.Config, logger *slog.Logger, st store.Store, only ...string) (*gateway.Gateway, error) {
	lim := jsonrpc.Limits{MaxBytes: cfg.MaxMessageBytes, MaxDepth: cfg.MaxDepth}
	var servers []gateway.Server
	for _, s := range cfg.Servers {
		if len(only) > 0 && s.Name != only[0] {
			continue
		}
		servers = append(servers, gateway.Server{Name: s.Name, Dial: dialer(s, lim, logger), StartTimeout: s.StartTimeout})
	}
	if len(only) > 0 && len(servers) == 0 {
		return nil, fmt.Errorf("%s: no server named %q", cfg.File, only[0])
	}
	g, err := gateway.New(gateway.Options{
		Servers: servers,
		Guards:  guardSections(cfg),
		Limits:  lim,
		Logger:  logger,
		Version: version(),
		Store:   st,

		SessionIdleTimeout: cfg.SessionIdleTimeout,
		MaxSessions:        cfg.MaxSessions,
	})
	if err != nil {
		return nil, locateGuardError(cfg, err)
	}
	return g, nil
}

func guardSections(cfg *config.Config) map[string]guard.Config {
	out := map[string]guard.Config{}
	for name, s := range cfg.GuardSections() {
		out[name] = s
	}
	return out
}

func locateGuardError(cfg *config.Config, err error) error {
	var ce *config.Error
	if asConfigError(err, &ce) {
		return err
	}
	return fmt.Errorf("%s: guards: %w", cfg.File, err)
}

func dialer(s config.Server, lim jsonrpc.Limits, logger *slog.Logger) upstream.Dial {
	switch {
	case s.Command != "" || s.Sandbox != nil && s.Sandbox.Wasm != "":
		opts := upstream.StdioOptions{Name: s.Name, Command: s.Command, Args: s.Args, Env: upstream.Environ(s.Env),
			Dir: s.Dir, Limits: lim, Logger: logger}
		if s.Sandbox.On() {
			opts.Wrap = sandboxWrap(s, logger)
		}
		return func(ctx context.Context, in upstream.Incoming) (upstream.Transport, error) {
			return upstream.StartStdio(ctx, opts, in)
		}
	case s.Transport == "sse":
		opts := httpOptions(s, lim)
		return func(ctx context.Context, in upstream.Incoming) (upstream.Transport, error) {
			return upstream.NewSSE(ctx, s.URL, opts, in)
		}
	default:
		opts := httpOptions(s, lim)
		return func(ctx context.Context, in upstream.Incoming) (upstream.Transport, error) {
			return upstream.NewStreamableHTTP(s.URL, opts, in)
		}
	}
}

// sharedTransport carries every request to HTTP servers. It never uses an ambient proxy
// and runs each exchange in the calling goroutine (see upstream.H1Transport).
var sharedTransport = &upstream.H1Transport{MaxIdlePerHost: 256, DialTimeout: 10 * time.Second}

func httpOptions(s config.Server, lim jsonrpc.Limits) upstream.HTTPOptions {
	h := http.Header{}
	for k, v := range s.Headers {
		h.Set(k, v)
	}
	// Redirects are not followed: a server that answers 3xx is misconfigured or hostile, and
	// following it would send the call, with the credentials the gateway injects, elsewhere.
	client := &http.Client{Transport: sharedTransport, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	return upstream.HTTPOptions{Client: client, Header: h, Limits: lim, Name: s.Name}
}
