package approval

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	trail "github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/store"
)

func init() {
	// On by default: an approve rule works without configuration (elicitation, the command
	// line), and without the guard a held call would only be refused.
	guard.Register(Name, true, func(cfg guard.Config, env guard.Env) (guard.Middleware, error) {
		var c Config
		if cfg != nil {
			if err := cfg.Decode(&c); err != nil {
				return nil, err
			}
		}
		g, err := Setup(c, env.Store)
		if err != nil {
			return nil, locate(cfg, err)
		}
		if env.Logger != nil {
			g.log = env.Logger.With("guard", Name)
			if g.c.Webhook != nil {
				g.hook.log = g.log
			}
		}
		current.Store(g)
		return g.Middleware(), nil
	})
}

// Setup builds the guard for configuration c over st, loading the approval key.
func Setup(c Config, st store.Store) (*Guard, error) {
	o := Options{Store: st}
	if err := errors.Join(c.check(), c.Webhook.check()); err != nil {
		return nil, err
	}
	// The key signs what leaves the gateway and must come back: requestState for
	// 2026-07-28 clients and links. A key per process would make a retry on another
	// replica fail, so it is kept in a file: loaded now when configured or when links
	// are on, else on first use (so that a gateway that never holds a call writes none).
	path := c.keyFile()
	o.Key = func() (*Signer, error) {
		k, err := loadKey(path)
		if err != nil {
			return nil, err
		}
		return NewSigner(k), nil
	}
	if c.KeyFile != "" || c.Webhook != nil {
		s, err := o.Key()
		if err != nil {
			return nil, err
		}
		o.Signer = s
	}
	g, err := Compile(c, o)
	if err != nil {
		return nil, err
	}
	if c.Webhook != nil {
		w := *c.Webhook
		if w.Timeout == 0 {
			w.Timeout = 10 * time.Second
		}
		g.hook = &webhook{c: w, signer: o.Signer, client: &http.Client{Timeout: w.Timeout}, log: g.log}
		g.o.Notify = g.hook.notify
	}
	return g, nil
}

func (c *Config) keyFile() string {
	if c.KeyFile != "" {
		return c.KeyFile
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		dir = "."
	}
	return filepath.Join(dir, "portcullis", "approval.key")
}

// loadKey reads (or creates) the approval key file: 64 hex digits.
func loadKey(path string) ([]byte, error) {
	// trail.LoadKey creates the file race-free with a fresh random key; its format is
	// the same (hex digits), so the bytes are read back here.
	if _, err := trail.LoadKey(path); err != nil {
		return nil, fmt.Errorf("key_file: %w", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key_file: %w", err)
	}
	k, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(k) < 16 {
		return nil, fmt.Errorf("key_file %s: want at least 32 hex digits", path)
	}
	return k, nil
}

// fieldError is a configuration error about one field of the section.
type fieldError struct {
	field string
	msg   string
}

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

func fieldErr(field, format string, args ...any) error {
	return &fieldError{field: field, msg: fmt.Sprintf(format, args...)}
}

// locate places field errors at their line in the configuration file, when the section
// can (config.Section).
func locate(cfg guard.Config, err error) error {
	loc, ok := cfg.(interface {
		Errorf(field, format string, args ...any) error
	})
	if !ok {
		return err
	}
	var out []error
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		var fe *fieldError
		if errors.As(e, &fe) {
			top, sub, nested := strings.Cut(fe.field, ".")
			if nested {
				out = append(out, loc.Errorf(top, "%s: %s", sub, fe.msg))
			} else {
				out = append(out, loc.Errorf(top, "%s", fe.msg))
			}
			return
		}
		out = append(out, e)
	}
	walk(err)
	return errors.Join(out...)
}
