package identity

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
)

// MTLS finds the principal of a client certificate. The certificate was verified against
// the client CA bundle during the TLS handshake (a certificate from another CA never gets
// this far); this only names it.
type MTLS struct {
	// Identity is where the principal id comes from: "san" (default: the first URI SAN,
	// else the first DNS SAN, else the subject's CN) or "cn" (the subject's CN only).
	Identity string
}

// Principal returns the principal of the connection's verified client certificate; ok is
// false when the connection has none.
func (m *MTLS) Principal(cs *tls.ConnectionState) (p Principal, ok bool, err error) {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return Principal{}, false, nil
	}
	cert := cs.VerifiedChains[0][0]
	id := certName(cert, m.Identity)
	if id == "" {
		return Principal{}, true, &Error{Status: http.StatusForbidden, Reason: fmt.Sprintf("client certificate %q has no usable name (identity: %s)", cert.Subject, m.identity())}
	}
	sum := sha256.Sum256(cert.Raw)
	return Principal{
		ID:     id,
		Groups: cert.Subject.OrganizationalUnit,
		Method: "mtls",
		Claims: map[string]any{
			"subject": cert.Subject.String(),
			"issuer":  cert.Issuer.String(),
			"serial":  cert.SerialNumber.String(),
			"sha256":  hex.EncodeToString(sum[:]),
		},
	}, true, nil
}

func (m *MTLS) identity() string {
	if m.Identity == "" {
		return "san"
	}
	return m.Identity
}

func certName(c *x509.Certificate, how string) string {
	if how == "cn" {
		return c.Subject.CommonName
	}
	if len(c.URIs) > 0 {
		return c.URIs[0].String()
	}
	if len(c.DNSNames) > 0 {
		return c.DNSNames[0]
	}
	return c.Subject.CommonName
}

// ErrNoClientCert is the reason given when only client certificates are accepted and the
// request has none (possible only when the listener does not require one at handshake).
var ErrNoClientCert = errors.New("a client certificate is required")
