package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/identity"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
	"github.com/portcullis-mcp/portcullis/internal/upstream"
)

// Session is one client of the gateway.
type Session struct {
	g         *Gateway
	id        string
	principal identity.Principal
	era       string
	client    Client
	// servers are the servers this session reaches (every one of the gateway, or the one
	// of a per-server endpoint); prefix says whether names carry their server's prefix.
	servers []Server
	prefix  bool
	// lastName is the last tool or prompt name routed: its JSON and its value.
	lastName atomic.Pointer[[2]string]

	started    chan struct{}
	mu         sync.Mutex
	conns      map[string]*upstream.Conn
	initRes    json.RawMessage   // what the client was told at initialize
	clientCaps json.RawMessage   // what the client declared at initialize
	caller     *caller           // the legacy client as guards see it, made on first use after initialize
	owners     map[string]string // resource URI or template -> server, from listings
	active     map[string]context.CancelCauseFunc
	closed     bool
	lastUse    time.Time
	pinned     bool
	done       chan struct{}
}

func newSession(g *Gateway, sc scope, id string, p identity.Principal, era string, c Client) *Session {
	return &Session{g: g, id: id, principal: p, era: era, client: c, servers: sc.servers, prefix: sc.prefix, started: make(chan struct{}),
		conns: map[string]*upstream.Conn{}, owners: map[string]string{}, active: map[string]context.CancelCauseFunc{},
		lastUse: time.Now(), done: make(chan struct{})}
}

// Pin exempts the session from idle expiry (a stdio client owns its session for as long as
// it is connected).
func (s *Session) Pin() {
	s.mu.Lock()
	s.pinned = true
	s.mu.Unlock()
}

// Done is closed when the session is closed.
func (s *Session) Done() <-chan struct{} { return s.done }

func (s *Session) idleFor() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pinned || len(s.active) > 0 || s.closed {
		return 0
	}
	return time.Since(s.lastUse)
}

// ID is the session id ("" for the shared session of sessionless clients).
func (s *Session) ID() string { return s.id }

// Principal is who owns the session.
func (s *Session) Principal() identity.Principal { return s.principal }

// start opens an MCP session with every server, in parallel.
func (s *Session) start(ctx context.Context, hello upstream.Hello) {
	defer close(s.started)
	ctx = context.WithoutCancel(ctx) // a client that hangs up does not abort a server's start
	var wg sync.WaitGroup
	for _, srv := range s.servers {
		c := upstream.NewConn(srv.Name, srv.Dial, hello, s.fromServer(srv.Name), s.g.logger)
		s.mu.Lock()
		s.conns[srv.Name] = c
		s.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			timeout := srv.StartTimeout
			if timeout <= 0 {
				timeout = s.g.opts.StartTimeout
			}
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			if err := c.Start(ctx); err != nil {
				unreachable(srv.Name)
				s.g.logger.Warn("server unavailable for new session", "upstream", srv.Name, "session", s.id, "err", err)
			} else {
				reached(srv.Name)
			}
		}()
	}
	wg.Wait()
}

func (s *Session) conn(name string) *upstream.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns[name]
}

// Close ends the session and its server sessions.
func (s *Session) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.done)
	conns := s.conns
	for _, c := range s.active {
		c(errSessionClosed)
	}
	s.mu.Unlock()
	s.g.forget(s)
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() { defer wg.Done(); c.Close() }()
	}
	wg.Wait()
}

// Handle processes one message from the client and returns the response to send (nil for
// notifications). It never returns a Go error: every failure is a JSON-RPC error response.
func (s *Session) Handle(ctx context.Context, m *jsonrpc.Message) *jsonrpc.Message {
	s.g.mu.Lock()
	if s.g.closed {
		s.g.mu.Unlock()
		if m.IsRequest() {
			return jsonrpc.NewError(m.ID, jsonrpc.Errorf(jsonrpc.CodeUpstreamUnavailable, "the gateway is shutting down; retry on another instance"))
		}
		return nil
	}
	s.g.wg.Add(1)
	s.g.mu.Unlock()
	defer s.g.wg.Done()
	s.mu.Lock()
	s.lastUse = time.Now()
	s.mu.Unlock()
	ctx = context.WithValue(ctx, sessionKey{}, s)
	// The principal of this request, as its credentials say now (groups and claims can
	// change while a session lives); a session only ever serves the principal it was
	// opened for.
	if rp, ok := identity.Lookup(ctx); !ok || rp.ID != s.principal.ID || rp.Method != s.principal.Method {
		ctx = identity.With(ctx, s.principal)
	}
	if m.IsRequest() {
		ctx2, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		key := string(m.ID)
		s.mu.Lock()
		s.active[key] = cancel
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			delete(s.active, key)
			s.mu.Unlock()
		}()
		ctx = ctx2
	}
	resp := s.handle(ctx, m)
	if errors.Is(context.Cause(ctx), errCancelledByClient) {
		return nil // the client cancelled it: no response is sent (MCP cancellation)
	}
	if resp != nil {
		resp.ID = m.ID
	}
	return resp
}

// CancelRequest cancels the request with id that the session is handling, as the client's
// notifications/cancelled would, except that its response is still produced (with the
// cancellation error) for a client that resumes its stream. It reports whether such a
// request was running.
func (s *Session) CancelRequest(id jsonrpc.ID, cause error) bool {
	s.mu.Lock()
	c := s.active[string(id)]
	s.mu.Unlock()
	if c != nil {
		c(cause)
	}
	return c != nil
}

var (
	errCancelledByClient = errors.New("cancelled by the client")
	errSessionClosed     = errors.New("the session was closed")
)

func (s *Session) handle(ctx context.Context, m *jsonrpc.Message) *jsonrpc.Message {
	switch m.Method {
	case "initialize":
		return s.initialize(ctx, m)
	case "ping":
		return jsonrpc.NewResult(m.ID, json.RawMessage(`{}`))
	case "notifications/initialized":
		return nil
	case "notifications/cancelled":
		if id, ok := jsonrpc.Lookup(m.Params, "requestId"); ok {
			s.mu.Lock()
			c := s.active[string(id)]
			s.mu.Unlock()
			if c != nil {
				c(errCancelledByClient)
			}
		}
		return nil
	}
	call := &guard.Call{Msg: m, Direction: guard.Inbound, Session: s.id, Principal: identity.From(ctx), Era: s.era, Client: s.callerFor(m)}
	if err := s.route(call); err != nil {
		if ch := s.g.chains.Load(); ch.refused != nil && m.IsRequest() {
			r := asRouteRefusal(err)
			_, err = ch.refused.Handle(context.WithValue(ctx, routeErrKey{}, r), call)
		}
		return s.errorResponse(m, err)
	}
	resp, err := s.g.chains.Load().inbound.Handle(ctx, call)
	if err != nil {
		return s.errorResponse(m, err)
	}
	if m.IsNotification() {
		return nil
	}
	if resp == nil {
		return s.errorResponse(m, errors.New("no response from the chain"))
	}
	return resp
}

func (s *Session) errorResponse(m *jsonrpc.Message, err error) *jsonrpc.Message {
	if m.IsNotification() {
		s.g.logger.Warn("notification refused", "method", m.Method, "session", s.id, "err", err)
		return nil
	}
	je, incident := guard.ErrorFor(err)
	if incident != "" {
		s.g.logger.Warn("call refused", "method", m.Method, "session", s.id, "principal", s.principal.ID, "incident", incident, "err", err)
	}
	return jsonrpc.NewError(m.ID, je)
}

// initialize opens the client's sessions with the servers, using the client's version and
// capabilities, and answers with the servers' merged capabilities.
func (s *Session) initialize(ctx context.Context, m *jsonrpc.Message) *jsonrpc.Message {
	var p struct {
		ProtocolVersion string          `json:"protocolVersion"`
		Capabilities    json.RawMessage `json:"capabilities"`
		ClientInfo      json.RawMessage `json:"clientInfo"`
	}
	if err := json.Unmarshal(m.Params, &p); err != nil || p.ProtocolVersion == "" {
		return jsonrpc.NewError(m.ID, jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "initialize needs protocolVersion, capabilities and clientInfo"))
	}
	s.mu.Lock()
	again := s.initRes != nil
	s.mu.Unlock()
	if again {
		return jsonrpc.NewError(m.ID, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "session is already initialized"))
	}
	version := LegacyVersions[0]
	if slices.Contains(LegacyVersions, p.ProtocolVersion) {
		version = p.ProtocolVersion
	}
	s.start(ctx, upstream.Hello{ProtocolVersion: version, Capabilities: p.Capabilities, ClientInfo: p.ClientInfo})
	res := s.mergedInit(version)
	s.mu.Lock()
	s.initRes = res
	s.clientCaps = p.Capabilities
	s.caller = nil
	s.mu.Unlock()
	return jsonrpc.NewResult(m.ID, res)
}

// mergedInit builds the initialize result: with one server its own, otherwise the union of
// the servers' capabilities under the gateway's name.
func (s *Session) mergedInit(version string) json.RawMessage {
	var infos []*upstream.InitResult
	var names []string
	for _, srv := range s.servers {
		if info := s.conn(srv.Name).Info(); info != nil {
			infos = append(infos, info)
			names = append(names, srv.Name)
		}
	}
	caps := mergeCapabilities(infos)
	res := map[string]any{
		"protocolVersion": version,
		"capabilities":    caps,
		"serverInfo":      map[string]any{"name": "portcullis", "version": s.g.opts.Version},
	}
	if !s.prefix && len(infos) == 1 {
		res["serverInfo"] = infos[0].ServerInfo
		if infos[0].Instructions != "" {
			res["instructions"] = infos[0].Instructions
		}
	} else {
		var b strings.Builder
		for i, info := range infos {
			if info.Instructions != "" {
				fmt.Fprintf(&b, "## Server %q (tools prefixed %s__)\n%s\n\n", names[i], names[i], info.Instructions)
			}
		}
		if b.Len() > 0 {
			res["instructions"] = strings.TrimSpace(b.String())
		}
	}
	out, _ := json.Marshal(res)
	return out
}

// mergeCapabilities unions server capabilities. Sub-flags (listChanged, subscribe) are true
// when any server has them.
func mergeCapabilities(infos []*upstream.InitResult) map[string]any {
	caps := map[string]any{}
	for _, info := range infos {
		var c map[string]json.RawMessage
		if json.Unmarshal(info.Capabilities, &c) != nil {
			continue
		}
		for k, v := range c {
			var sub map[string]any
			if json.Unmarshal(v, &sub) != nil {
				continue
			}
			prev, _ := caps[k].(map[string]any)
			if prev == nil {
				prev = map[string]any{}
			}
			for sk, sv := range sub {
				if b, ok := sv.(bool); ok {
					if pb, _ := prev[sk].(bool); pb {
						b = true
					}
					prev[sk] = b
				} else if _, exists := prev[sk]; !exists {
					prev[sk] = sv
				}
			}
			caps[k] = prev
		}
	}
	return caps
}

const sep = "__"

// lookupName returns the string member "name" of params. The last name looked up is kept
// with the JSON it came from: a client that calls the same tool again costs no copy.
func (s *Session) lookupName(params []byte) (string, bool) {
	raw, ok := jsonrpc.Lookup(params, "name")
	if !ok {
		return "", false
	}
	if p := s.lastName.Load(); p != nil && p[0] == string(raw) {
		return p[1], true
	}
	name, ok := jsonrpc.LookupString(params, "name")
	if ok {
		s.lastName.Store(&[2]string{string(raw), name})
	}
	return name, ok
}

// route decides which server a client message goes to, and rewrites prefixed names.
func (s *Session) route(c *guard.Call) error {
	m := c.Msg
	single := ""
	if !s.prefix && len(s.servers) == 1 {
		single = s.servers[0].Name
	}
	switch m.Method {
	case "tools/call", "prompts/get":
		name, ok := s.lookupName(m.Params)
		if !ok {
			return jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "%s needs a string \"name\"", m.Method)
		}
		server, local, err := s.split(name, single)
		if err != nil {
			return err
		}
		c.Server, c.Name = server, local
		if local != name {
			return rewrite(c, "name", local)
		}
	case "resources/read", "resources/subscribe", "resources/unsubscribe":
		uri, ok := jsonrpc.LookupString(m.Params, "uri")
		if !ok {
			return jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "%s needs a string \"uri\"", m.Method)
		}
		c.Name = uri
		c.Server = single
		if c.Server == "" {
			c.Server = s.resourceOwner(uri)
		}
		if c.Server == "" {
			return jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "resource %q is not offered by any server (list resources first)", uri)
		}
	case "completion/complete":
		ref, ok := jsonrpc.Lookup(m.Params, "ref")
		if !ok {
			return jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "completion/complete needs \"ref\"")
		}
		typ, _ := jsonrpc.LookupString(ref, "type")
		switch typ {
		case "ref/prompt":
			name, _ := jsonrpc.LookupString(ref, "name")
			server, local, err := s.split(name, single)
			if err != nil {
				return err
			}
			c.Server, c.Name = server, local
			if local != name {
				nref, err := jsonrpc.Set(ref, "name", jsonrpc.Quote(local))
				if err != nil {
					return err
				}
				params, err := jsonrpc.Set(m.Params, "ref", nref)
				if err != nil {
					return err
				}
				nm := *m
				nm.Params = params
				c.Msg = &nm
			}
		default:
			uri, _ := jsonrpc.LookupString(ref, "uri")
			c.Name = uri
			c.Server = single
			if c.Server == "" {
				c.Server = s.resourceOwner(uri)
			}
			if c.Server == "" {
				return jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "resource %q is not offered by any server", uri)
			}
		}
	case "tools/list", "prompts/list", "resources/list", "resources/templates/list", "logging/setLevel":
		c.Server = single // fan out when several
	default:
		c.Server = single
		if strings.HasPrefix(m.Method, "notifications/") {
			return nil // fan out
		}
		if c.Server == "" {
			return jsonrpc.Errorf(jsonrpc.CodeMethodNotFound, "method %q cannot be routed: the gateway fronts several servers", m.Method)
		}
	}
	return nil
}

// split resolves a client-visible name to server and local name.
func (s *Session) split(name, single string) (server, local string, err error) {
	if single != "" {
		return single, name, nil
	}
	i := strings.Index(name, sep)
	if i <= 0 {
		return "", "", jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "unknown name %q: names are prefixed with their server (server%sname)", name, sep)
	}
	server, local = name[:i], name[i+len(sep):]
	if !s.has(server) {
		return "", "", jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "unknown server %q in name %q", server, name)
	}
	return server, local, nil
}

// has reports whether the session reaches server name.
func (s *Session) has(name string) bool {
	for _, srv := range s.servers {
		if srv.Name == name {
			return true
		}
	}
	return false
}

func rewrite(c *guard.Call, key, val string) error {
	params, err := jsonrpc.Set(c.Msg.Params, key, jsonrpc.Quote(val))
	if err != nil {
		return jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "params must be an object")
	}
	nm := *c.Msg
	nm.Params = params
	c.Msg = &nm
	return nil
}

func (s *Session) resourceOwner(uri string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o := s.owners[uri]; o != "" {
		return o
	}
	// Templates: the longest literal prefix before the first '{' that matches.
	best, bestLen := "", -1
	for k, v := range s.owners {
		i := strings.IndexByte(k, '{')
		if i < 0 {
			continue
		}
		if strings.HasPrefix(uri, k[:i]) && i > bestLen {
			best, bestLen = v, i
		}
	}
	return best
}

// terminal is the end of the inbound chain: it sends the call to its server, or fans out.
func (g *Gateway) terminal(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
	s := sessionFrom(ctx)
	if s == nil {
		return nil, errors.New("no session in context")
	}
	if err := guard.Unheld(c); err != nil {
		return nil, err
	}
	m := c.Msg
	if c.Server != "" {
		conn := s.conn(c.Server)
		if conn == nil {
			return nil, jsonrpc.Errorf(jsonrpc.CodeUpstreamUnavailable, "server %q is not connected", c.Server)
		}
		if m.IsNotification() {
			return nil, conn.Notify(ctx, m)
		}
		resp, err := conn.Call(ctx, m)
		if err != nil {
			err = upstreamError(c.Server, err)
			if je := (*jsonrpc.Error)(nil); errors.As(err, &je) && (je.Code == jsonrpc.CodeUpstreamUnavailable || je.Code == jsonrpc.CodeUpstreamTimeout) {
				unreachable(c.Server)
			}
			return nil, err
		}
		reached(c.Server)
		return resp, nil
	}
	if m.IsNotification() {
		for _, srv := range s.servers {
			if conn := s.conn(srv.Name); conn != nil && conn.Info() != nil {
				_ = conn.Notify(ctx, m)
			}
		}
		return nil, nil
	}
	switch m.Method {
	case "tools/list":
		return s.mergeList(ctx, m, "tools", "tools", "name")
	case "prompts/list":
		return s.mergeList(ctx, m, "prompts", "prompts", "name")
	case "resources/list":
		return s.mergeList(ctx, m, "resources", "resources", "uri")
	case "resources/templates/list":
		return s.mergeList(ctx, m, "resources", "resourceTemplates", "uriTemplate")
	case "logging/setLevel":
		for _, srv := range s.servers {
			if conn := s.conn(srv.Name); conn != nil && conn.Info().Has("logging") {
				if _, err := conn.Call(ctx, m); err != nil {
					return nil, upstreamError(srv.Name, err)
				}
			}
		}
		return jsonrpc.NewResult(m.ID, json.RawMessage(`{}`)), nil
	}
	return nil, jsonrpc.Errorf(jsonrpc.CodeMethodNotFound, "method %q not found", m.Method)
}

func upstreamError(server string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return jsonrpc.Errorf(jsonrpc.CodeUpstreamTimeout, "server %q did not answer in time", server)
	}
	if errors.Is(err, context.Canceled) {
		return jsonrpc.Errorf(jsonrpc.CodeInternalError, "request cancelled")
	}
	var je *jsonrpc.Error
	if errors.As(err, &je) {
		return je
	}
	var se *upstream.StatusError
	if errors.As(err, &se) && !se.SessionExpired && methodNotHandled(se) {
		return jsonrpc.Errorf(jsonrpc.CodeMethodNotFound, "method not found: server %q does not handle it", server)
	}
	msg := err.Error()
	// Quoted, as upstream errors name servers: a short name is often a substring of a word.
	if !strings.Contains(msg, strconv.Quote(server)) {
		msg = fmt.Sprintf("server %q: %s", server, msg)
	}
	return jsonrpc.Errorf(jsonrpc.CodeUpstreamUnavailable, "%s", msg)
}

// methodNotHandled reports whether an HTTP server's refusal of a request says the method
// is unknown to it (some servers answer 400 or 404 with a plain-text reason rather than a
// JSON-RPC error).
func methodNotHandled(se *upstream.StatusError) bool {
	if se.StatusCode != 400 && se.StatusCode != 404 {
		return false
	}
	b := strings.ToLower(se.Body)
	return strings.Contains(b, "not handled") || strings.Contains(b, "method not found") || strings.Contains(b, "unsupported method") || strings.Contains(b, "unknown method") || (strings.Contains(b, "unsupported") && strings.Contains(b, "rpc"))
}

// maxPages bounds how many pages the gateway reads from one server when it merges lists.
const maxPages = 100

// mergeList asks every server with capability cap for all pages of a list and returns one
// list with names prefixed by server. Collisions are reported, never resolved silently.
func (s *Session) mergeList(ctx context.Context, m *jsonrpc.Message, cap, field, key string) (*jsonrpc.Message, error) {
	type part struct {
		server string
		items  [][]byte
		err    error
	}
	servers := s.servers
	parts := make([]part, len(servers))
	var wg sync.WaitGroup
	for i, srv := range servers {
		conn := s.conn(srv.Name)
		if conn == nil || !conn.Info().Has(cap) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			parts[i] = part{server: srv.Name}
			params := json.RawMessage(`{}`)
			for page := 0; page < maxPages; page++ {
				resp, err := conn.Call(ctx, &jsonrpc.Message{ID: m.ID, Method: m.Method, Params: params})
				if err != nil {
					parts[i].err = err
					return
				}
				if resp.Error != nil {
					parts[i].err = resp.Error
					return
				}
				arr, _ := jsonrpc.Lookup(resp.Result, field)
				jsonrpc.Elements(arr, func(e []byte) bool { parts[i].items = append(parts[i].items, e); return true })
				cursor, ok := jsonrpc.Lookup(resp.Result, "nextCursor")
				if !ok || string(cursor) == "null" {
					return
				}
				params, _ = json.Marshal(map[string]json.RawMessage{"cursor": cursor})
			}
		}()
	}
	wg.Wait()
	out := []byte(`[`)
	seen := map[string]string{}
	owners := map[string]string{}
	n := 0
	for _, p := range parts {
		if p.server == "" {
			continue
		}
		if p.err != nil {
			s.g.logger.Warn("server left out of a merged list", "upstream", p.server, "method", m.Method, "err", p.err)
			continue
		}
		for _, item := range p.items {
			name, _ := jsonrpc.LookupString(item, key)
			visible := name
			if key == "name" {
				visible = p.server + sep + name
				var err error
				item, err = jsonrpc.Set(item, "name", jsonrpc.Quote(visible))
				if err != nil {
					continue
				}
			}
			if prev, dup := seen[visible]; dup {
				s.g.logger.Warn("name collision between servers; second left out", "name", visible, "kept", prev, "dropped", p.server, "method", m.Method)
				continue
			}
			seen[visible] = p.server
			if key != "name" {
				// Only the listed item's server owns it: a dropped duplicate must not
				// take reads of the URI the client was shown.
				owners[name] = p.server
			}
			if n > 0 {
				out = append(out, ',')
			}
			out = append(out, item...)
			n++
		}
	}
	out = append(out, ']')
	if len(owners) > 0 {
		s.mu.Lock()
		for k, v := range owners {
			s.owners[k] = v
		}
		s.mu.Unlock()
	}
	res := append(append(append([]byte(`{"`), field...), `":`...), out...)
	res = append(res, '}')
	return jsonrpc.NewResult(m.ID, json.RawMessage(res)), nil
}
