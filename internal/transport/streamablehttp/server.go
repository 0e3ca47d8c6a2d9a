// Package streamablehttp is the gateway's front side over MCP Streamable HTTP: legacy
// sessions (initialize, Mcp-Session-Id, GET streams, DELETE, Last-Event-ID resumption) and
// sessionless 2026-07-28 requests (per-request _meta, Mcp-Method/Mcp-Name checks).
package streamablehttp

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/gateway"
	"github.com/portcullis-mcp/portcullis/internal/identity"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

// Options configure the front handler.
type Options struct {
	// AllowedHosts are extra Host names accepted besides loopback names and the listen host.
	AllowedHosts []string
	// AllowedOrigins are extra Origin values (scheme://host[:port]) accepted besides
	// loopback origins.
	AllowedOrigins []string
	// ResumeWindow is how long a call whose client disconnected keeps running, waiting for
	// the client to resume its stream with Last-Event-ID, before it is cancelled.
	ResumeWindow time.Duration
	// OnSecurityEvent, when set, is told of refusals at the edge that a security team wants
	// in the audit trail: failed authentication, and a session id presented by a principal
	// that does not own it.
	OnSecurityEvent func(ctx context.Context, e SecurityEvent)
	// Authenticate returns the principal of a request; nil means anonymous. A refusal is
	// answered with the status and WWW-Authenticate challenge of an *identity.Error, and
	// 401 for other errors.
	Authenticate func(r *http.Request) (identity.Principal, error)
	Logger       *slog.Logger
}

// Gateway is what the endpoint serves: the whole gateway (*gateway.Gateway) or the view
// of one of its servers (*gateway.View).
type Gateway interface {
	Limits() jsonrpc.Limits
	NewSession(p identity.Principal, c gateway.Client) (*gateway.Session, error)
	HandleModern(ctx context.Context, p identity.Principal, c gateway.Client, m *jsonrpc.Message) *jsonrpc.Message
}

// Handler serves the MCP endpoint.
type Handler struct {
	g      Gateway
	opts   Options
	logger *slog.Logger
	mu     sync.Mutex
	states map[string]*sessionState
	// closing is closed by Shutdown: long-lived streams end so the server can drain.
	closing   chan struct{}
	closeOnce sync.Once
	listeners map[*listener]struct{}
	params    paramIndex
}

// Shutdown ends the long-lived streams (GET streams and subscriptions), so that an
// http.Server's Shutdown only waits for calls in flight. Register it with
// http.Server.RegisterOnShutdown.
func (h *Handler) Shutdown() {
	h.closeOnce.Do(func() { close(h.closing) })
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, st := range h.states {
		st.mu.Lock()
		stand := st.stand
		st.mu.Unlock()
		if stand != nil {
			stand.finish()
		}
	}
}

// New returns the handler for gateway g.
func New(g Gateway, opts Options) *Handler {
	if opts.ResumeWindow == 0 {
		opts.ResumeWindow = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Handler{g: g, opts: opts, logger: opts.Logger, states: map[string]*sessionState{}, closing: make(chan struct{})}
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := h.checkOrigin(r); err != nil {
		writeError(w, http.StatusForbidden, nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "%v", err))
		return
	}
	p := identity.Anonymous
	if h.opts.Authenticate != nil {
		var err error
		p, err = h.opts.Authenticate(r)
		if err != nil {
			status := http.StatusUnauthorized
			var ae *identity.Error
			if errors.As(err, &ae) {
				status = ae.Status
				if ae.Challenge != "" {
					w.Header().Set("WWW-Authenticate", ae.Challenge)
				}
			}
			h.security(r, SecurityEvent{Kind: "authentication-failed", Message: err.Error()})
			writeError(w, status, nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "%v", err))
			return
		}
	}
	switch r.Method {
	case http.MethodPost:
		h.post(w, r, p)
	case http.MethodGet:
		h.get(w, r, p)
	case http.MethodDelete:
		h.delete(w, r, p)
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		writeError(w, http.StatusMethodNotAllowed, nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "method %s not allowed", r.Method))
	}
}

// checkOrigin rejects requests a web page could make through DNS rebinding: a Host that is
// not this server, or an Origin that is not allowed.
func (h *Handler) checkOrigin(r *http.Request) error {
	host := r.Host
	if hn, _, err := net.SplitHostPort(host); err == nil {
		host = hn
	}
	host = strings.Trim(host, "[]")
	if !isLoopbackName(host) && !slices.Contains(h.opts.AllowedHosts, host) {
		if local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); !ok || !sameHost(local, host) {
			return fmt.Errorf("host %q is not allowed (DNS rebinding protection); add it to allowed_hosts", r.Host)
		}
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	if slices.Contains(h.opts.AllowedOrigins, origin) {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !isLoopbackName(u.Hostname()) {
		return fmt.Errorf("origin %q is not allowed (DNS rebinding protection); add it to allowed_origins", origin)
	}
	return nil
}

func isLoopbackName(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func sameHost(a net.Addr, host string) bool {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.Equal(ta.IP) && !ta.IP.IsUnspecified()
}

func (h *Handler) readMessage(w http.ResponseWriter, r *http.Request) (*jsonrpc.Message, bool) {
	lim := h.g.Limits()
	max := lim.MaxBytes
	if max <= 0 {
		max = jsonrpc.DefaultMaxBytes
	}
	var body []byte
	var err error
	if n := r.ContentLength; n > 0 && n <= int64(max) {
		// The usual request: its length is known and allowed, so it is read into a slice
		// of that size (io.ReadAll would start at 512 bytes and grow).
		body = make([]byte, n)
		_, err = io.ReadFull(r.Body, body)
	} else {
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, int64(max)))
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "message exceeds the limit of %d bytes", max))
		} else {
			writeError(w, http.StatusBadRequest, nil, jsonrpc.Errorf(jsonrpc.CodeParseError, "reading the request body: %v", err))
		}
		return nil, false
	}
	m, err := jsonrpc.Decode(body, lim)
	if err != nil {
		var de *jsonrpc.DecodeError
		errors.As(err, &de)
		writeError(w, http.StatusBadRequest, de.ID, de.AsError())
		return nil, false
	}
	return m, true
}

func (h *Handler) post(w http.ResponseWriter, r *http.Request, p identity.Principal) {
	m, ok := h.readMessage(w, r)
	if !ok {
		return
	}
	sid := r.Header.Get("Mcp-Session-Id")
	if sid == "" {
		if m.Method == "initialize" {
			if _, modern := gateway.ModernVersion(m); !modern {
				h.initialize(w, r, p, m)
				return
			}
		}
		h.modern(w, r, p, m)
		return
	}
	st := h.state(sid)
	if st == nil {
		writeError(w, http.StatusNotFound, m.ID, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "session not found (it ended or expired); initialize a new one"))
		return
	}
	if !h.ownSession(r, st, p) {
		writeError(w, http.StatusNotFound, m.ID, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "session not found"))
		return
	}
	if v := r.Header.Get("MCP-Protocol-Version"); v != "" && !slices.Contains(gateway.LegacyVersions, v) && !slices.Contains(gateway.ModernVersions, v) {
		writeError(w, http.StatusBadRequest, m.ID, gateway.UnsupportedVersion(v))
		return
	}
	if m.IsResponse() {
		st.deliver(m)
		w.WriteHeader(http.StatusAccepted)
		return
	}
	if m.IsNotification() {
		st.sess.Handle(context.WithoutCancel(r.Context()), m)
		w.WriteHeader(http.StatusAccepted)
		return
	}
	h.serveRequest(w, r, st, m, func(ctx context.Context) *jsonrpc.Message { return st.sess.Handle(identity.With(ctx, p), m) }, true)
}

// SecurityEvent is a refusal at the edge, before any session or guard saw the request.
type SecurityEvent struct {
	Kind      string // "authentication-failed" or "session-of-another-principal"
	Principal identity.Principal
	Owner     identity.Principal // for a session of another principal: who owns it
	Session   string
	Remote    string
	Message   string
}

func (h *Handler) security(r *http.Request, e SecurityEvent) {
	if h.opts.OnSecurityEvent == nil {
		return
	}
	e.Remote = r.RemoteAddr
	h.opts.OnSecurityEvent(r.Context(), e)
}

func samePrincipal(a, b identity.Principal) bool { return a.ID == b.ID && a.Method == b.Method }

// ownSession reports whether p owns the session, and logs an attempt to use another
// principal's session (it is answered as if the session did not exist).
func (h *Handler) ownSession(r *http.Request, st *sessionState, p identity.Principal) bool {
	owner := st.sess.Principal()
	if samePrincipal(owner, p) {
		return true
	}
	h.logger.Warn("session id presented by another principal", "http_method", r.Method, "session", st.sess.ID(),
		"session_owner", owner.ID, "session_owner_method", owner.Method, "principal", p.ID, "principal_method", p.Method, "remote", r.RemoteAddr)
	h.security(r, SecurityEvent{Kind: "session-of-another-principal", Principal: p, Owner: owner, Session: st.sess.ID(),
		Message: "a session id was presented by a principal that does not own the session"})
	return false
}

func (h *Handler) initialize(w http.ResponseWriter, r *http.Request, p identity.Principal, m *jsonrpc.Message) {
	st := &sessionState{h: h, pending: map[string]chan *jsonrpc.Message{}, streams: map[string]*stream{}}
	sess, err := h.g.NewSession(p, st)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, m.ID, jsonrpc.Errorf(jsonrpc.CodeUpstreamUnavailable, "%v", err))
		return
	}
	st.sess = sess
	resp := sess.Handle(r.Context(), m)
	if resp.Error != nil {
		sess.Close()
		writeJSON(w, http.StatusOK, resp)
		return
	}
	h.mu.Lock()
	h.states[sess.ID()] = st
	h.mu.Unlock()
	go func() {
		<-sess.Done()
		h.mu.Lock()
		if h.states[sess.ID()] == st {
			delete(h.states, sess.ID())
		}
		h.mu.Unlock()
		st.close()
	}()
	w.Header().Set("Mcp-Session-Id", sess.ID())
	writeJSON(w, http.StatusOK, resp)
}

func (h *Handler) state(sid string) *sessionState {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.states[sid]
	if st == nil {
		return nil
	}
	select {
	case <-st.sess.Done(): // expired or closed by the gateway
		delete(h.states, sid)
		st.close()
		return nil
	default:
	}
	return st
}

func (h *Handler) delete(w http.ResponseWriter, r *http.Request, p identity.Principal) {
	sid := r.Header.Get("Mcp-Session-Id")
	st := h.state(sid)
	if sid == "" || st == nil || !h.ownSession(r, st, p) {
		writeError(w, http.StatusNotFound, nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "session not found"))
		return
	}
	h.mu.Lock()
	delete(h.states, sid)
	h.mu.Unlock()
	st.close()
	go st.sess.Close()
	w.WriteHeader(http.StatusNoContent)
}

// modern serves a sessionless 2026-07-28 request.
func (h *Handler) modern(w http.ResponseWriter, r *http.Request, p identity.Principal, m *jsonrpc.Message) {
	if !m.IsRequest() {
		if m.IsNotification() {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		writeError(w, http.StatusBadRequest, m.ID, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "responses need a session"))
		return
	}
	if je := gateway.CheckMeta(m); je != nil {
		writeError(w, http.StatusBadRequest, m.ID, je)
		return
	}
	if je := checkHeaders(r, m); je != nil {
		writeError(w, http.StatusBadRequest, m.ID, je)
		return
	}
	if je := gateway.CheckModern(m); je != nil {
		status := http.StatusBadRequest
		if je.Code == jsonrpc.CodeMethodNotFound {
			status = http.StatusNotFound
		}
		writeError(w, status, m.ID, je)
		return
	}
	if m.Method == "subscriptions/listen" {
		h.listen(w, r, p, m)
		return
	}
	if m.Method == "tools/call" {
		if je := h.checkParams(r.Context(), r, p, m); je != nil {
			writeError(w, http.StatusBadRequest, m.ID, je)
			return
		}
	}
	st := &sessionState{h: h, pending: map[string]chan *jsonrpc.Message{}, streams: map[string]*stream{}}
	h.serveRequest(w, r, st, m, func(ctx context.Context) *jsonrpc.Message {
		resp := h.g.HandleModern(context.WithValue(ctx, stateKey{}, st), p, ctxClient{h}, m)
		if m.Method == "tools/list" && resp != nil && resp.Error == nil {
			h.params.learn(p, resp.Result)
		}
		return resp
	}, false)
}

// checkHeaders enforces that the headers a 2026-07-28 client mirrors from the body match
// it: a proxy or balancer that routes on the header must see what the server will read.
func checkHeaders(r *http.Request, m *jsonrpc.Message) *jsonrpc.Error {
	body, _ := gateway.ModernVersion(m)
	if v := strings.TrimSpace(r.Header.Get("MCP-Protocol-Version")); v == "" {
		return jsonrpc.Errorf(jsonrpc.CodeHeaderMismatch, "Header mismatch: MCP-Protocol-Version header is required")
	} else if v != body {
		return jsonrpc.Errorf(jsonrpc.CodeHeaderMismatch, "Header mismatch: MCP-Protocol-Version header %q does not match body value %q", v, body)
	}
	method := strings.TrimSpace(r.Header.Get("Mcp-Method"))
	if method == "" {
		return jsonrpc.Errorf(jsonrpc.CodeHeaderMismatch, "Header mismatch: Mcp-Method header is required")
	}
	if method != m.Method {
		return jsonrpc.Errorf(jsonrpc.CodeHeaderMismatch, "Header mismatch: Mcp-Method header value %q does not match body value %q", method, m.Method)
	}
	var key string
	switch m.Method {
	case "tools/call", "prompts/get":
		key = "name"
	case "resources/read":
		key = "uri"
	default:
		return nil
	}
	want, ok := jsonrpc.LookupString(m.Params, key)
	if !ok {
		return jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "%s needs a string %q", m.Method, key)
	}
	raw, present := r.Header["Mcp-Name"]
	if !present || len(raw) == 0 {
		return jsonrpc.Errorf(jsonrpc.CodeHeaderMismatch, "Header mismatch: Mcp-Name header is required for %s", m.Method)
	}
	if len(raw) > 1 {
		return jsonrpc.Errorf(jsonrpc.CodeHeaderMismatch, "Header mismatch: more than one Mcp-Name header")
	}
	got, err := decodeHeaderValue(strings.TrimSpace(raw[0]))
	if err != nil {
		return jsonrpc.Errorf(jsonrpc.CodeHeaderMismatch, "Header mismatch: Mcp-Name header: %v", err)
	}
	if got != want {
		return jsonrpc.Errorf(jsonrpc.CodeHeaderMismatch, "Header mismatch: Mcp-Name header value %q does not match body value %q", got, want)
	}
	return nil
}

// decodeHeaderValue undoes the =?base64?...?= sentinel encoding of header values.
func decodeHeaderValue(v string) (string, error) {
	if strings.HasPrefix(v, "=?base64?") && strings.HasSuffix(v, "?=") && len(v) >= len("=?base64??=") {
		b, err := base64.StdEncoding.DecodeString(v[len("=?base64?") : len(v)-2])
		if err != nil {
			return "", fmt.Errorf("invalid base64: %v", err)
		}
		return string(b), nil
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c > 0x7e {
			return "", errors.New("invalid character")
		}
	}
	return v, nil
}

// serveRequest runs handle and writes its response: JSON when the client does not take
// event streams, otherwise an SSE stream that also carries the messages sent during the
// call (progress, logging, server-to-client requests).
func (h *Handler) serveRequest(w http.ResponseWriter, r *http.Request, st *sessionState, m *jsonrpc.Message, handle func(context.Context) *jsonrpc.Message, legacy bool) {
	accept := r.Header.Get("Accept")
	if !strings.Contains(accept, "text/event-stream") {
		resp := handle(r.Context())
		writeJSON(w, statusFor(resp, legacy), resp)
		return
	}
	str := st.newStream()
	ctx := withStream(r.Context(), str)
	if legacy {
		// A legacy client may disconnect and resume with Last-Event-ID: the call goes on
		// for a while, and is cancelled only if nobody resumes in time. The session
		// cancels it (the request's id names it there while it runs), which spares the
		// call a context layer of its own.
		ctx = context.WithoutCancel(ctx)
		gone := func() {
			time.AfterFunc(h.opts.ResumeWindow, func() {
				if !str.wasResumedOrDone() {
					st.sess.CancelRequest(m.ID, context.Canceled)
				}
			})
		}
		if od, ok := w.(interface{ OnDisconnect(func()) }); ok { // the front's own server
			od.OnDisconnect(gone)
			defer od.OnDisconnect(nil)
		} else {
			defer context.AfterFunc(r.Context(), gone)()
		}
	}
	// The call runs here. Messages sent during it (progress, server requests) are written
	// to the client as they come; nothing is written before there is something to say, so
	// a call that completes at once is answered in a single write.
	str.attach(w, !legacy)
	resp := handle(ctx)
	if plain := str.finishLive(resp, !legacy); plain != nil {
		writeJSON(w, statusFor(plain, legacy), plain)
	}
}

func statusFor(resp *jsonrpc.Message, legacy bool) int {
	if legacy || resp == nil || resp.Error == nil {
		return http.StatusOK
	}
	switch resp.Error.Code {
	case jsonrpc.CodeMethodNotFound:
		return http.StatusNotFound
	case jsonrpc.CodeHeaderMismatch, jsonrpc.CodeUnsupportedProtocolVersion, jsonrpc.CodeMissingRequiredClientCapability:
		return http.StatusBadRequest
	}
	return http.StatusOK
}

// get opens the standalone stream of a legacy session, or resumes a stream.
func (h *Handler) get(w http.ResponseWriter, r *http.Request, p identity.Principal) {
	sid := r.Header.Get("Mcp-Session-Id")
	if sid == "" {
		writeError(w, http.StatusMethodNotAllowed, nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "GET needs a legacy session (Mcp-Session-Id); 2026-07-28 clients use subscriptions/listen"))
		return
	}
	st := h.state(sid)
	if st == nil || !h.ownSession(r, st, p) {
		writeError(w, http.StatusNotFound, nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "session not found"))
		return
	}
	if !strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		writeError(w, http.StatusNotAcceptable, nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "GET must accept text/event-stream"))
		return
	}
	if last := r.Header.Get("Last-Event-ID"); last != "" {
		str, seq := st.find(last)
		if str == nil {
			writeError(w, http.StatusNotFound, nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "event %q cannot be resumed", last))
			return
		}
		str.resume(seq)
		str.pipe(w, r.Context())
		return
	}
	str := st.standalone()
	str.pipe(w, r.Context())
}

// listener is one open subscriptions/listen stream.
type listener struct {
	principal identity.Principal
	subID     jsonrpc.ID
	tools     bool
	prompts   bool
	resources bool
	uris      map[string]bool
	ch        chan *jsonrpc.Message
}

func (l *listener) wants(m *jsonrpc.Message) bool {
	switch m.Method {
	case "notifications/tools/list_changed":
		return l.tools
	case "notifications/prompts/list_changed":
		return l.prompts
	case "notifications/resources/list_changed":
		return l.resources
	case "notifications/resources/updated":
		uri, _ := jsonrpc.LookupString(m.Params, "uri")
		return l.uris[uri]
	}
	return false
}

// listen serves subscriptions/listen: an acknowledgement, then the change notifications the
// client opted in to, each tagged with the subscription id.
func (h *Handler) listen(w http.ResponseWriter, r *http.Request, p identity.Principal, m *jsonrpc.Message) {
	var req struct {
		Notifications struct {
			ToolsListChanged      bool     `json:"toolsListChanged"`
			PromptsListChanged    bool     `json:"promptsListChanged"`
			ResourcesListChanged  bool     `json:"resourcesListChanged"`
			ResourceSubscriptions []string `json:"resourceSubscriptions"`
		} `json:"notifications"`
	}
	if err := json.Unmarshal(m.Params, &req); err != nil {
		writeError(w, http.StatusBadRequest, m.ID, jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "subscriptions/listen: %v", err))
		return
	}
	n := req.Notifications
	l := &listener{principal: p, subID: m.ID, tools: n.ToolsListChanged, prompts: n.PromptsListChanged,
		resources: n.ResourcesListChanged, uris: map[string]bool{}, ch: make(chan *jsonrpc.Message, 64)}
	for _, u := range n.ResourceSubscriptions {
		l.uris[u] = true
	}
	h.mu.Lock()
	if h.listeners == nil {
		h.listeners = map[*listener]struct{}{}
	}
	h.listeners[l] = struct{}{}
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.listeners, l)
		h.mu.Unlock()
	}()
	flusher, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	ackParams := map[string]any{"_meta": map[string]any{metaSubscriptionID: jsonRaw(m.ID)}, "notifications": n}
	var buf bytes.Buffer
	send := func(msg *jsonrpc.Message) bool {
		buf.Reset()
		writeEvent(&buf, "", 0, msg)
		if _, err := w.Write(buf.Bytes()); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	if !send(jsonrpc.NewNotification("notifications/subscriptions/acknowledged", ackParams)) {
		return
	}
	t := time.NewTicker(15 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-h.closing:
			// A graceful end: the listen request's response, then the stream closes.
			res, _ := json.Marshal(map[string]any{"resultType": "complete", "_meta": map[string]any{metaSubscriptionID: jsonRaw(m.ID)}})
			send(jsonrpc.NewResult(m.ID, json.RawMessage(res)))
			return
		case msg := <-l.ch:
			if !send(msg) {
				return
			}
		case <-t.C:
			io.WriteString(w, ":\n\n")
			if flusher != nil {
				flusher.Flush()
			}
		}
	}
}

const metaSubscriptionID = "io.modelcontextprotocol/subscriptionId"

// broadcast sends a change notification to the listen streams of principal p that want it.
func (h *Handler) broadcast(p identity.Principal, m *jsonrpc.Message) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for l := range h.listeners {
		if !samePrincipal(l.principal, p) || !l.wants(m) {
			continue
		}
		params := m.Params
		if len(params) == 0 {
			params = json.RawMessage(`{}`)
		}
		meta, ok := jsonrpc.Lookup(params, "_meta")
		if !ok || len(meta) == 0 || meta[0] != '{' {
			meta = json.RawMessage(`{}`)
		}
		meta, _ = jsonrpc.Set(meta, metaSubscriptionID, json.RawMessage(l.subID))
		params, _ = jsonrpc.Set(params, "_meta", meta)
		select {
		case l.ch <- &jsonrpc.Message{Method: m.Method, Params: params}:
		default:
			h.logger.Warn("subscription stream is not keeping up; notification dropped", "method", m.Method)
		}
	}
}

type stateKey struct{}

// ctxClient reaches the client of the request in ctx: the shared session of sessionless
// clients has no client of its own, each request brings its stream. Change notifications
// outside any request go to the principal's subscriptions/listen streams.
type ctxClient struct{ h *Handler }

func (c ctxClient) Notify(ctx context.Context, m *jsonrpc.Message) error {
	st, ok := ctx.Value(stateKey{}).(*sessionState)
	if !ok || strings.HasSuffix(m.Method, "/list_changed") || m.Method == "notifications/resources/updated" {
		c.h.broadcast(identity.From(ctx), m)
		return nil
	}
	return st.Notify(ctx, m)
}

func (ctxClient) Request(ctx context.Context, m *jsonrpc.Message) (*jsonrpc.Message, error) {
	return nil, errors.New("2026-07-28 clients take no server-to-client requests")
}

type jsonRaw []byte

func (j jsonRaw) MarshalJSON() ([]byte, error) { return j, nil }

func writeJSON(w http.ResponseWriter, status int, m *jsonrpc.Message) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(m.Marshal())
}

func writeError(w http.ResponseWriter, status int, id jsonrpc.ID, e *jsonrpc.Error) {
	writeJSON(w, status, jsonrpc.NewError(id, e))
}

// writeEvent writes m as an SSE event with the id "<stream>_<seq>", or without an id for
// an empty stream id.
func writeEvent(buf *bytes.Buffer, stream string, seq int, m *jsonrpc.Message) {
	if stream != "" {
		buf.WriteString("id: ")
		buf.WriteString(stream)
		buf.WriteByte('_')
		buf.Write(strconv.AppendInt(buf.AvailableBuffer(), int64(seq), 10))
		buf.WriteByte('\n')
	}
	buf.WriteString("event: message\ndata: ")
	buf.Grow(64 + len(m.Params) + len(m.Result) + len(m.ID) + len(m.Method))
	buf.Write(m.Append(buf.AvailableBuffer())) // encoded in place: no copy of its own
	buf.WriteString("\n\n")
}

var streamSeq atomic.Int64

func nextStreamID() string { return strconv.FormatInt(streamSeq.Add(1), 36) }
