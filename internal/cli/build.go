package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/config"
	"github.com/portcullis-mcp/portcullis/internal/fleet"
	"github.com/portcullis-mcp/portcullis/internal/gateway"
	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
	"github.com/portcullis-mcp/portcullis/internal/registry"
	"github.com/portcullis-mcp/portcullis/internal/store"
	"github.com/portcullis-mcp/portcullis/internal/upstream"

	// Guards register themselves.
	_ "github.com/portcullis-mcp/portcullis/internal/guards/approval"
	_ "github.com/portcullis-mcp/portcullis/internal/guards/audit"
	_ "github.com/portcullis-mcp/portcullis/internal/guards/authz"
	_ "github.com/portcullis-mcp/portcullis/internal/guards/detectargs"
	_ "github.com/portcullis-mcp/portcullis/internal/guards/detectlistings"
	_ "github.com/portcullis-mcp/portcullis/internal/guards/detectresults"
	_ "github.com/portcullis-mcp/portcullis/internal/guards/limits"
	_ "github.com/portcullis-mcp/portcullis/internal/guards/registry"
	_ "github.com/portcullis-mcp/portcullis/internal/guards/trace"
)

// buildGateway turns a configuration into a gateway; only names (when set) are fronted.
// st is the store the guards share (pins, approvals, quotas, audit).
func buildGateway(cfg *config.Config, logger *slog.Logger, st store.Store, only ...string) (*gateway.Gateway, error) {
	lim := jsonrpc.Limits{MaxBytes: cfg.MaxMessageBytes, MaxDepth: cfg.MaxDepth}
	one := ""
	if len(only) > 0 {
		one = only[0]
	}
	gate, err := checkRegistry(cfg, one)
	if err != nil {
		return nil, err
	}
	var servers []gateway.Server
	for _, s := range cfg.Servers {
		if len(only) > 0 && s.Name != only[0] {
			continue
		}
		d := watched(s.Name, dialer(s, lim, logger, gate.entry(s.Name)))
		servers = append(servers, gateway.Server{Name: s.Name, Dial: d, StartTimeout: s.StartTimeout})
	}
	if len(only) > 0 && len(servers) == 0 {
		return nil, fmt.Errorf("%s: no server named %q", cfg.File, only[0])
	}
	fl, err := fleetOf(cfg)
	if err != nil {
		return nil, err
	}
	var newID func() string
	if fl != nil {
		newID = fl.NewID
	}
	g, err := gateway.New(gateway.Options{
		NewSessionID: newID,
		Servers:      servers,
		Guards:       guardSections(cfg),
		Limits:       lim,
		Logger:       logger,
		Version:      version(),
		Store:        st,

		SessionIdleTimeout: cfg.SessionIdleTimeout,
		MaxSessions:        cfg.MaxSessions,
	})
	if err != nil {
		return nil, locateGuardError(cfg, err)
	}
	if err := gate.record(logger); err != nil {
		g.Shutdown(context.Background())
		return nil, err
	}
	return g, nil
}

// fleetOf returns the fleet session ids of a replica, or nil when the gateway runs alone.
func fleetOf(cfg *config.Config) (*fleet.Sessions, error) {
	if cfg.Fleet.Advertise == "" {
		return nil, nil
	}
	fl, err := fleet.New(cfg.Fleet.Advertise, cfg.Fleet.KeyBytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.File, err)
	}
	return fl, nil
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

// dialer returns how to start or reach server s; e is its registry entry (nil when none),
// whose executable hash is checked at every start and certificate key at every connection.
func dialer(s config.Server, lim jsonrpc.Limits, logger *slog.Logger, e *registry.Entry) upstream.Dial {
	return dialerWith(s, lim, logger, e, sandboxExtra{})
}

// dialerWith is dialer with more granted to a sandboxed server than its configuration
// says (the scanner's canaries).
func dialerWith(s config.Server, lim jsonrpc.Limits, logger *slog.Logger, e *registry.Entry, extra sandboxExtra) upstream.Dial {
	switch {
	case s.Command != "" || s.Sandbox != nil && s.Sandbox.Wasm != "":
		opts := upstream.StdioOptions{Name: s.Name, Command: s.Command, Args: s.Args, Env: upstream.Environ(s.Env),
			Dir: s.Dir, Limits: lim, Logger: logger, Verify: verifyBinary(e, logger)}
		if s.Sandbox.On() {
			opts.Wrap = sandboxWrap(s, logger, extra)
		}
		return func(ctx context.Context, in upstream.Incoming) (upstream.Transport, error) {
			return upstream.StartStdio(ctx, opts, in)
		}
	case s.Transport == "sse":
		opts := httpOptions(s, lim, e, logger)
		return func(ctx context.Context, in upstream.Incoming) (upstream.Transport, error) {
			return upstream.NewSSE(ctx, s.URL, opts, in)
		}
	default:
		opts := httpOptions(s, lim, e, logger)
		return func(ctx context.Context, in upstream.Incoming) (upstream.Transport, error) {
			return upstream.NewStreamableHTTP(s.URL, opts, in)
		}
	}
}

// sharedTransport carries every request to HTTP servers. It never uses an ambient proxy
// and runs each exchange in the calling goroutine (see upstream.H1Transport).
var sharedTransport = &upstream.H1Transport{MaxIdlePerHost: 256, DialTimeout: 10 * time.Second}

func httpOptions(s config.Server, lim jsonrpc.Limits, e *registry.Entry, logger *slog.Logger) upstream.HTTPOptions {
	h := http.Header{}
	for k, v := range s.Headers {
		h.Set(k, v)
	}
	// Redirects are not followed: a server that answers 3xx is misconfigured or hostile, and
	// following it would send the call, with the credentials the gateway injects, elsewhere.
	var rt http.RoundTripper = sharedTransport
	if e != nil && len(e.SPKI) > 0 {
		rt = pinnedTransport(e, logger)
	}
	client := &http.Client{Transport: rt, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	return upstream.HTTPOptions{Client: client, Header: h, Limits: lim, Name: s.Name}
}
