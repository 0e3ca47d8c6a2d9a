package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
)

// Options configure an Authenticator: the methods a listener accepts (at least one).
type Options struct {
	APIKeys *APIKeys // Authorization: Bearer pc_...
	OIDC    *OIDC    // Authorization: Bearer <JWT>
	MTLS    *MTLS    // a client certificate verified at the TLS handshake
	// Resource is the canonical URI of the MCP endpoint (RFC 8707, RFC 9728), used in
	// the protected-resource metadata and its URL in challenges. Empty: derived from each
	// request (scheme, Host, path); set it when a proxy sits in front.
	Resource string
	Logger   *slog.Logger
}

// Authenticator finds the principal of an HTTP request with the methods of one listener.
// The first credential the request carries decides, and a bad one is refused, never
// tried as another method or as anonymous: an Authorization header first (an API key when
// it starts with pc_, else a JWT), then a client certificate.
type Authenticator struct {
	opts   Options
	logger *slog.Logger
}

// NewAuthenticator returns an authenticator with opts' methods.
func NewAuthenticator(opts Options) (*Authenticator, error) {
	if opts.APIKeys == nil && opts.OIDC == nil && opts.MTLS == nil {
		return nil, errors.New("identity: no authentication method")
	}
	if opts.Resource != "" {
		if u, err := url.Parse(opts.Resource); err != nil || u.Scheme == "" || u.Host == "" || u.Fragment != "" {
			return nil, fmt.Errorf("identity: resource %q is not an absolute URI without fragment", opts.Resource)
		}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Authenticator{opts: opts, logger: opts.Logger}, nil
}

// Methods names the accepted methods.
func (a *Authenticator) Methods() []string {
	var m []string
	if a.opts.APIKeys != nil {
		m = append(m, "apikey")
	}
	if a.opts.OIDC != nil {
		m = append(m, "oidc")
	}
	if a.opts.MTLS != nil {
		m = append(m, "mtls")
	}
	return m
}

// Authenticate returns the principal of r, or an *Error saying why not and how to answer.
func (a *Authenticator) Authenticate(r *http.Request) (Principal, error) {
	p, code, err := a.authenticate(r)
	if err == nil {
		return p, nil
	}
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Status: http.StatusUnauthorized, Reason: err.Error()}
	}
	e = a.withChallenge(r, e, code)
	a.logger.LogAttrs(r.Context(), slog.LevelInfo, "authentication refused",
		slog.Int("status", e.Status), slog.String("reason", e.Reason), slog.String("remote", r.RemoteAddr))
	return Principal{}, e
}

// credentialParams are query parameters that carry credentials by convention (RFC 6750
// section 2.3 names access_token).
var credentialParams = map[string]bool{
	"access_token": true, "token": true, "api_key": true, "apikey": true, "api-key": true,
	"key": true, "auth": true, "authorization": true, "bearer": true, "id_token": true,
}

func (a *Authenticator) authenticate(r *http.Request) (Principal, string, error) {
	if r.URL.RawQuery != "" {
		for k, vs := range r.URL.Query() {
			cred := credentialParams[strings.ToLower(k)]
			for _, v := range vs {
				cred = cred || strings.HasPrefix(v, KeyPrefix) || strings.HasPrefix(v, "eyJ")
			}
			if cred {
				return Principal{}, errInvalidRequest, fmt.Errorf("credentials in the URL are refused (query parameter %q): URLs end up in logs and histories; send them in the Authorization header, and revoke this one", k)
			}
		}
	}
	switch hs := r.Header.Values("Authorization"); len(hs) {
	case 0:
	case 1:
		return a.bearer(r.Context(), hs[0])
	default:
		return Principal{}, errInvalidRequest, errors.New("more than one Authorization header")
	}
	if a.opts.MTLS != nil {
		if p, ok, err := a.opts.MTLS.Principal(r.TLS); ok {
			return p, "", err
		}
	}
	if r.Header.Get("X-API-Key") != "" {
		return Principal{}, errInvalidRequest, errors.New("X-API-Key is not accepted: send the key as Authorization: Bearer pc_...")
	}
	return Principal{}, "", errors.New("authentication required: " + a.accepted())
}

func (a *Authenticator) bearer(ctx context.Context, h string) (Principal, string, error) {
	scheme, tok, _ := strings.Cut(h, " ")
	tok = strings.TrimSpace(tok)
	if !strings.EqualFold(scheme, "Bearer") {
		return Principal{}, errInvalidRequest, fmt.Errorf("authorization scheme %q is not accepted: use Bearer", scheme)
	}
	if tok == "" {
		return Principal{}, errInvalidRequest, errors.New("empty bearer token")
	}
	if strings.HasPrefix(tok, KeyPrefix) {
		if a.opts.APIKeys == nil {
			return Principal{}, errInvalidToken, errors.New("API keys are not accepted here: " + a.accepted())
		}
		p, err := a.opts.APIKeys.Verify(ctx, tok)
		return p, errInvalidToken, err
	}
	if a.opts.OIDC == nil {
		return Principal{}, errInvalidToken, errors.New("not an API key (they start with pc_), and no token issuer is configured")
	}
	p, err := a.opts.OIDC.Verify(ctx, tok)
	var e *Error
	if errors.As(err, &e) && e.Status == http.StatusForbidden {
		return p, errInsufficientScope, err
	}
	return p, errInvalidToken, err
}

func (a *Authenticator) accepted() string {
	var ways []string
	if a.opts.APIKeys != nil {
		ways = append(ways, "an API key (Authorization: Bearer pc_...)")
	}
	if a.opts.OIDC != nil {
		ways = append(ways, fmt.Sprintf("an access token from %s (Authorization: Bearer ...)", a.opts.OIDC.Issuer()))
	}
	if a.opts.MTLS != nil {
		ways = append(ways, "a client certificate")
	}
	return "send " + strings.Join(ways, ", or ")
}

// withChallenge sets e's WWW-Authenticate: a Bearer challenge when bearer tokens are
// accepted, with the protected-resource metadata URL and the required scopes when an
// issuer is configured, and the RFC 6750 error code when a credential was refused.
func (a *Authenticator) withChallenge(r *http.Request, e *Error, code string) *Error {
	if e.Status != http.StatusUnauthorized && e.Status != http.StatusForbidden {
		return e
	}
	if a.opts.APIKeys == nil && a.opts.OIDC == nil {
		return e // client certificates only: no challenge scheme applies
	}
	out := *e
	desc := ""
	if code != "" {
		desc = e.Reason
	}
	if o := a.opts.OIDC; o != nil {
		out.Challenge = challenge("resource_metadata", MetadataURL(a.resource(r)), "scope", strings.Join(o.ScopesRequired(), " "),
			"error", code, "error_description", desc)
	} else {
		out.Challenge = challenge("realm", "portcullis", "error", code, "error_description", desc)
	}
	return &out
}

// resource is the canonical URI of the MCP endpoint r was sent to.
func (a *Authenticator) resource(r *http.Request) string {
	if a.opts.Resource != "" {
		return a.opts.Resource
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + r.URL.Path
}

// MetadataPath is the well-known path of the protected-resource metadata (RFC 9728).
const MetadataPath = "/.well-known/oauth-protected-resource"

// MetadataURL is where the metadata of resource is served: the well-known path inserted
// between its host and its path (RFC 9728 section 3.1).
func MetadataURL(resource string) string {
	u, err := url.Parse(resource)
	if err != nil {
		return ""
	}
	u.Path = MetadataPath + strings.TrimSuffix(u.Path, "/")
	u.RawPath, u.RawQuery, u.Fragment = "", "", ""
	return u.String()
}

// MetadataHandler serves the OAuth protected-resource metadata (RFC 9728) of the MCP
// endpoint at mcpPath, at MetadataPath and at MetadataPath+mcpPath. It is nil when no
// issuer is configured (there is no authorization server to advertise).
func (a *Authenticator) MetadataHandler(mcpPath string) http.Handler {
	o := a.opts.OIDC
	if o == nil {
		return nil
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		resource := a.opts.Resource
		if resource == "" {
			scheme := "http"
			if r.TLS != nil {
				scheme = "https"
			}
			resource = scheme + "://" + r.Host + mcpPath
		}
		meta := map[string]any{
			"resource":                 resource,
			"authorization_servers":    []string{o.Issuer()},
			"bearer_methods_supported": []string{"header"},
			"resource_name":            "Portcullis MCP gateway",
		}
		if s := o.ScopesRequired(); len(s) > 0 {
			meta["scopes_supported"] = s
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Header().Set("Access-Control-Allow-Origin", "*") // public; browser-based clients read it
		json.NewEncoder(w).Encode(meta)
	})
}
