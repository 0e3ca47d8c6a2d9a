package cli

import (
	"context"
	"fmt"
	"io"
	"net/url"

	"github.com/portcullis-mcp/portcullis/internal/config"
	"github.com/portcullis-mcp/portcullis/internal/store"
	"github.com/portcullis-mcp/portcullis/internal/store/postgres"
	"github.com/portcullis-mcp/portcullis/internal/store/sqlite"
)

// openStore opens the configured store, returning where it is (for messages: a file, or a
// PostgreSQL database named without its credentials).
func openStore(ctx context.Context, cfg *config.Config) (store.Store, string, error) {
	if cfg.Store.Driver == "postgres" {
		s, err := postgres.Open(ctx, cfg.Store.DSN)
		if err != nil {
			return nil, "", fmt.Errorf("%s: store: %w", cfg.File, err)
		}
		return s, redactDSN(cfg.Store.DSN), nil
	}
	path, err := cfg.StorePath()
	if err != nil {
		return nil, "", fmt.Errorf("%s: store: %w", cfg.File, err)
	}
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, "", err
	}
	return s, path, nil
}

// redactDSN names a PostgreSQL database without the password: host and database of a
// URL, or "postgres" for a key=value string.
func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Host != "" {
		return "postgres://" + u.Host + u.Path
	}
	return "postgres"
}

// configStore loads the configuration at path and opens its store, for the commands that
// administer what the store holds (keys, pins, approvals). On failure it says why on
// stderr and returns ok false; the caller exits 1. The caller closes the store.
func configStore(ctx context.Context, path string, stderr io.Writer) (st store.Store, where string, ok bool) {
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "portcullis: %v\n", err)
		return nil, "", false
	}
	st, where, err = openStore(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "portcullis: %v\n", err)
		return nil, "", false
	}
	return st, where, true
}
