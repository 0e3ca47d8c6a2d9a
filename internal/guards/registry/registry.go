// Package registry is the guard that keeps what servers offer pinned (seed risks 2, 8 and
// 9: shadow MCP, supply chain, rug pulls). Every tool, prompt and resource template a
// server lists is hashed (package pins) and compared with its pin in the store: a new
// definition is pinned on first sight (tofu) or held for review (review); a changed one is
// a rug pull: it is hidden from listings, calls to it are refused, an alert-level audit
// event records the diff, and it stays blocked until `portcullis pins approve`.
//
// Definitions are checked on every listing, again after a server says its list changed
// (notifications/*/list_changed) or after it was restarted or reconnected (Reconnected):
// the first call after either lists the server again before it is passed on. Listings also
// report collisions (two servers offering the same tool name) and imitation (a tool or
// server whose name copies another server's) as findings, in the item's _meta and in the
// audit trail.
//
// Which servers may be fronted at all, and from what source, is decided before the
// gateway starts (internal/registry); this guard does the part that needs the servers'
// answers.
package registry

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	trail "github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
	"github.com/portcullis-mcp/portcullis/internal/pins"
	"github.com/portcullis-mcp/portcullis/internal/store"
)

// Name is the guard's name in configuration and refusals.
const Name = "registry"

// MetaKey lists the registry's findings in a listed item's _meta.
const MetaKey = "io.portcullis/registry"

// Config is the guard's section, guards: registry: {...}.
type Config struct {
	// Pins is the mode for definitions never seen before: tofu (default: pinned on first
	// sight) or review (hidden until a person approves them).
	Pins string `yaml:"pins"`
}

func init() {
	guard.Register(Name, true, func(cfg guard.Config, env guard.Env) (guard.Middleware, error) {
		var c Config
		if cfg != nil {
			if err := cfg.Decode(&c); err != nil {
				return nil, err
			}
		}
		if env.Store == nil {
			if cfg == nil {
				// On by default, but a chain built without a store (unit tests of other
				// packages) has nothing to pin into: serve and run always open one.
				return func(next guard.Handler) guard.Handler { return next }, nil
			}
			return nil, fmt.Errorf("pins need a store (set store: in the configuration)")
		}
		g, err := New(env.Store, c, Options{Logger: env.Logger, Servers: env.Servers})
		if err != nil {
			if loc, ok := cfg.(interface {
				Errorf(field, format string, args ...any) error
			}); ok {
				return nil, loc.Errorf("pins", "%v", err)
			}
			return nil, err
		}
		return g.Middleware(), nil
	})
}

// Recorder records alert events (a *audit.Broker); nil: the process's broker, if any.
type Recorder interface {
	Record(ctx context.Context, e *trail.Event) error
}

// Options parameterize the guard.
type Options struct {
	Logger *slog.Logger
	// Servers are the fronted servers (for fan-out listings and imitation findings).
	Servers []string
	// Recorder receives the alert-level events; nil: the audit guard's broker.
	Recorder Recorder
	// State is what the servers currently offer; nil: the process's, kept across reloads.
	State *State
	// Go runs the listing a list_changed notification starts; nil: in a new goroutine
	// (the notification must not wait for it).
	Go func(func())
}

// Guard is the configured guard.
type Guard struct {
	goFn    func(func())
	checker *pins.Checker
	log     *slog.Logger
	servers []string
	rec     Recorder
	state   *State
}

// New returns the guard deciding against the pins in st.
func New(st store.Pins, c Config, o Options) (*Guard, error) {
	g := &Guard{servers: o.Servers, rec: o.Recorder, state: o.State, goFn: o.Go}
	if g.goFn == nil {
		g.goFn = func(f func()) { go f() }
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	g.log = o.Logger.With("guard", Name)
	if g.state == nil {
		g.state = shared
	}
	ch, err := pins.NewChecker(st, c.Pins, g.report)
	if err != nil {
		return nil, err
	}
	g.checker = ch
	return g, nil
}

// State is what each server offers now, as last listed: the hash of each definition by
// pin key. An entry is forgotten when the server says its list changed or was restarted,
// so that the next call lists it again. Safe for concurrent use.
type State struct {
	mu      sync.RWMutex
	offered map[store.PinKey]string
	// gen counts, per server, the times what it offers was forgotten: a listing that was
	// under way when its server said its list changed must not record what it read.
	gen map[string]uint64
	// hashes remembers the canonical hash of the raw bytes last listed for a key, so that
	// an unchanged listing is not decoded again.
	hashes map[store.PinKey]rawHash
	// inbound is the rest of the newest inbound chain after this guard, through which a
	// list_changed notification (which travels the outbound chain) lists the server again
	// at once.
	inbound atomic.Pointer[chainRest]
}

type chainRest struct{ next guard.Handler }

type rawHash struct {
	raw  [sha256.Size]byte
	hash string
}

// NewState returns an empty state.
func NewState() *State {
	return &State{offered: map[store.PinKey]string{}, gen: map[string]uint64{}, hashes: map[store.PinKey]rawHash{}}
}

// hashOf returns the canonical hash last computed for these raw bytes of k.
func (s *State) hashOf(k store.PinKey, raw [sha256.Size]byte) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	h, ok := s.hashes[k]
	return h.hash, ok && h.raw == raw
}

func (s *State) rememberHash(k store.PinKey, raw [sha256.Size]byte, hash string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.hashes[k]; ok || len(s.hashes) < maxOffered {
		s.hashes[k] = rawHash{raw, hash}
	}
}

// generation returns the server's generation (see gen).
func (s *State) generation(server string) uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.gen[server]
}

// shared is the process's state: a reload builds a new guard, but what servers offer is a
// property of the servers.
var shared = NewState()

// maxOffered bounds the definitions remembered; beyond it, calls list the server first.
const maxOffered = 1 << 16

func (s *State) get(k store.PinKey) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	h, ok := s.offered[k]
	return h, ok
}

// set records what a listing read, unless the server's list changed since the listing
// began (at generation gen).
func (s *State) set(k store.PinKey, hash string, gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen[k.Server] != gen {
		return
	}
	if _, ok := s.offered[k]; ok || len(s.offered) < maxOffered {
		s.offered[k] = hash
	}
}

// changed forgets what server offers of kind (every kind when kind is "") and moves its
// generation: the server said its list changed, or it was restarted.
func (s *State) changed(server, kind string) {
	s.mu.Lock()
	s.gen[server]++
	s.mu.Unlock()
	s.forget(server, kind, nil)
}

// snapshot returns the generations of servers.
func (s *State) snapshot(servers []string) map[string]uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string]uint64, len(servers))
	for _, n := range servers {
		out[n] = s.gen[n]
	}
	return out
}

// forget drops what server offers of kind (every kind when kind is ""), except the names in
// keep.
func (s *State) forget(server, kind string, keep map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.offered {
		if k.Server == server && (kind == "" || k.Kind == kind) && !keep[k.Name] {
			delete(s.offered, k)
		}
	}
}

// Reconnected tells the guard that server was (re)started or reconnected: what it offers
// is checked again before the next call to it.
func Reconnected(server string) { shared.changed(server, "") }

// Reconnected is State's form of the package function.
func (s *State) Reconnected(server string) { s.changed(server, "") }

// listChanged maps a list_changed notification to the kinds it concerns.
var listChanged = map[string][]string{
	"notifications/tools/list_changed":     {pins.KindTool},
	"notifications/prompts/list_changed":   {pins.KindPrompt},
	"notifications/resources/list_changed": {pins.KindTemplate},
}

// listMethod is the list method of each kind.
var listMethod = map[string]string{
	pins.KindTool:     "tools/list",
	pins.KindPrompt:   "prompts/list",
	pins.KindTemplate: "resources/templates/list",
}

// Middleware returns the guard around next.
func (g *Guard) Middleware() guard.Middleware {
	return func(next guard.Handler) guard.Handler {
		rest := &chainRest{next}
		return guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
			if c.Direction == guard.Inbound && g.state.inbound.Load() != rest {
				g.state.inbound.Store(rest) // only inbound chains see inbound calls
			}
			return g.handle(ctx, c, next)
		})
	}
}

// recheckTimeout bounds the listing a list_changed notification starts.
const recheckTimeout = 30 * time.Second

// recheck lists server again in the background after it said its list of kind changed,
// so that a rug pull is caught (and alerted) when it happens, not at the next call. ctx
// carries the client session the notification came on; the listing goes through the rest
// of the inbound chain to that session's connection with the server.
func (g *Guard) recheck(ctx context.Context, c *guard.Call, kind string) {
	rest := g.state.inbound.Load()
	if rest == nil {
		return
	}
	lc := &guard.Call{Msg: &jsonrpc.Message{ID: jsonrpc.ID(`"portcullis-recheck"`), Method: listMethod[kind]}, Direction: guard.Inbound,
		Session: c.Session, Principal: c.Principal, Server: c.Server, Era: c.Era}
	g.goFn(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recheckTimeout)
		defer cancel()
		if _, err := g.relist(ctx, lc, rest.next, c.Server, kind, false); err != nil {
			g.log.LogAttrs(ctx, slog.LevelDebug, "re-listing after list_changed failed; the next call lists again",
				slog.String("upstream", c.Server), slog.String("kind", kind), slog.String("err", err.Error()))
		}
	})
}

func (g *Guard) handle(ctx context.Context, c *guard.Call, next guard.Handler) (*jsonrpc.Message, error) {
	m := c.Msg
	if c.Direction == guard.Outbound {
		if kinds, ok := listChanged[m.Method]; ok && c.Server != "" {
			for _, k := range kinds {
				g.state.changed(c.Server, k)
				g.recheck(ctx, c, k)
			}
			g.log.LogAttrs(ctx, slog.LevelDebug, "list changed; definitions are checked again before the next call",
				slog.String("upstream", c.Server), slog.String("method", m.Method))
		}
		return next.Handle(ctx, c)
	}
	if !m.IsRequest() {
		return next.Handle(ctx, c)
	}
	if kind, field, ok := pins.ListKind(m.Method); ok {
		servers := g.servers
		if c.Server != "" {
			servers = []string{c.Server}
		}
		gens := g.state.snapshot(servers) // before the servers answer
		resp, err := next.Handle(ctx, c)
		if err != nil || resp == nil || resp.Error != nil || len(resp.Result) == 0 {
			return resp, err
		}
		return g.listing(ctx, c, next, kind, field, resp, gens)
	}
	switch m.Method {
	case "tools/call":
		if err := g.allow(ctx, c, next, pins.KindTool, c.Server, c.Name); err != nil {
			return nil, err
		}
	case "prompts/get":
		if err := g.allow(ctx, c, next, pins.KindPrompt, c.Server, c.Name); err != nil {
			return nil, err
		}
	case "completion/complete":
		if ref, ok := jsonrpc.Lookup(m.Params, "ref"); ok {
			if typ, _ := jsonrpc.LookupString(ref, "type"); typ == "ref/prompt" {
				if err := g.allow(ctx, c, next, pins.KindPrompt, c.Server, c.Name); err != nil {
					return nil, err
				}
			}
		}
	case "resources/read", "resources/subscribe":
		if err := g.templateBlocked(ctx, c); err != nil {
			return nil, err
		}
	}
	return next.Handle(ctx, c)
}

// allow decides a call of a tool or prompt: what the server offers now must be the
// approved definition. A definition the gateway has not seen since the server last
// changed its list (or restarted) is listed first.
func (g *Guard) allow(ctx context.Context, c *guard.Call, next guard.Handler, kind, server, name string) error {
	if server == "" || name == "" {
		return nil // not routed to one item: the router refuses it
	}
	k := store.PinKey{Server: server, Kind: kind, Name: name}
	hash, ok := g.state.get(k)
	if !ok {
		// The gateway's own listing does not count against the time the server has to
		// answer the call (limits' call_timeout), and is not cut short by it: the pins it
		// records serve every later call.
		resume := guard.PauseTimeouts(ctx)
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recheckTimeout)
		offered, err := g.relist(lctx, c, next, server, kind, true)
		cancel()
		resume()
		if err != nil {
			return err
		}
		hash, ok = offered[name]
	}
	if !ok {
		return g.deny(k, "%s %q is not in the current listing of server %q, so its definition cannot be checked against its pin (list the %ss again)", kind, name, server, kind)
	}
	if g.checker.Allowed(k, hash) {
		return nil
	}
	if err := g.checker.Refresh(ctx); err != nil { // approved meanwhile by another process?
		return g.fault(err)
	}
	if g.checker.Allowed(k, hash) {
		return nil
	}
	p, _ := g.checker.Lookup(k)
	return g.blocked(k, p, hash)
}

// blocked is the refusal of a call to an item whose offered definition is not approved.
func (g *Guard) blocked(k store.PinKey, p store.Pin, hash string) error {
	r := guard.Deny(Name, jsonrpc.CodeDenied, "")
	r.Data = map[string]any{"server": k.Server, "kind": k.Kind, "name": k.Name, "offered": hash}
	cmd := fmt.Sprintf("portcullis pins diff %s %s, then portcullis pins approve %s %s", k.Server, k.Name, k.Server, k.Name)
	switch {
	case p.Hash == "":
		r.Message = fmt.Sprintf("%s %q of server %q is new and awaits review; it is blocked until a person approves it (%s)", k.Kind, k.Name, k.Server, cmd)
		r.Data["pin"] = pins.StatusNew
	default:
		what := ""
		if p.Pending != nil && p.Pending.Hash == hash {
			if fs := pins.ChangedFields(p.Definition, p.Pending.Definition); len(fs) > 0 {
				what = " (" + strings.Join(fs, ", ") + ")"
			}
		}
		r.Message = fmt.Sprintf("%s %q of server %q changed since it was approved%s; it is blocked until a person approves the change (%s)", k.Kind, k.Name, k.Server, what, cmd)
		r.Data["pin"] = pins.StatusChanged
		r.Data["approved"] = p.Hash
	}
	return r
}

func (g *Guard) deny(k store.PinKey, format string, args ...any) error {
	r := guard.Deny(Name, jsonrpc.CodeDenied, format, args...)
	r.Data = map[string]any{"server": k.Server, "kind": k.Kind, "name": k.Name}
	return r
}

// fault is the refusal when the pins cannot be read: fail closed.
func (g *Guard) fault(err error) error {
	r := guard.Deny(Name, jsonrpc.CodeGatewayError, "the pins could not be read, so the definitions cannot be checked; refused")
	g.log.Error("pins unavailable; refusing", "err", err, "incident", r.Incident)
	return r
}

// templateBlocked refuses reading a resource through a resource template whose definition
// is held back (changed or awaiting review).
func (g *Guard) templateBlocked(ctx context.Context, c *guard.Call) error {
	if c.Server == "" || c.Name == "" {
		return nil
	}
	g.state.mu.RLock()
	var hits []store.PinKey
	var hashes []string
	for k, h := range g.state.offered {
		if k.Server != c.Server || k.Kind != pins.KindTemplate {
			continue
		}
		prefix, _, _ := strings.Cut(k.Name, "{")
		if prefix != "" && strings.HasPrefix(c.Name, prefix) {
			hits = append(hits, k)
			hashes = append(hashes, h)
		}
	}
	g.state.mu.RUnlock()
	for i, k := range hits {
		if g.checker.Allowed(k, hashes[i]) {
			continue
		}
		if err := g.checker.Refresh(ctx); err != nil {
			return g.fault(err)
		}
		if !g.checker.Allowed(k, hashes[i]) {
			p, _ := g.checker.Lookup(k)
			return g.blocked(k, p, hashes[i])
		}
	}
	return nil
}

// maxPages bounds the pages the guard reads when it lists a server itself.
const maxPages = 100

// relist asks server for its whole list of kind through the rest of the chain, observes
// every item (pinning, holding, reporting as a listing does), and returns the hash of each
// item by name. With pinNew false, definitions never pinned are left for the listings
// that show them to a client (a re-listing started by list_changed races the client's own
// listing of a new server, and must not pin what nobody was shown).
func (g *Guard) relist(ctx context.Context, c *guard.Call, next guard.Handler, server, kind string, pinNew bool) (map[string]string, error) {
	if err := g.checker.Refresh(ctx); err != nil {
		return nil, g.fault(err)
	}
	offered := map[string]string{}
	method := listMethod[kind]
	_, field, _ := pins.ListKind(method)
	params := []byte(`{}`)
	seen := map[string]bool{}
	gen := g.state.generation(server)
	for page := 0; page < maxPages; page++ {
		lc := &guard.Call{Msg: &jsonrpc.Message{ID: c.Msg.ID, Method: method, Params: params}, Direction: guard.Inbound,
			Session: c.Session, Principal: c.Principal, Server: server, Era: c.Era, Client: c.Client}
		resp, err := next.Handle(ctx, lc)
		if err != nil {
			return nil, err
		}
		if resp == nil || resp.Error != nil {
			msg := "no answer"
			if resp != nil {
				msg = resp.Error.Message
			}
			return nil, guard.Deny(Name, jsonrpc.CodeUpstreamUnavailable, "server %q could not list its %ss to check them against their pins: %s", server, kind, msg)
		}
		arr, _ := jsonrpc.Lookup(resp.Result, field)
		jsonrpc.Elements(arr, func(item []byte) bool {
			name, _ := jsonrpc.LookupString(item, pins.KeyField(kind))
			if name != "" {
				k := store.PinKey{Server: server, Kind: kind, Name: name}
				if !pinNew {
					if _, pinned := g.checker.Lookup(k); !pinned {
						return true
					}
				}
				if _, hash := g.observe(ctx, c, k, item, gen); hash != "" {
					offered[name] = hash
				}
				seen[name] = true
			}
			return true
		})
		cursor, ok := jsonrpc.Lookup(resp.Result, "nextCursor")
		if !ok || string(cursor) == "null" {
			g.state.forget(server, kind, seen)
			return offered, nil
		}
		params = append(append([]byte(`{"cursor":`), cursor...), '}')
	}
	return offered, nil
}

// observe decides on one offered definition, remembers what the server offers, and
// returns the verdict and the definition's hash ("" when it cannot be hashed).
// gen is the server's generation when the listing began.
func (g *Guard) observe(ctx context.Context, c *guard.Call, k store.PinKey, item []byte, gen uint64) (pins.Verdict, string) {
	raw := sha256.Sum256(item)
	if hash, ok := g.state.hashOf(k, raw); ok && g.checker.Allowed(k, hash) {
		g.state.set(k, hash, gen) // the same bytes as an approved definition: nothing to decode
		return pins.Approved, hash
	}
	canon, hash, err := pins.Canonical(k.Kind, item, k.Name)
	if err != nil {
		g.log.LogAttrs(ctx, slog.LevelWarn, "definition could not be hashed; hidden", slog.String("upstream", k.Server),
			slog.String("kind", k.Kind), slog.String("name", k.Name), slog.String("err", err.Error()))
		return pins.Changed, ""
	}
	v, err := g.checker.Observe(withCall(ctx, c), k, canon, hash)
	if err != nil {
		// Not remembered as offered: the next call of it lists the server again and tries
		// to record the pin again, rather than taking it for a definition under review.
		g.log.LogAttrs(ctx, slog.LevelError, "pin could not be recorded; hidden", slog.String("upstream", k.Server),
			slog.String("kind", k.Kind), slog.String("name", k.Name), slog.String("err", err.Error()))
		return pins.Changed, ""
	}
	g.state.set(k, hash, gen)
	g.state.rememberHash(k, raw, hash)
	return v, hash
}
