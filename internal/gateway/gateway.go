// Package gateway wires front transports, the guard chains, the router and the upstream
// connections together. A Session is one client; it owns one MCP session with each server
// it uses, so server state and server-to-client requests never cross between clients.
package gateway

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/identity"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
	"github.com/portcullis-mcp/portcullis/internal/mcp"
	"github.com/portcullis-mcp/portcullis/internal/store"
	"github.com/portcullis-mcp/portcullis/internal/upstream"
)

// Server is one upstream the gateway fronts.
type Server struct {
	Name string
	Dial upstream.Dial
	// StartTimeout bounds the server's start and handshake (default Options.StartTimeout).
	StartTimeout time.Duration
}

// Options configure a Gateway.
type Options struct {
	Servers []Server
	Guards  map[string]guard.Config
	Limits  jsonrpc.Limits
	Logger  *slog.Logger
	Version string
	// Store is handed to the guards (guard.Env.Store); nil when none is configured.
	Store store.Store
	// StartTimeout bounds how long a new session waits for its servers' handshakes.
	StartTimeout time.Duration
	// SessionIdleTimeout closes a session (and its server sessions) that saw no message
	// and has no call in flight for this long. Default 10 minutes.
	SessionIdleTimeout time.Duration
	// MaxSessions bounds the sessions open at once. Default 10000.
	MaxSessions int
	// NewSessionID mints legacy session ids; default: 128 random bits. Fleets use ids
	// that name their replica (package fleet).
	NewSessionID func() string
}

// Protocol versions the gateway speaks with clients, newest first.
var (
	LegacyVersions = mcp.LegacyVersions
	ModernVersions = mcp.ModernVersions
)

// Chains are the inbound and outbound guard chains; a reload swaps them whole.
type chains struct {
	inbound, outbound guard.Handler
	refused           guard.Handler // nil when no guard records refusals before the chain
	names             []string
}

// Gateway is the MCP gateway.
type Gateway struct {
	opts     Options
	byName   map[string]*Server
	prefix   bool
	logger   *slog.Logger
	chains   atomic.Pointer[chains]
	mu       sync.Mutex
	sessions map[string]*Session
	modern   map[string]*Session // sessionless clients, one pool per principal
	closed   bool
	wg       sync.WaitGroup // calls in flight, for draining
	stop     chan struct{}
}

// New builds a gateway and its guard chains.
func New(opts Options) (*Gateway, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 60 * time.Second
	}
	if opts.SessionIdleTimeout == 0 {
		opts.SessionIdleTimeout = 10 * time.Minute
	}
	if opts.MaxSessions == 0 {
		opts.MaxSessions = 10000
	}
	if opts.NewSessionID == nil {
		opts.NewSessionID = randomID
	}
	g := &Gateway{opts: opts, byName: map[string]*Server{}, logger: opts.Logger,
		sessions: map[string]*Session{}, modern: map[string]*Session{}, stop: make(chan struct{})}
	for i := range opts.Servers {
		s := &opts.Servers[i]
		if _, dup := g.byName[s.Name]; dup {
			return nil, fmt.Errorf("server %q is defined twice", s.Name)
		}
		g.byName[s.Name] = s
	}
	g.prefix = len(opts.Servers) > 1
	if err := g.SetGuards(opts.Guards); err != nil {
		return nil, err
	}
	go g.reap()
	return g, nil
}

// reap closes idle sessions.
func (g *Gateway) reap() {
	every := g.opts.SessionIdleTimeout / 4
	if every > 30*time.Second {
		every = 30 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
		}
		g.mu.Lock()
		var idle []*Session
		for _, s := range g.sessions {
			if s.idleFor() > g.opts.SessionIdleTimeout {
				idle = append(idle, s)
			}
		}
		g.mu.Unlock()
		for _, s := range idle {
			g.logger.Info("closing idle session", "session", s.id, "principal", s.principal.ID)
			s.Close()
		}
	}
}

// SetGuards builds new chains from guard sections and swaps them in; on error the old
// chains stay, and so does every guard's shared state (the setups stage their switches in
// one transaction, committed only when every chain was built).
func (g *Gateway) SetGuards(sections map[string]guard.Config) error {
	txn := guard.NewTxn()
	env := guard.Env{Logger: g.logger, Store: g.opts.Store, Servers: g.Servers(), Txn: txn}
	in, names, err := guard.Build(guard.HandlerFunc(g.terminal), sections, env)
	if err != nil {
		txn.Abort()
		return err
	}
	out, _, err := guard.Build(guard.HandlerFunc(g.outboundTerminal), sections, env)
	if err != nil {
		txn.Abort()
		return err
	}
	// Calls the router refuses (an unknown server prefix) never reach the chain; they pass
	// through the audit guard alone, so that the trail records them too.
	var refused guard.Handler
	if slices.Contains(names, recorderGuard) {
		if refused, err = guard.BuildOnly(guard.HandlerFunc(routeRefusal), sections, env, recorderGuard); err != nil {
			txn.Abort()
			return err
		}
	}
	g.chains.Store(&chains{inbound: in, outbound: out, refused: refused, names: names})
	txn.Commit()
	return nil
}

// recorderGuard is the guard that sees the calls refused before the chain.
const recorderGuard = "audit"

type routeErrKey struct{}

// routeRefusal is the end of the chain of a call the router refused: the router's error,
// as a refusal (with an incident id the trail and the client share).
func routeRefusal(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
	return nil, ctx.Value(routeErrKey{}).(*guard.Refusal)
}

// asRouteRefusal turns a router's error into the refusal the client gets.
func asRouteRefusal(err error) *guard.Refusal {
	je, _ := guard.ErrorFor(err)
	return guard.Deny("router", je.Code, "%s", je.Message)
}

// Guards names the guards in the chain, outermost first.
func (g *Gateway) Guards() []string { return g.chains.Load().names }

// Servers returns the server names in configuration order.
func (g *Gateway) Servers() []string {
	var ns []string
	for _, s := range g.opts.Servers {
		ns = append(ns, s.Name)
	}
	return ns
}

// Limits are the message limits of the front side.
func (g *Gateway) Limits() jsonrpc.Limits { return g.opts.Limits }

// Client is how a session reaches its client: the front transport implements it.
type Client interface {
	// Notify sends a notification. ctx may carry the client request it relates to.
	Notify(ctx context.Context, m *jsonrpc.Message) error
	// Request sends a request and waits for the client's response.
	Request(ctx context.Context, m *jsonrpc.Message) (*jsonrpc.Message, error)
}

// NewSession starts a session for a client. Era is "legacy" (initialize comes next).
func (g *Gateway) NewSession(p identity.Principal, c Client) (*Session, error) {
	return g.newSession(g.all(), p, c)
}

func (g *Gateway) newSession(sc scope, p identity.Principal, c Client) (*Session, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, errors.New("gateway is shutting down")
	}
	if len(g.sessions) >= g.opts.MaxSessions {
		return nil, fmt.Errorf("too many open sessions (limit %d); try again later", g.opts.MaxSessions)
	}
	s := newSession(g, sc, g.opts.NewSessionID(), p, "legacy", c)
	g.sessions[s.id] = s
	return s, nil
}

// Session returns a live session by id.
func (g *Gateway) Session(id string) *Session {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.sessions[id]
}

// ModernSession returns the shared session for sessionless (2026-07-28) clients of
// principal p, creating it and connecting to the servers on first use.
func (g *Gateway) ModernSession(ctx context.Context, p identity.Principal, c Client) (*Session, error) {
	return g.modernSession(ctx, g.all(), p, c)
}

func (g *Gateway) modernSession(ctx context.Context, sc scope, p identity.Principal, c Client) (*Session, error) {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil, errors.New("gateway is shutting down")
	}
	key := sc.only + "\x00" + p.Method + "\x00" + p.ID
	s := g.modern[key]
	if s == nil {
		s = newSession(g, sc, "", p, "modern", c)
		g.modern[key] = s
		g.mu.Unlock()
		s.start(ctx, upstream.Hello{ProtocolVersion: LegacyVersions[0]})
		return s, nil
	}
	g.mu.Unlock()
	<-s.started
	return s, nil
}

func (g *Gateway) forget(s *Session) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.sessions[s.id] == s {
		delete(g.sessions, s.id)
	}
}

// Shutdown stops taking new sessions, waits for calls in flight (until ctx ends), then
// closes every session and its servers.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	if !g.closed {
		close(g.stop)
	}
	g.closed = true
	g.mu.Unlock()
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("calls still in flight at shutdown: %w", ctx.Err())
	}
	g.mu.Lock()
	var all []*Session
	for _, s := range g.sessions {
		all = append(all, s)
	}
	for _, s := range g.modern {
		all = append(all, s)
	}
	g.sessions, g.modern = map[string]*Session{}, map[string]*Session{}
	g.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range all {
		wg.Add(1)
		go func() { defer wg.Done(); s.Close() }()
	}
	wg.Wait()
	return err
}

func randomID() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// scope is what a session reaches: every server (names prefixed when there are several),
// or the one server of a per-server endpoint (only).
type scope struct {
	servers []Server
	prefix  bool
	only    string
}

func (g *Gateway) all() scope { return scope{servers: g.opts.Servers, prefix: g.prefix} }

// View is the gateway restricted to one server: the endpoint of a client configured for
// that server alone. Its sessions reach only that server, under the server's own tool,
// prompt and resource names, through the same guard chains as the gateway's.
type View struct {
	g  *Gateway
	sc scope
}

// Only returns the view of server name.
func (g *Gateway) Only(name string) (*View, error) {
	s, ok := g.byName[name]
	if !ok {
		return nil, fmt.Errorf("no server %q", name)
	}
	return &View{g: g, sc: scope{servers: []Server{*s}, only: name}}, nil
}

// Server names the view's server.
func (v *View) Server() string { return v.sc.only }

// Limits are the message limits of the front side.
func (v *View) Limits() jsonrpc.Limits { return v.g.Limits() }

// NewSession starts a session of the view's server for a client (see Gateway.NewSession).
func (v *View) NewSession(p identity.Principal, c Client) (*Session, error) {
	return v.g.newSession(v.sc, p, c)
}

// HandleModern serves one sessionless request for the view's server (see
// Gateway.HandleModern).
func (v *View) HandleModern(ctx context.Context, p identity.Principal, c Client, m *jsonrpc.Message) *jsonrpc.Message {
	return v.g.handleModern(ctx, v.sc, p, c, m)
}

type sessionKey struct{}

func sessionFrom(ctx context.Context) *Session {
	s, _ := ctx.Value(sessionKey{}).(*Session)
	return s
}
