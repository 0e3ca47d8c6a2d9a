// Package identity says who is calling: the principal a front transport authenticated, and
// the authentication methods that find it (API keys, OIDC/JWT bearer tokens, mTLS client
// certificates), combined per listener by an Authenticator.
package identity

import "context"

// Principal is an authenticated caller.
type Principal struct {
	ID     string   // stable identifier: key name, JWT subject, certificate name, OS user
	Groups []string // groups or roles
	Method string   // how it was authenticated: "none", "apikey", "oidc", "mtls", "os"
	// Claims are what the credential said about the caller, for policy rules
	// (principal.claims): a JWT's claims, a key's id, a certificate's subject. Read-only:
	// it may be shared by every request made with the same credential.
	Claims map[string]any
}

// Anonymous is the principal of a listener with auth: none.
var Anonymous = Principal{ID: "anonymous", Method: "none"}

type ctxKey struct{}

// With returns ctx carrying p.
func With(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// Lookup returns the principal in ctx, if any.
func Lookup(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(Principal)
	return p, ok
}

// From returns the principal in ctx, or Anonymous.
func From(ctx context.Context) Principal {
	if p, ok := ctx.Value(ctxKey{}).(Principal); ok {
		return p
	}
	return Anonymous
}
