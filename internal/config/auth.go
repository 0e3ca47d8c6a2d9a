package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Auth is how clients of the HTTP listener authenticate. In the file it is either the
// word none, or a mapping of methods, several of which may be enabled at once:
//
//	auth: none                      # no authentication, loopback only
//	auth: {none: true, allow_remote_none: true}   # no authentication, any address
//	auth:
//	  api_keys: true                # Authorization: Bearer pc_... (portcullis keys create)
//	  oidc: {issuer: https://id.example.com, audience: https://gw.example.com/mcp}
//	  mtls: {identity: san}         # client certificates (needs tls.client_ca)
//
// Without an auth key, serve is secure by default: API keys are required, and a first key
// is created (and printed once) when the store has none.
type Auth struct {
	// Set is whether the file has an auth key at all.
	Set  bool   `yaml:"-"`
	word string // a scalar other than none, reported by validate

	None            bool  `yaml:"none"`
	AllowRemoteNone bool  `yaml:"allow_remote_none"`
	APIKeys         bool  `yaml:"api_keys"`
	OIDC            *OIDC `yaml:"oidc"`
	MTLS            *MTLS `yaml:"mtls"`
	// Resource is the canonical URI of the MCP endpoint (https://gw.example.com/mcp), as
	// advertised in the protected-resource metadata; by default it is derived from each
	// request. Set it when a proxy is in front.
	Resource string `yaml:"resource"`
}

// OIDC configures OIDC/JWT bearer tokens.
type OIDC struct {
	Issuer         string   `yaml:"issuer"`
	Audience       string   `yaml:"audience"`   // default: auth.resource
	Algorithms     []string `yaml:"algorithms"` // default RS256, ES256
	GroupsClaim    string   `yaml:"groups_claim"`
	ScopesRequired []string `yaml:"scopes_required"`
}

// MTLS configures client certificates.
type MTLS struct {
	// Identity is where the principal id comes from: san (first URI or DNS SAN, else CN;
	// the default) or cn.
	Identity string `yaml:"identity"`
}

// TLS serves the listener over TLS. Relative paths are relative to the file.
type TLS struct {
	Cert     string `yaml:"cert"`
	Key      string `yaml:"key"`
	ClientCA string `yaml:"client_ca"` // PEM bundle of the CAs whose client certificates are accepted
}

// Enabled reports whether TLS is configured.
func (t TLS) Enabled() bool { return t.Cert != "" }

// Store configures the store. Relative paths are relative to the file.
type Store struct {
	Driver string `yaml:"driver"` // sqlite (the default) or postgres (fleets: replicas share it)
	Path   string `yaml:"path"`   // sqlite: default $XDG_STATE_HOME/portcullis/portcullis.db
	// DSN is postgres's connection string (postgres://user:password@host:port/db?sslmode=...);
	// ${VAR} and ${file:PATH} are expanded, so the password can stay in a secret.
	DSN string `yaml:"dsn"`
}

// UnmarshalYAML decodes auth: the scalar none, or a mapping decoded strictly.
func (a *Auth) UnmarshalYAML(n *yaml.Node) error {
	*a = Auth{Set: true}
	switch n.Kind {
	case yaml.ScalarNode:
		a.None = n.Value == "none"
		if !a.None {
			a.word = n.Value
		}
		return nil
	case yaml.MappingNode:
		if errs := unknownKeys(n, reflect.TypeOf(*a), "auth"); len(errs) > 0 {
			return &yaml.TypeError{Errors: errs}
		}
		type plain Auth
		if err := n.Decode((*plain)(a)); err != nil {
			return err
		}
		a.Set = true
		return nil
	}
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: auth must be none or a mapping", n.Line)}}
}

// unknownKeys lists, as YAML type errors, the keys of mapping n (and of the mappings in
// it) that struct type t has no field for. Decoding inside an UnmarshalYAML is not strict.
func unknownKeys(n *yaml.Node, t reflect.Type, name string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind != yaml.MappingNode || t.Kind() != reflect.Struct {
		return nil
	}
	fields := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if tag != "" && tag != "-" {
			fields[tag] = t.Field(i).Type
		}
	}
	var errs []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		ft, ok := fields[k.Value]
		if !ok {
			errs = append(errs, fmt.Sprintf("line %d: field %s not found in type config.%s", k.Line, k.Value, name))
			continue
		}
		errs = append(errs, unknownKeys(n.Content[i+1], ft, k.Value)...)
	}
	return errs
}

// AsymmetricAlgorithms are the JWT signature algorithms auth.oidc.algorithms may name.
var AsymmetricAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

func (c *Config) validateAuth() []error {
	var errs []error
	a := &c.Auth
	bad := func(msg string, path ...any) { errs = append(errs, c.at(msg, append([]any{"auth"}, path...)...)) }
	if a.word != "" {
		bad(fmt.Sprintf("unknown auth mode %q: write none, or a mapping enabling api_keys, oidc or mtls", a.word))
	} else if a.Set {
		others := a.APIKeys || a.OIDC != nil || a.MTLS != nil
		switch {
		case a.None && others:
			bad("none cannot be combined with other methods", "none")
		case a.AllowRemoteNone && !a.None:
			bad("applies only with none: true", "allow_remote_none")
		case !a.None && !others:
			bad("no method enabled: set api_keys: true, oidc, mtls, or none: true")
		case a.None && !a.AllowRemoteNone && validHostPort(c.Listen) && !LoopbackAddr(c.Listen):
			bad(fmt.Sprintf("none on the non-loopback address %s would let anyone who can reach it use every server; listen on 127.0.0.1, enable authentication, or set allow_remote_none: true", c.Listen))
		}
	}
	if a.Resource != "" {
		if u, err := url.Parse(a.Resource); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Fragment != "" {
			bad(fmt.Sprintf("%q is not an absolute http(s) URI without fragment", a.Resource), "resource")
		}
	}
	if o := a.OIDC; o != nil {
		if o.Audience == "" {
			o.Audience = a.Resource
		}
		switch u, err := url.Parse(o.Issuer); {
		case o.Issuer == "":
			bad("required", "oidc", "issuer")
		case err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && LoopbackAddr(u.Host))):
			bad(fmt.Sprintf("%q is not an https URL (http is accepted for loopback issuers only)", o.Issuer), "oidc", "issuer")
		}
		if o.Audience == "" {
			bad("required (the canonical URI of this gateway's MCP endpoint, which tokens must be issued for); or set auth.resource", "oidc", "audience")
		}
		for i, alg := range o.Algorithms {
			if !slices.Contains(AsymmetricAlgorithms, alg) {
				why := "unknown"
				if strings.EqualFold(alg, "none") || strings.HasPrefix(strings.ToUpper(alg), "HS") {
					why = "never accepted (keys come from a public JWKS)"
				}
				bad(fmt.Sprintf("algorithm %q: %s; use %s", alg, why, strings.Join(AsymmetricAlgorithms, ", ")), "oidc", "algorithms", i)
			}
		}
	}
	if m := a.MTLS; m != nil {
		if m.Identity != "" && m.Identity != "san" && m.Identity != "cn" {
			bad(fmt.Sprintf("unknown identity %q (san or cn)", m.Identity), "mtls", "identity")
		}
		if c.TLS.ClientCA == "" {
			bad("needs tls.client_ca (the CAs whose client certificates are accepted)", "mtls")
		}
	}
	dir := filepath.Dir(c.File)
	t := &c.TLS
	switch {
	case (t.Cert == "") != (t.Key == ""):
		errs = append(errs, c.at("cert and key go together", "tls"))
	case t.ClientCA != "" && t.Cert == "":
		errs = append(errs, c.at("client_ca needs cert and key (client certificates need TLS)", "tls", "client_ca"))
	case t.ClientCA != "" && a.MTLS == nil:
		errs = append(errs, c.at("client certificates are verified but not used: add mtls to auth", "tls", "client_ca"))
	}
	for _, p := range []*string{&t.Cert, &t.Key, &t.ClientCA} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	switch c.Store.Driver {
	case "", "sqlite":
		c.Store.Driver = "sqlite"
		if c.Store.DSN != "" {
			errs = append(errs, c.at("dsn is for driver postgres; sqlite takes a path", "store", "dsn"))
		}
	case "postgres":
		switch {
		case c.Store.Path != "":
			errs = append(errs, c.at("path is for driver sqlite; postgres takes a dsn", "store", "path"))
		case c.Store.DSN == "":
			errs = append(errs, c.at("driver postgres needs a dsn (postgres://user:${PGPASSWORD}@host:5432/db?sslmode=verify-full)", "store", "driver"))
		default:
			dsn, err := c.expand(c.Store.DSN)
			if err != nil {
				errs = append(errs, c.at(err.Error(), "store", "dsn"))
			}
			c.Store.DSN = dsn
		}
	default:
		errs = append(errs, c.at(fmt.Sprintf("unknown driver %q (sqlite or postgres)", c.Store.Driver), "store", "driver"))
	}
	if p := c.Store.Path; p != "" && p != ":memory:" && !filepath.IsAbs(p) {
		c.Store.Path = filepath.Join(dir, p)
	}
	return errs
}

// StorePath is the store's path: store.path, or $XDG_STATE_HOME/portcullis/portcullis.db,
// or ~/.local/state/portcullis/portcullis.db.
func (c *Config) StorePath() (string, error) {
	if c.Store.Path != "" {
		return c.Store.Path, nil
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "portcullis", "portcullis.db"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return "", errors.New("no store.path in the configuration, and no home directory for the default")
	}
	return filepath.Join(home, ".local", "state", "portcullis", "portcullis.db"), nil
}

func validHostPort(addr string) bool {
	_, _, err := net.SplitHostPort(addr)
	return err == nil
}

// LoopbackAddr reports whether a host:port (or a bare host) is a loopback address:
// localhost, 127.0.0.0/8 or ::1.
func LoopbackAddr(addr string) bool {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
