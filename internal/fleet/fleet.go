// Package fleet lets several gateway replicas behind one load balancer serve legacy
// Streamable HTTP sessions without affinity. A legacy session lives in the replica that
// answered its initialize (its server sessions, streams and pending server-to-client
// requests are there), so its id names that replica: the replica's advertised URL and an
// HMAC under the fleet key shared by all replicas. A replica that receives a request for
// a session another replica owns passes the request, unchanged, to the owner and relays
// the answer (JSON or an SSE stream). 2026-07-28 clients have no sessions and need none of
// this.
//
// The id's MAC keeps a client from steering a replica to an address of its choosing: only
// ids minted by a replica of this fleet are forwarded. The owner authenticates the
// forwarded request again, with the same credentials the client sent; a session id never
// authenticates anybody. mTLS client certificates cannot be forwarded: mTLS clients need
// affinity at the load balancer.
package fleet

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"
)

// HeaderForwarded marks a request a replica passed to another; a replica never forwards
// such a request again (no loops between replicas that disagree about an owner).
const HeaderForwarded = "Portcullis-Forwarded-By"

// Sessions mints session ids that name their replica, and finds the owner of an id.
type Sessions struct {
	self string // this replica's advertised base URL, e.g. http://10.0.0.5:8931
	key  []byte
	enc  string // base64url of self, as it appears in ids
}

// New returns the session ids of a replica reachable by its peers at advertise (a base
// URL: scheme, host and port), authenticated with key (at least 32 bytes, the same on every
// replica).
func New(advertise string, key []byte) (*Sessions, error) {
	u, err := url.Parse(advertise)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return nil, fmt.Errorf("fleet: advertise %q must be a base URL such as http://10.0.0.5:8931 (scheme, host, port; no path)", advertise)
	}
	if len(key) < 32 {
		return nil, fmt.Errorf("fleet: the key must have at least 32 bytes (it has %d); generate one with: head -c 32 /dev/urandom | base64", len(key))
	}
	self := u.Scheme + "://" + u.Host
	return &Sessions{self: self, key: key, enc: base64.RawURLEncoding.EncodeToString([]byte(self))}, nil
}

// Self returns this replica's advertised base URL.
func (s *Sessions) Self() string { return s.self }

// NewID returns a fresh session id owned by this replica: 128 random bits, the replica's
// advertised URL and a MAC over both. Ids are visible ASCII, as the spec asks.
func (s *Sessions) NewID() string {
	var b [16]byte
	rand.Read(b[:])
	r := base64.RawURLEncoding.EncodeToString(b[:])
	return r + "." + s.enc + "." + s.mac(r, s.enc)
}

func (s *Sessions) mac(random, enc string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(random))
	m.Write([]byte{'.'})
	m.Write([]byte(enc))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// ErrNotFleetID is returned for an id that no replica of this fleet minted.
var ErrNotFleetID = errors.New("fleet: not a session id of this fleet")

// Owner returns the advertised base URL of the replica that owns id.
func (s *Sessions) Owner(id string) (string, error) {
	random, rest, ok := strings.Cut(id, ".")
	if !ok {
		return "", ErrNotFleetID
	}
	enc, mac, ok := strings.Cut(rest, ".")
	if !ok || !hmac.Equal([]byte(mac), []byte(s.mac(random, enc))) {
		return "", ErrNotFleetID
	}
	owner, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return "", ErrNotFleetID
	}
	return string(owner), nil
}

type ownerKey struct{}

// Handler passes requests for sessions owned by another replica to that replica, and
// serves the rest with next.
func (s *Sessions) Handler(next http.Handler, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.Default()
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			owner, _ := url.Parse(pr.In.Context().Value(ownerKey{}).(string))
			pr.SetURL(owner)
			pr.Out.Host = pr.In.Host // the owner checks the Host the client used (DNS rebinding)
			pr.Out.Header.Set(HeaderForwarded, s.self)
			pr.Out.Header.Del("X-Forwarded-For") // the owner sees this replica; the client's address is logged here
		},
		FlushInterval: -1, // SSE: every event goes out as it arrives
		Transport: &http.Transport{
			Proxy:                 nil, // peers are reached directly, never through an environment proxy
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: 0, // calls may be long; the owner bounds them
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			// The owner is gone (crashed, scaled down): its sessions are too. 404 tells the
			// client to initialize a new session, which this replica will serve.
			logger.Warn("the replica that owns this session did not answer; the client must start a new session",
				"owner", r.Context().Value(ownerKey{}), "err", err)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"session not found (the replica that held it is gone); initialize a new one"}}`))
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sid := r.Header.Get("Mcp-Session-Id")
		if sid == "" || r.Header.Get(HeaderForwarded) != "" {
			next.ServeHTTP(w, r)
			return
		}
		owner, err := s.Owner(sid)
		if err != nil || owner == s.self {
			next.ServeHTTP(w, r)
			return
		}
		proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ownerKey{}, owner)))
	})
}
