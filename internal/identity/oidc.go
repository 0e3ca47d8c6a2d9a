package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

// OIDCConfig configures OIDC/JWT bearer tokens.
type OIDCConfig struct {
	// Issuer is the issuer URL; its /.well-known/openid-configuration gives the JWKS URL.
	Issuer string
	// Audience must be among the token's aud values (the canonical URI of this gateway's
	// MCP endpoint, per the MCP authorization spec and RFC 8707).
	Audience string
	// Algorithms are the signature algorithms accepted (default RS256, ES256). "none" and
	// the HMAC algorithms are never accepted: the keys come from a public JWKS.
	Algorithms []string
	// GroupsClaim names the claim holding the principal's groups (default "groups"); a
	// dotted path (realm_access.roles) reaches into objects when no claim has that name.
	GroupsClaim string
	// ScopesRequired must all be granted (scope or scp claim), else 403 insufficient_scope.
	ScopesRequired []string
	// Leeway is the clock skew tolerated on exp and nbf (default 30s).
	Leeway time.Duration
	// HTTPClient fetches discovery and keys (default: 10s timeout).
	HTTPClient *http.Client
}

// DefaultAlgorithms are the signature algorithms accepted when none are configured.
var DefaultAlgorithms = []string{"RS256", "ES256"}

// AsymmetricAlgorithms are the algorithms that may be configured.
var AsymmetricAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// discoveryRetry is how long after a failed discovery the next token tries again.
const discoveryRetry = 10 * time.Second

// OIDC checks JWT bearer tokens of one issuer.
type OIDC struct {
	cfg    OIDCConfig
	algs   []jose.SignatureAlgorithm
	logger *slog.Logger
	now    func() time.Time

	mu         sync.Mutex
	verifier   *oidc.IDTokenVerifier
	keys       *keySet
	lastFailed time.Time
	failErr    error
}

// NewOIDC returns a checker for cfg. It tries discovery at once and logs a failure; a
// failed discovery is retried when tokens come (they are answered 503 until it works).
func NewOIDC(ctx context.Context, cfg OIDCConfig, logger *slog.Logger) (*OIDC, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("oidc: issuer and audience are required")
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = DefaultAlgorithms
	}
	var algs []jose.SignatureAlgorithm
	for _, a := range cfg.Algorithms {
		if !slices.Contains(AsymmetricAlgorithms, a) {
			return nil, fmt.Errorf("oidc: algorithm %q is not accepted (use asymmetric algorithms: %s)", a, strings.Join(AsymmetricAlgorithms, ", "))
		}
		algs = append(algs, jose.SignatureAlgorithm(a))
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if logger == nil {
		logger = slog.Default()
	}
	o := &OIDC{cfg: cfg, algs: algs, logger: logger, now: time.Now}
	if _, _, err := o.discover(ctx); err != nil {
		logger.Warn("OIDC discovery failed; retrying when tokens come", "issuer", cfg.Issuer, "err", err)
	}
	return o, nil
}

// Issuer is the configured issuer URL.
func (o *OIDC) Issuer() string { return o.cfg.Issuer }

// ScopesRequired are the scopes every token must carry.
func (o *OIDC) ScopesRequired() []string { return o.cfg.ScopesRequired }

// discover returns the verifier, running discovery if it has not succeeded yet.
func (o *OIDC) discover(ctx context.Context) (*oidc.IDTokenVerifier, *keySet, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.verifier != nil {
		return o.verifier, o.keys, nil
	}
	if !o.lastFailed.IsZero() && o.now().Sub(o.lastFailed) < discoveryRetry {
		return nil, nil, o.failErr
	}
	ctx = oidc.ClientContext(ctx, o.cfg.HTTPClient)
	p, err := oidc.NewProvider(ctx, o.cfg.Issuer)
	if err == nil {
		var meta struct {
			JWKS string `json:"jwks_uri"`
		}
		if err = p.Claims(&meta); err == nil && meta.JWKS == "" {
			err = errors.New("the discovery document has no jwks_uri")
		}
		if err == nil {
			o.keys = &keySet{url: meta.JWKS, client: o.cfg.HTTPClient, algs: o.algs, now: func() time.Time { return o.now() }, logger: o.logger}
			o.verifier = oidc.NewVerifier(o.cfg.Issuer, o.keys, &oidc.Config{
				ClientID:             o.cfg.Audience,
				SupportedSigningAlgs: o.cfg.Algorithms,
				SkipExpiryCheck:      true, // checked below, with a small leeway (go-oidc has none)
			})
			return o.verifier, o.keys, nil
		}
	}
	o.lastFailed, o.failErr = o.now(), fmt.Errorf("OIDC discovery at %s failed: %w", o.cfg.Issuer, err)
	return nil, nil, o.failErr
}

// Verify checks a JWT and returns its principal. Errors are *Error with status 401 (bad
// token), 403 (missing scopes) or 503 (the issuer cannot be reached); the challenge is
// left to the caller.
func (o *OIDC) Verify(ctx context.Context, raw string) (Principal, error) {
	// Refuse a wrong algorithm with a clear reason before anything else; go-jose parses.
	jws, err := jose.ParseSigned(raw, allAlgorithms)
	if err != nil {
		return Principal{}, tokenError("malformed token: %v", err)
	}
	if len(jws.Signatures) != 1 {
		return Principal{}, tokenError("token must have exactly one signature")
	}
	if alg := jws.Signatures[0].Header.Algorithm; !slices.Contains(o.cfg.Algorithms, alg) {
		return Principal{}, tokenError("token algorithm %q is not accepted (accepted: %s)", alg, strings.Join(o.cfg.Algorithms, ", "))
	}
	v, _, err := o.discover(ctx)
	if err != nil {
		return Principal{}, &Error{Status: http.StatusServiceUnavailable, Reason: "tokens cannot be checked now: " + err.Error()}
	}
	tok, err := v.Verify(ctx, raw)
	if err != nil {
		var ke *kidError
		if errors.As(err, &ke) {
			return Principal{}, tokenError("%v", ke)
		}
		return Principal{}, tokenError("%s", strings.TrimPrefix(strings.ReplaceAll(err.Error(), "id token", "token"), "oidc: "))
	}
	now := o.now()
	if tok.Expiry.IsZero() {
		return Principal{}, tokenError("token has no exp claim")
	}
	if now.After(tok.Expiry.Add(o.cfg.Leeway)) {
		return Principal{}, tokenError("token expired at %s", tok.Expiry.UTC().Format(time.RFC3339))
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return Principal{}, tokenError("token claims: %v", err)
	}
	if nbf, ok := claims["nbf"].(float64); ok {
		if t := time.Unix(int64(nbf), 0); now.Add(o.cfg.Leeway).Before(t) {
			return Principal{}, tokenError("token not valid before %s", t.UTC().Format(time.RFC3339))
		}
	}
	if tok.Subject == "" {
		return Principal{}, tokenError("token has no sub claim")
	}
	if missing := missingScopes(claims, o.cfg.ScopesRequired); len(missing) > 0 {
		return Principal{}, &Error{Status: http.StatusForbidden, Reason: fmt.Sprintf("token lacks scope %s", strings.Join(missing, " "))}
	}
	return Principal{ID: tok.Subject, Groups: stringsClaim(claims, o.cfg.GroupsClaim), Method: "oidc", Claims: claims}, nil
}

// allAlgorithms lets go-jose parse any algorithm, so that a refused one is named.
var allAlgorithms = []jose.SignatureAlgorithm{
	jose.EdDSA, jose.HS256, jose.HS384, jose.HS512, jose.RS256, jose.RS384, jose.RS512,
	jose.ES256, jose.ES384, jose.ES512, jose.PS256, jose.PS384, jose.PS512, "none",
}

func tokenError(format string, args ...any) *Error {
	return &Error{Status: http.StatusUnauthorized, Reason: fmt.Sprintf(format, args...)}
}

// stringsClaim reads a claim holding strings: an array, or one string. name is a claim,
// or else a dotted path into objects.
func stringsClaim(claims map[string]any, name string) []string {
	v, ok := claims[name]
	if !ok && strings.Contains(name, ".") {
		var cur any = claims
		for _, part := range strings.Split(name, ".") {
			m, isMap := cur.(map[string]any)
			if !isMap {
				cur = nil
				break
			}
			cur = m[part]
		}
		v = cur
	}
	switch v := v.(type) {
	case string:
		if v == "" {
			return nil
		}
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// missingScopes returns the required scopes the token lacks; scopes come from "scope" (a
// space-separated string, RFC 9068) or "scp" (an array or a string, as some issuers do).
func missingScopes(claims map[string]any, required []string) []string {
	if len(required) == 0 {
		return nil
	}
	var granted []string
	if s, ok := claims["scope"].(string); ok {
		granted = strings.Fields(s)
	}
	switch s := claims["scp"].(type) {
	case string:
		granted = append(granted, strings.Fields(s)...)
	case []any:
		for _, e := range s {
			if str, ok := e.(string); ok {
				granted = append(granted, str)
			}
		}
	}
	var missing []string
	for _, r := range required {
		if !slices.Contains(granted, r) {
			missing = append(missing, r)
		}
	}
	return missing
}

// ClaimStrings reads a claim holding strings (an array, or one string); name is a claim,
// or else a dotted path into objects (realm_access.roles). The dashboard's sign-on reads
// groups with it as bearer tokens do.
func ClaimStrings(claims map[string]any, name string) []string { return stringsClaim(claims, name) }
