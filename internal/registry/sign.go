package registry

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"aead.dev/minisign"
)

// A signature is a standard minisign signature of the registry file (minisign -Vm
// registry.yaml checks it too), stored next to it as FILE.minisig. Its trusted comment, which
// the signature covers as well, lists the digest of every entry, so that when the file no
// longer matches, the error names the entries that were added, removed or changed.

// manifestPrefix starts the trusted comment of a registry signature.
const manifestPrefix = "portcullis-registry v1 entries="

// SignatureFile is where the signature of a registry file is kept.
func SignatureFile(path string) string { return path + ".minisig" }

// Sign returns the signature of r under key.
func Sign(r *Registry, key minisign.PrivateKey) []byte {
	return minisign.SignWithComments(key, r.Data, manifest(r), "signature of a Portcullis registry")
}

func manifest(r *Registry) string {
	parts := make([]string, len(r.Entries))
	for i := range r.Entries {
		parts[i] = r.Entries[i].Name + ":" + r.Entries[i].Digest()
	}
	return manifestPrefix + strings.Join(parts, ",")
}

// ErrUnsigned is returned when a registry has no signature.
var ErrUnsigned = errors.New("the registry is not signed")

// Verify checks the signature of r (read from SignatureFile) under pub. When the file does
// not match its signature, the error names the entries that differ from what was signed.
func Verify(r *Registry, pub minisign.PublicKey) error {
	sigPath := SignatureFile(r.File)
	sig, err := os.ReadFile(sigPath)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s: %w (no %s): sign it with portcullis registry sign", r.File, ErrUnsigned, sigPath)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", r.File, err)
	}
	if minisign.Verify(pub, r.Data, sig) {
		return nil
	}
	var s minisign.Signature
	if err := s.UnmarshalText(sig); err != nil {
		return fmt.Errorf("%s: %s is not a minisign signature: %v", r.File, sigPath, err)
	}
	if s.KeyID != pub.ID() {
		return fmt.Errorf("%s: signed with key %X, not with the configured public key %X", r.File, s.KeyID, pub.ID())
	}
	if !commentAuthentic(&s, pub) || !strings.HasPrefix(s.TrustedComment, manifestPrefix) {
		return fmt.Errorf("%s: the signature %s is invalid (altered, or not made by portcullis registry sign)", r.File, sigPath)
	}
	signed := map[string]string{}
	var order []string
	for _, p := range strings.Split(strings.TrimPrefix(s.TrustedComment, manifestPrefix), ",") {
		name, digest, _ := strings.Cut(p, ":")
		if name != "" {
			signed[name] = digest
			order = append(order, name)
		}
	}
	var diffs []string
	for i := range r.Entries {
		e := &r.Entries[i]
		d, ok := signed[e.Name]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("entry %q (line %d) was added after signing", e.Name, e.Line))
		case d != e.Digest():
			diffs = append(diffs, fmt.Sprintf("entry %q (line %d) was changed after signing", e.Name, e.Line))
		}
	}
	for _, n := range order {
		if !slices.Contains(r.Names(), n) {
			diffs = append(diffs, fmt.Sprintf("entry %q was removed after signing", n))
		}
	}
	if len(diffs) == 0 {
		diffs = append(diffs, "the entries are as signed, but the file's bytes differ (comments or layout changed)")
	}
	return fmt.Errorf("%s does not match its signature: %s", r.File, strings.Join(diffs, "; "))
}

// commentAuthentic checks the signature over the trusted comment alone (minisign signs the
// message signature followed by the comment).
func commentAuthentic(s *minisign.Signature, pub minisign.PublicKey) bool {
	raw, err := base64.StdEncoding.DecodeString(pub.String())
	if err != nil || len(raw) != 10+ed25519.PublicKeySize {
		return false
	}
	msg := append(append([]byte{}, s.Signature[:]...), s.TrustedComment...)
	return ed25519.Verify(ed25519.PublicKey(raw[10:]), msg, s.CommentSignature[:])
}

// PublicKey reads a public key: a minisign public key file, or the key itself (the base64
// line of such a file).
func PublicKey(fileOrKey string) (minisign.PublicKey, error) {
	var pub minisign.PublicKey
	text := []byte(fileOrKey)
	if b, err := os.ReadFile(fileOrKey); err == nil {
		text = b
	} else if !LooksLikeKey(fileOrKey) {
		return pub, fmt.Errorf("public key: %w", err)
	}
	if err := pub.UnmarshalText([]byte(strings.TrimSpace(string(text)))); err != nil {
		return pub, fmt.Errorf("public key %s: %w", fileOrKey, err)
	}
	return pub, nil
}

// LooksLikeKey reports whether s is a minisign public key itself rather than a file name.
func LooksLikeKey(s string) bool {
	return len(s) == 56 && strings.HasPrefix(s, "RW")
}

// PrivateKey reads a minisign private key file, decrypting it with password when it is
// encrypted.
func PrivateKey(path, password string) (minisign.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return minisign.PrivateKey{}, fmt.Errorf("private key: %w", err)
	}
	if minisign.IsEncrypted(b) {
		if password == "" {
			return minisign.PrivateKey{}, fmt.Errorf("private key %s is encrypted: set PORTCULLIS_REGISTRY_PASSWORD", path)
		}
		return minisign.DecryptKey(password, b)
	}
	var k minisign.PrivateKey
	if err := k.UnmarshalText(b); err != nil {
		return k, fmt.Errorf("private key %s: %w", path, err)
	}
	return k, nil
}
