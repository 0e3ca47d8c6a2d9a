package cli

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/config"
	"github.com/portcullis-mcp/portcullis/internal/dashboard"
	auditguard "github.com/portcullis-mcp/portcullis/internal/guards/audit"
	"github.com/portcullis-mcp/portcullis/internal/identity"
	"github.com/portcullis-mcp/portcullis/internal/store"
)

// adminListener is the dashboard on its own listener (admin.listen).
type adminListener struct {
	srv  *http.Server
	dash *dashboard.Server
	// as started, to tell what a reload cannot change
	listen string
	oidc   *config.AdminOIDC
	ttl    time.Duration
}

// startDashboard serves the dashboard when the configuration has an admin section. It
// uses the MCP listener's certificate when tls is set, without asking browsers for client
// certificates.
func startDashboard(cfg *config.Config, st store.Store, serverTLS *tls.Config, logger *slog.Logger, errc chan<- error) (*adminListener, error) {
	a := cfg.Admin
	if a == nil {
		return nil, nil
	}
	var servers []dashboard.ServerInfo
	for _, s := range cfg.Servers {
		si := dashboard.ServerInfo{Name: s.Name, Transport: "stdio", Target: s.Command}
		if s.URL != "" {
			si.Transport, si.Target = s.Transport, s.URL
			if si.Transport == "" {
				si.Transport = "streamable-http"
			}
		}
		servers = append(servers, si)
	}
	var sso *dashboard.OIDCOptions
	if o := a.OIDC; o != nil {
		sso = &dashboard.OIDCOptions{Issuer: o.Issuer, ClientID: o.ClientID, ClientSecret: o.ClientSecret, RedirectURL: o.RedirectURL,
			GroupsClaim: o.GroupsClaim, UserClaim: o.UserClaim, Scopes: o.Scopes}
	}
	dash, err := dashboard.New(dashboard.Options{OIDC: sso,
		Store: st, Keys: identity.NewAPIKeys(st, 0, logger), Roles: a.Roles, SessionTTL: a.SessionTTL, Servers: servers,
		Listen: a.Listen, AllowedHosts: a.AllowedHosts, Logger: logger, FleetFeed: fleetFeed(cfg),
		Audit: func() dashboard.Recorder {
			if b := auditguard.Current(); b != nil {
				return b
			}
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", a.Listen)
	if err != nil {
		return nil, fmt.Errorf("admin.listen: %w", err)
	}
	var tc *tls.Config
	if serverTLS != nil {
		tc = serverTLS.Clone()
		tc.ClientAuth, tc.ClientCAs = tls.NoClientCert, nil
	}
	// No write timeout: the live feed is a long stream (it bounds each write itself).
	srv := &http.Server{Handler: dash, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10, TLSConfig: tc}
	srv.RegisterOnShutdown(dash.Close)
	scheme := "http"
	if tc != nil {
		scheme = "https"
		go func() { errc <- fmt.Errorf("admin listener: %w", srv.ServeTLS(ln, "", "")) }()
	} else {
		go func() { errc <- fmt.Errorf("admin listener: %w", srv.Serve(ln)) }()
	}
	logger.Info("dashboard serving", "url", scheme+"://"+ln.Addr().String()+"/")
	return &adminListener{srv: srv, dash: dash, listen: a.Listen, oidc: a.OIDC, ttl: a.SessionTTL}, nil
}

// Reload applies a reloaded configuration's roles; the rest of admin (the listener,
// sign-on) needs a restart, which is logged when it changed.
func (l *adminListener) Reload(cfg *config.Config, logger *slog.Logger) {
	if l == nil {
		if cfg.Admin != nil {
			logger.Warn("admin was added to the configuration: restart serve to start the dashboard")
		}
		return
	}
	if cfg.Admin == nil {
		logger.Warn("admin was removed from the configuration: the dashboard runs until serve restarts")
		return
	}
	l.dash.SetRoles(cfg.Admin.Roles)
	if cfg.Admin.Listen != l.listen || !reflect.DeepEqual(cfg.Admin.OIDC, l.oidc) || cfg.Admin.SessionTTL != l.ttl {
		logger.Warn("admin changed beyond its roles: the new roles apply now; restart serve for the rest")
	}
	logger.Info("dashboard roles reloaded")
}

// Shutdown ends the live feeds and stops the listener.
func (l *adminListener) Shutdown(ctx context.Context) {
	if l == nil {
		return
	}
	l.dash.Close()
	l.srv.Shutdown(ctx)
}

// fleetFeed is how often the live feed reads the trail of every replica from the store:
// when the store is shared (PostgreSQL) and the audit trail goes into it; 0 otherwise
// (the feed shows this process's events as it records them).
func fleetFeed(cfg *config.Config) time.Duration {
	if cfg.Store.Driver != "postgres" {
		return 0
	}
	sec, ok := cfg.GuardSections()[auditguard.Name]
	if ok {
		var c auditguard.Config
		if sec.Off() || sec.Decode(&c) != nil || !c.WritesToStore() {
			return 0
		}
	}
	return time.Second
}
