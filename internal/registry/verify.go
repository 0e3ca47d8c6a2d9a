package registry

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"time"
)

// ErrRefused marks a server the registry refused at start or connection.
var ErrRefused = errors.New("refused by the registry")

// BinaryCheck returns the check of a stdio server's executable against e.SHA256, for every
// start (nil when the entry pins no executable). path is the executable as resolved.
func BinaryCheck(e *Entry) func(path string) error {
	if e == nil || e.SHA256 == "" {
		return nil
	}
	want := e.SHA256
	return func(path string) error {
		got, err := HashFile(path)
		if err != nil {
			return fmt.Errorf("%w: server %q: the executable %s cannot be hashed: %v", ErrRefused, e.Name, path, err)
		}
		if got != want {
			return fmt.Errorf("%w: server %q: the executable %s has SHA-256 %s, the registry says %s (owner %s): it was replaced or updated; check it, then update the registry",
				ErrRefused, e.Name, path, got, want, e.Owner)
		}
		return nil
	}
}

// SPKI returns the pin of a certificate: base64 SHA-256 of its SubjectPublicKeyInfo.
func SPKI(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// PinnedTLS returns base (or a fresh configuration) requiring, besides the usual
// verification, that the server's certificate key is one of pins.
func PinnedTLS(base *tls.Config, server string, pins []string) *tls.Config {
	cfg := &tls.Config{}
	if base != nil {
		cfg = base.Clone()
	}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return fmt.Errorf("%w: server %q presented no certificate", ErrRefused, server)
		}
		got := SPKI(cs.PeerCertificates[0])
		if !slices.Contains(pins, got) {
			return fmt.Errorf("%w: server %q: its certificate key %s is not the pinned one (spki_sha256 in the registry)", ErrRefused, server, got)
		}
		return nil
	}
	return cfg
}

// FetchSPKI connects to an https URL and returns the pin of the certificate it presents
// (for writing registry entries). The certificate is verified as usual unless insecure.
func FetchSPKI(ctx context.Context, raw string, insecure bool) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("%q is not an https URL", raw)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "443")
	}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: &tls.Config{ServerName: u.Hostname(), InsecureSkipVerify: insecure}}
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	cs := conn.(*tls.Conn).ConnectionState()
	if len(cs.PeerCertificates) == 0 {
		return "", errors.New("no certificate")
	}
	return SPKI(cs.PeerCertificates[0]), nil
}
