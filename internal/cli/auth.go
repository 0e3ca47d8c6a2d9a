package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"

	"github.com/portcullis-mcp/portcullis/internal/config"
	"github.com/portcullis-mcp/portcullis/internal/identity"
	"github.com/portcullis-mcp/portcullis/internal/store"
)

// frontAuth is how the HTTP listener authenticates, built from the configuration.
type frontAuth struct {
	authenticate func(*http.Request) (identity.Principal, error) // nil: anonymous (auth: none)
	metadata     http.Handler                                    // RFC 9728 metadata; nil without OIDC
	metadataAt   func(mcpPath string) http.Handler               // the metadata of another MCP path; nil without OIDC
	tls          *tls.Config                                     // nil: plain HTTP
	store        store.Store                                     // nil when no method needs it
	methods      []string
}

func (fa *frontAuth) Close() {
	if fa != nil && fa.store != nil {
		fa.store.Close()
	}
}

// setupAuth builds the listener's authentication for address addr. Without an auth key in
// the file it requires API keys and, when the store has none yet, creates the first one and
// prints it (once) to stderr.
func setupAuth(ctx context.Context, cfg *config.Config, addr string, stderr io.Writer, logger *slog.Logger) (_ *frontAuth, err error) {
	a := cfg.Auth
	fa := &frontAuth{}
	defer func() {
		if err != nil {
			fa.Close()
		}
	}()
	if cfg.TLS.Enabled() {
		if fa.tls, err = serverTLS(cfg); err != nil {
			return nil, err
		}
	}
	if a.Set && a.None {
		if !config.LoopbackAddr(addr) && !a.AllowRemoteNone {
			return nil, fmt.Errorf("%s: auth: none is refused on the non-loopback address %s: anyone who can reach it could use every server; enable authentication, or set auth: {none: true, allow_remote_none: true}", cfg.File, addr)
		}
		if config.LoopbackAddr(addr) {
			logger.Warn("serving WITHOUT authentication (auth: none); loopback only", "listen", addr)
		} else {
			logger.Warn("serving WITHOUT authentication on a non-loopback address (allow_remote_none): anyone who can reach it can use every server", "listen", addr)
		}
		fa.methods = []string{"none"}
		return fa, nil
	}
	var opts identity.Options
	opts.Logger = logger
	opts.Resource = a.Resource
	if !a.Set || a.APIKeys {
		st, path, err := openStore(ctx, cfg)
		if err != nil {
			return nil, err
		}
		fa.store = st
		if !a.Set {
			if err := firstKey(ctx, cfg, st, path, stderr, logger); err != nil {
				return nil, err
			}
		}
		opts.APIKeys = identity.NewAPIKeys(st, 0, logger)
	}
	if o := a.OIDC; o != nil {
		opts.OIDC, err = identity.NewOIDC(ctx, identity.OIDCConfig{
			Issuer: o.Issuer, Audience: o.Audience, Algorithms: o.Algorithms,
			GroupsClaim: o.GroupsClaim, ScopesRequired: o.ScopesRequired,
		}, logger)
		if err != nil {
			return nil, fmt.Errorf("%s: auth.oidc: %w", cfg.File, err)
		}
	}
	if m := a.MTLS; m != nil {
		opts.MTLS = &identity.MTLS{Identity: m.Identity}
	}
	auth, err := identity.NewAuthenticator(opts)
	if err != nil {
		return nil, fmt.Errorf("%s: auth: %w", cfg.File, err)
	}
	fa.authenticate = auth.Authenticate
	fa.metadata = auth.MetadataHandler("/mcp")
	if fa.metadata != nil {
		fa.metadataAt = auth.MetadataHandler
	}
	fa.methods = auth.Methods()
	return fa, nil
}

// firstKey creates an API key when the store has none at all, and prints it once: serve
// without an auth section is secure by default, and still usable at once.
func firstKey(ctx context.Context, cfg *config.Config, st store.Store, path string, stderr io.Writer, logger *slog.Logger) error {
	keys, err := st.ListKeys(ctx)
	if err != nil {
		return err
	}
	active := 0
	for _, k := range keys {
		if !k.Revoked() {
			active++
		}
	}
	switch {
	case active > 0:
		logger.Info("no auth in the configuration: API keys are required", "active_keys", active, "store", path)
		return nil
	case len(keys) > 0:
		logger.Warn("no auth in the configuration, so API keys are required, and every key is revoked: nobody can connect; create one with `portcullis keys create`", "store", path)
		return nil
	}
	tok, k, err := createKey(ctx, st, "admin", nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, `
portcullis: the configuration has no auth section, so clients must present an API key
(secure by default). This first key, %q (id %s), was stored hashed in %s
and is shown only this once:

    %s

Clients send it as "Authorization: Bearer <key>". More keys: portcullis keys create
--config %s --name NAME. To serve loopback without authentication, set "auth: none".

`, k.Name, k.ID, path, tok, cfg.File)
	return nil
}

// serverTLS loads the listener's certificate and, for mTLS, the client CA bundle. With
// client certificates as the only method, a connection without one is refused at the
// handshake; combined with other methods a certificate is optional, but one that does not
// verify is still refused at the handshake.
func serverTLS(cfg *config.Config) (*tls.Config, error) {
	t := cfg.TLS
	cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		return nil, fmt.Errorf("%s: tls: %w", cfg.File, err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if t.ClientCA != "" {
		pem, err := os.ReadFile(t.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("%s: tls.client_ca: %w", cfg.File, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: tls.client_ca: no PEM certificate in %s", cfg.File, t.ClientCA)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.VerifyClientCertIfGiven
		if a := cfg.Auth; a.MTLS != nil && !a.APIKeys && a.OIDC == nil {
			tc.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return tc, nil
}
