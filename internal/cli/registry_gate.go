package cli

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"strings"

	trail "github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/config"
	auditguard "github.com/portcullis-mcp/portcullis/internal/guards/audit"
	registryguard "github.com/portcullis-mcp/portcullis/internal/guards/registry"
	"github.com/portcullis-mcp/portcullis/internal/registry"
	"github.com/portcullis-mcp/portcullis/internal/upstream"
)

// gate is what the registry decided before the gateway starts: the entries of the servers
// (for the checks at every start and connection) and the findings to record.
type gate struct {
	reg      *registry.Registry
	findings []registry.Finding
	refused  []registry.Finding
}

func (g *gate) entry(name string) *registry.Entry {
	if g == nil || g.reg == nil {
		return nil
	}
	e, _ := g.reg.Lookup(name)
	return e
}

// checkRegistry loads and verifies the registry the configuration names, and decides on
// the servers to front (only, when set). A registry that cannot be loaded or whose
// signature fails is an error; refused servers are in gate.refused.
func checkRegistry(cfg *config.Config, only string) (*gate, error) {
	servers := cfg.Servers
	if only != "" {
		servers = nil
		for _, s := range cfg.Servers {
			if s.Name == only {
				servers = append(servers, s)
			}
		}
	}
	g := &gate{}
	var o registry.Options
	if rc := cfg.Registry; rc != nil {
		r, err := registry.Load(cfg.Path(rc.File))
		if err != nil {
			return nil, fmt.Errorf("%s: registry: %w", cfg.File, err)
		}
		if rc.RequireSigned {
			key := rc.PublicKey
			if !registry.LooksLikeKey(key) {
				key = cfg.Path(key)
			}
			pub, err := registry.PublicKey(key)
			if err != nil {
				return nil, fmt.Errorf("%s: registry.public_key: %w", cfg.File, err)
			}
			if err := registry.Verify(r, pub); err != nil {
				return nil, fmt.Errorf("registry signature: %w (require_signed is on, so the gateway does not start)", err)
			}
		}
		g.reg = r
		o = registry.Options{Enforce: rc.Enforce, RequirePinned: rc.RequirePinned}
	}
	g.findings = registry.Check(g.reg, servers, o)
	for _, f := range g.findings {
		if f.Refused {
			g.refused = append(g.refused, f)
		}
	}
	return g, nil
}

// record writes the findings to the log and the audit trail (the gateway is built, so the
// audit broker, when configured, is open), and returns the error that stops the start when
// a server was refused.
func (g *gate) record(logger *slog.Logger) error {
	for _, f := range g.findings {
		level, code, decision := slog.LevelWarn, trail.CodeSupplyChain, ""
		if f.Refused {
			level, code, decision = slog.LevelError, trail.CodeRegistryRefused, trail.Denied
		}
		logger.Log(context.Background(), level, "registry: "+f.String(), "upstream", f.Server, "rule", f.Rule, "code", code)
		recordRegistryEvent(logger, code, decision, f.Server, fmt.Sprintf("%s: %s", f.Rule, f.Message))
	}
	if len(g.refused) == 0 {
		return nil
	}
	var msgs []string
	for _, f := range g.refused {
		msgs = append(msgs, f.String())
	}
	return fmt.Errorf("the registry refuses %d server(s), so the gateway does not start:\n  %s", len(g.refused), strings.Join(msgs, "\n  "))
}

func recordRegistryEvent(logger *slog.Logger, code, decision, server, msg string) {
	b := auditguard.Current()
	if b == nil {
		return
	}
	ev := &trail.Event{Kind: "security", Code: code, Decision: decision, Server: server, Message: msg}
	if err := b.Record(context.Background(), ev); err != nil {
		logger.Error("could not record a registry event in the audit trail", "code", code, "err", err)
	}
}

// verifyBinary is the stdio start hook of a server whose registry entry pins its
// executable: a refusal is logged and recorded as an alert.
func verifyBinary(e *registry.Entry, logger *slog.Logger) func(string) error {
	check := registry.BinaryCheck(e)
	if check == nil {
		return nil
	}
	return func(path string) error {
		err := check(path)
		if err != nil {
			logger.Error("registry: executable refused at start", "upstream", e.Name, "err", err)
			recordRegistryEvent(logger, trail.CodeRegistryRefused, trail.Denied, e.Name, err.Error())
		}
		return err
	}
}

// pinnedTransport is the HTTP transport of a server whose entry pins its certificate key.
func pinnedTransport(e *registry.Entry, logger *slog.Logger) *upstream.H1Transport {
	cfg := registry.PinnedTLS(nil, e.Name, e.SPKI)
	verify := cfg.VerifyConnection
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		err := verify(cs)
		if err != nil {
			logger.Error("registry: server certificate refused", "upstream", e.Name, "err", err)
			recordRegistryEvent(logger, trail.CodeRegistryRefused, trail.Denied, e.Name, err.Error())
		}
		return err
	}
	return &upstream.H1Transport{TLS: cfg, MaxIdlePerHost: 256, DialTimeout: sharedTransport.DialTimeout}
}

// watched tells the registry guard of every (re)start or reconnection of a server, so that
// what it offers is checked again before the next call.
func watched(name string, d upstream.Dial) upstream.Dial {
	return func(ctx context.Context, in upstream.Incoming) (upstream.Transport, error) {
		t, err := d(ctx, in)
		if err == nil {
			registryguard.Reconnected(name)
		}
		return t, err
	}
}
