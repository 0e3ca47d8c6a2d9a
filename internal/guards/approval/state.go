package approval

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/store"
)

// Signer signs what the gateway hands out and must get back unchanged: the requestState
// of a 2026-07-28 approval round trip and the approve/deny links of the webhook. HMAC-SHA256
// under the per-install approval key.
type Signer struct {
	key []byte
}

// NewSigner returns a signer with secret key.
func NewSigner(key []byte) *Signer { return &Signer{key: append([]byte(nil), key...)} }

func (s *Signer) mac(parts ...string) []byte {
	h := hmac.New(sha256.New, s.key)
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return h.Sum(nil)
}

// statePrefix marks a requestState as the gateway's.
const statePrefix = "pcap1."

// state is what a requestState holds: the approval it is about and everything the retry
// must match (spec 2026-07-28, multi round-trip requests: the principal, an expiry, and
// the request it belongs to).
type state struct {
	ID      string `json:"id"`
	Binding string `json:"b"` // bindingKey of the held call
	Expires int64  `json:"exp"`
}

func bindingKey(b store.ApprovalBinding) string {
	return strings.Join([]string{b.PrincipalMethod, b.Principal, b.Server, b.Method, b.Tool, b.ArgsHash}, "\x00")
}

// State returns the requestState for approval a.
func (s *Signer) State(a store.Approval) string {
	payload, _ := json.Marshal(state{ID: a.ID, Binding: Hash([]byte(bindingKey(a.ApprovalBinding))), Expires: a.ExpiresAt.Unix()})
	p := base64.RawURLEncoding.EncodeToString(payload)
	return statePrefix + p + "." + base64.RawURLEncoding.EncodeToString(s.mac("state", p))
}

// Errors of a requestState that is the gateway's but is not valid for the retry.
var (
	errStateForged  = errors.New("the requestState was not issued by this gateway or was changed")
	errStateExpired = errors.New("the requestState has expired")
	errStateOther   = errors.New("the requestState belongs to another principal, tool or set of arguments")
)

// isState reports whether v looks like a requestState of the gateway.
func isState(v string) bool { return strings.HasPrefix(v, statePrefix) }

// Check verifies a requestState for a retry with binding b at now and returns what it
// holds (the approval's id and expiry).
func (s *Signer) Check(v string, b store.ApprovalBinding, now time.Time) (state, error) {
	rest, ok := strings.CutPrefix(v, statePrefix)
	if !ok {
		return state{}, errStateForged
	}
	p, sig, ok := strings.Cut(rest, ".")
	if !ok {
		return state{}, errStateForged
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac("state", p)) {
		return state{}, errStateForged
	}
	raw, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return state{}, errStateForged
	}
	var st state
	if json.Unmarshal(raw, &st) != nil || st.ID == "" {
		return state{}, errStateForged
	}
	if now.Unix() > st.Expires {
		return state{}, errStateExpired
	}
	if !hmac.Equal([]byte(st.Binding), []byte(Hash([]byte(bindingKey(b))))) {
		return state{}, errStateOther
	}
	return st, nil
}

// Link decisions.
const (
	LinkApprove = "approve"
	LinkDeny    = "deny"
)

// LinkSig returns the signature of a link that settles approval id with decision
// (approve or deny), valid until expires.
func (s *Signer) LinkSig(id, decision string, expires time.Time) string {
	return base64.RawURLEncoding.EncodeToString(s.mac("link", id, decision, expires.UTC().Format(time.RFC3339)))
}

// CheckLink verifies a link's signature and expiry.
func (s *Signer) CheckLink(id, decision string, expires time.Time, sig string, now time.Time) error {
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac("link", id, decision, expires.UTC().Format(time.RFC3339))) {
		return errors.New("the link's signature is not valid")
	}
	if now.After(expires) {
		return errors.New("the link has expired")
	}
	return nil
}
