package config

import (
	"fmt"
	"net/url"
	"time"
)

// Admin is the dashboard's listener, separate from the MCP endpoint:
//
//	admin:
//	  listen: 127.0.0.1:8932
//	  roles:                        # groups of a login's principal, per role
//	    admin: [secops]             # everything, including approving changed tool definitions
//	    approver: [oncall]          # settles held calls
//	    viewer: [audit]             # reads
//	  session_ttl: 8h               # a login lasts this long (default 8h)
//	  allowed_hosts: [gw.example.com]  # Host values accepted besides the listen address
//
// A principal with groups in several roles gets the highest; one with none cannot log in.
// A listen address that is not loopback needs tls (the session cookie is Secure).
type Admin struct {
	Listen       string        `yaml:"listen"`
	Roles        Roles         `yaml:"roles"`
	SessionTTL   time.Duration `yaml:"session_ttl"`
	AllowedHosts []string      `yaml:"allowed_hosts"`
	OIDC         *AdminOIDC    `yaml:"oidc"`
}

// AdminOIDC is the dashboard's OpenID Connect login.
type AdminOIDC struct {
	Issuer       string   `yaml:"issuer"`
	ClientID     string   `yaml:"client_id"`
	ClientSecret string   `yaml:"client_secret"` // ${VAR} and ${file:PATH} are expanded
	RedirectURL  string   `yaml:"redirect_url"`
	GroupsClaim  string   `yaml:"groups_claim"`
	UserClaim    string   `yaml:"user_claim"`
	Scopes       []string `yaml:"scopes"` // default openid profile email groups
}

// Roles maps each dashboard role to the groups that have it.
type Roles struct {
	Admin    []string `yaml:"admin"`
	Approver []string `yaml:"approver"`
	Viewer   []string `yaml:"viewer"`
}

func (c *Config) validateAdmin() []error {
	a := c.Admin
	if a == nil {
		return nil
	}
	var errs []error
	bad := func(msg string, path ...any) { errs = append(errs, c.at(msg, append([]any{"admin"}, path...)...)) }
	switch {
	case a.Listen == "":
		bad("set the dashboard's address (host:port, such as 127.0.0.1:8932)", "listen")
	case !validHostPort(a.Listen):
		bad(fmt.Sprintf("%q is not a host:port address", a.Listen), "listen")
	case a.Listen == c.Listen:
		bad("must differ from listen: the dashboard has its own listener, apart from the MCP endpoint", "listen")
	case !LoopbackAddr(a.Listen) && !c.TLS.Enabled():
		bad(fmt.Sprintf("%q is not a loopback address: set tls (cert and key), since the dashboard's cookies are Secure, or listen on 127.0.0.1", a.Listen), "listen")
	}
	if len(a.Roles.Admin)+len(a.Roles.Approver)+len(a.Roles.Viewer) == 0 {
		bad("name the groups of at least one role (admin, approver, viewer): nobody could log in", "roles")
	}
	for role, gs := range map[string][]string{"admin": a.Roles.Admin, "approver": a.Roles.Approver, "viewer": a.Roles.Viewer} {
		for i, g := range gs {
			if g == "" {
				bad("a group name is empty", "roles", role, i)
			}
		}
	}
	if o := a.OIDC; o != nil {
		switch u, err := url.Parse(o.Issuer); {
		case o.Issuer == "":
			bad("set the issuer (https://...)", "oidc", "issuer")
		case err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && LoopbackAddr(u.Host))):
			bad(fmt.Sprintf("%q is not an https URL (http is accepted for loopback issuers only)", o.Issuer), "oidc", "issuer")
		}
		if o.ClientID == "" {
			bad("set the client id registered with the issuer", "oidc", "client_id")
		}
		secret, err := c.expand(o.ClientSecret)
		if err != nil {
			bad(err.Error(), "oidc", "client_secret")
		}
		o.ClientSecret = secret
		switch u, err := url.Parse(o.RedirectURL); {
		case o.RedirectURL == "":
			bad("set the dashboard's callback URL (https://HOST:PORT/login/oidc/callback), as registered with the issuer", "oidc", "redirect_url")
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.Path != "/login/oidc/callback":
			bad(fmt.Sprintf("%q is not the dashboard's callback URL (http(s)://HOST:PORT/login/oidc/callback)", o.RedirectURL), "oidc", "redirect_url")
		}
	}
	if a.SessionTTL < 0 {
		bad("must not be negative", "session_ttl")
	}
	return errs
}
