// Package gatewaytest is an in-memory MCP server for tests of the gateway and its front
// transports. A Server is configured with its tools, prompts and resources and, per method,
// an optional handler; its Dial method is an upstream.Dial. Every dial makes a Transport
// (one per gateway session, and one more per restart). The server records every message it
// receives, so a test can assert what reached it (the name after prefix stripping) or that
// nothing did; it can send requests and notifications to the client through the
// upstream.Incoming it was given, and it can crash.
package gatewaytest

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

	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
	"github.com/portcullis-mcp/portcullis/internal/upstream"
)

// Tool is a tool the server lists.
type Tool struct {
	Name        string
	Description string
	InputSchema json.RawMessage // default {"type":"object"}
}

// Prompt is a prompt the server lists.
type Prompt struct {
	Name        string
	Description string
}

// Resource is a resource the server lists and reads.
type Resource struct {
	URI  string
	Name string
	Text string // what resources/read returns; default "<server>:<uri>"
}

// Template is a resource template the server lists; resources/read of a URI that starts
// with the template's text before its first '{' is answered by the server.
type Template struct {
	URITemplate string
	Name        string
}

// Request is a request the server is handling.
type Request struct {
	Msg *jsonrpc.Message
	// T is the transport it came on: use it to send the client requests and notifications
	// while the request runs.
	T *Transport
}

// Name returns params.name ("" when absent).
func (r *Request) Name() string {
	s, _ := jsonrpc.LookupString(r.Msg.Params, "name")
	return s
}

// Decode unmarshals the params into v.
func (r *Request) Decode(v any) error { return json.Unmarshal(r.Msg.Params, v) }

// Handler answers a request. The result is sent as the response's result: a *jsonrpc.Message
// is sent as it is (its id replaced), json.RawMessage or []byte as raw JSON, anything else
// marshalled. A *jsonrpc.Error is sent as the error; any other error as an internal error.
//
// ctx derives from the ctx of the transport's Call (so it carries the values the gateway put
// there, as a Streamable HTTP transport does); it ends when the caller gives up or the
// transport dies.
type Handler func(ctx context.Context, r *Request) (any, error)

// Server is a fake MCP server. Set its fields before the first Dial; afterwards use the
// methods, which lock.
type Server struct {
	Name         string // serverInfo.name
	Version      string // serverInfo.version, default "1.0.0"
	Instructions string
	// ProtocolVersion is what initialize answers; default the version the client asked for.
	ProtocolVersion string
	// Capabilities replaces the declared capabilities; by default tools, prompts (with
	// completions) and resources are declared when the server has any.
	Capabilities json.RawMessage
	Tools        []Tool
	Prompts      []Prompt
	Resources    []Resource
	Templates    []Template
	// PageSize, when positive, paginates lists with nextCursor.
	PageSize int
	// Handlers override the default behaviour per method (requests and notifications).
	Handlers map[string]Handler
	// DialError, when set and returning an error for dial number n (from 1), makes that
	// dial fail.
	DialError func(n int) error
	// Inline runs handlers on the caller's goroutine: Call returns only when the handler
	// does, even if ctx ends first. Cheaper; for benchmarks.
	Inline bool
	// NoRecord keeps the server from recording what it receives (for benchmarks).
	NoRecord bool

	mu         sync.Mutex
	received   []Received
	transports []*Transport
	changed    chan struct{}
}

// Received is one message the server got.
type Received struct {
	Msg       *jsonrpc.Message
	Transport int // the dial number of the transport it came on, from 1
	At        time.Time
}

var _ upstream.Transport = (*Transport)(nil)

// Dial is an upstream.Dial: it opens a new transport to the server.
func (s *Server) Dial(ctx context.Context, in upstream.Incoming) (upstream.Transport, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	n := len(s.transports) + 1
	dialErr := s.DialError
	s.mu.Unlock()
	if dialErr != nil {
		if err := dialErr(n); err != nil {
			s.mu.Lock()
			s.transports = append(s.transports, nil) // keep dial numbers stable
			s.mu.Unlock()
			return nil, fmt.Errorf("%w: %v", upstream.ErrUnavailable, err)
		}
	}
	t := &Transport{srv: s, n: n, in: in}
	t.ctx, t.cancel = context.WithCancelCause(context.Background())
	s.mu.Lock()
	if len(s.transports) >= n {
		n = len(s.transports) + 1
		t.n = n
	}
	s.transports = append(s.transports, t)
	s.notifyLocked()
	s.mu.Unlock()
	return t, nil
}

// Handle sets the handler of method (nil restores the default).
func (s *Server) Handle(method string, h Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Handlers == nil {
		s.Handlers = map[string]Handler{}
	}
	if h == nil {
		delete(s.Handlers, method)
		return
	}
	s.Handlers[method] = h
}

// SetTools replaces the tools the server lists.
func (s *Server) SetTools(tools ...Tool) {
	s.mu.Lock()
	s.Tools = tools
	s.mu.Unlock()
}

// Dials is how many times the server was dialled (failed dials included).
func (s *Server) Dials() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.transports)
}

// Transports returns the transports dialled so far, oldest first (nil for failed dials).
func (s *Server) Transports() []*Transport {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.transports)
}

// Live returns the transports that are neither closed nor crashed.
func (s *Server) Live() []*Transport {
	var live []*Transport
	for _, t := range s.Transports() {
		if t != nil && t.ctx.Err() == nil {
			live = append(live, t)
		}
	}
	return live
}

// Crash makes every live transport die with err, as a server process that exits: calls in
// flight fail, Done is closed. It returns how many transports it crashed.
func (s *Server) Crash(err error) int {
	live := s.Live()
	for _, t := range live {
		t.Crash(err)
	}
	return len(live)
}

// SendNotification sends a notification to the client on every live transport, outside any
// request (ctx is passed to the gateway as it is). It returns how many transports it used.
func (s *Server) SendNotification(ctx context.Context, method string, params any) int {
	live := s.Live()
	for _, t := range live {
		t.SendNotification(ctx, method, params)
	}
	return len(live)
}

// Received returns every message the server got, in order: handshakes, requests,
// notifications, and the notifications/cancelled a real transport would have sent when a
// caller gave up.
func (s *Server) Received() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.received)
}

// handshake methods are left out of Traffic.
var handshake = []string{"initialize", "notifications/initialized"}

// Traffic returns the messages the server got other than handshakes.
func (s *Server) Traffic() []*jsonrpc.Message {
	var out []*jsonrpc.Message
	for _, r := range s.Received() {
		if !slices.Contains(handshake, r.Msg.Method) {
			out = append(out, r.Msg)
		}
	}
	return out
}

// Requests returns the messages the server got for method.
func (s *Server) Requests(method string) []*jsonrpc.Message {
	var out []*jsonrpc.Message
	for _, r := range s.Received() {
		if r.Msg.Method == method {
			out = append(out, r.Msg)
		}
	}
	return out
}

// ClearReceived forgets the messages received so far.
func (s *Server) ClearReceived() {
	s.mu.Lock()
	s.received = nil
	s.notifyLocked()
	s.mu.Unlock()
}

// WaitFor waits until the server has received n messages for method, or timeout passes.
// It returns those messages and whether there were n.
func (s *Server) WaitFor(method string, n int, timeout time.Duration) ([]*jsonrpc.Message, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		if s.changed == nil {
			s.changed = make(chan struct{})
		}
		ch := s.changed
		var got []*jsonrpc.Message
		for _, r := range s.received {
			if r.Msg.Method == method {
				got = append(got, r.Msg)
			}
		}
		s.mu.Unlock()
		if len(got) >= n {
			return got, true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return got, false
		}
	}
}

// WaitDials waits until the server has been dialled n times, or timeout passes.
func (s *Server) WaitDials(n int, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		if s.changed == nil {
			s.changed = make(chan struct{})
		}
		ch := s.changed
		ok := len(s.transports) >= n
		s.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return false
		}
	}
}

func (s *Server) notifyLocked() {
	if s.changed != nil {
		close(s.changed)
	}
	s.changed = make(chan struct{})
}

func (s *Server) record(t *Transport, m *jsonrpc.Message) {
	if s.NoRecord {
		return
	}
	c := *m
	c.Params = slices.Clone(m.Params)
	c.ID = slices.Clone(m.ID)
	s.mu.Lock()
	s.received = append(s.received, Received{Msg: &c, Transport: t.n, At: time.Now()})
	s.notifyLocked()
	s.mu.Unlock()
}

func (s *Server) handler(method string) Handler {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Handlers[method]
}

// Transport is one connection to the server; it implements upstream.Transport.
type Transport struct {
	srv    *Server
	n      int
	in     upstream.Incoming
	ctx    context.Context // ends when the transport dies; its cause is Err
	cancel context.CancelCauseFunc
	nextID atomic.Int64

	mu        sync.Mutex
	closed    bool
	sessionID string
	version   string
}

// ErrClosed is the cause of a transport's end after Close.
var ErrClosed = errors.New("transport closed")

// Server returns the server the transport belongs to.
func (t *Transport) Server() *Server { return t.srv }

// N is the dial number of the transport, from 1.
func (t *Transport) N() int { return t.n }

// Call implements upstream.Transport: it runs the server's handler for req.
func (t *Transport) Call(ctx context.Context, req *jsonrpc.Message) (*jsonrpc.Message, error) {
	if t.ctx.Err() != nil {
		return nil, t.unavailable()
	}
	t.srv.record(t, req)
	if t.srv.Inline {
		resp := t.srv.dispatch(ctx, t, req)
		r := *resp
		r.ID = req.ID
		return &r, nil
	}
	hctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(t.ctx, func() { cancel(context.Cause(t.ctx)) })
	defer stop()
	res := make(chan *jsonrpc.Message, 1)
	go func() { res <- t.srv.dispatch(hctx, t, req) }()
	select {
	case resp := <-res:
		if t.ctx.Err() != nil {
			// The server died while its handler ran (and the handler saw its context end):
			// a dead server's answer never reaches the caller.
			return nil, t.unavailable()
		}
		if resp == nil {
			return nil, fmt.Errorf("%w: server %q sent no response", upstream.ErrUnavailable, t.srv.Name)
		}
		r := *resp
		r.ID = req.ID
		return &r, nil
	case <-ctx.Done():
		// A real transport tells the server the request was cancelled.
		t.srv.record(t, jsonrpc.NewNotification("notifications/cancelled", map[string]any{
			"requestId": json.RawMessage(req.ID), "reason": context.Cause(ctx).Error()}))
		return nil, context.Cause(ctx)
	case <-t.ctx.Done():
		return nil, t.unavailable()
	}
}

func (t *Transport) unavailable() error {
	return fmt.Errorf("%w: server %q: %v", upstream.ErrUnavailable, t.srv.Name, context.Cause(t.ctx))
}

// Notify implements upstream.Transport: the notification is recorded and passed to the
// server's handler for its method, if any.
func (t *Transport) Notify(ctx context.Context, n *jsonrpc.Message) error {
	if t.ctx.Err() != nil {
		return t.unavailable()
	}
	t.srv.record(t, n)
	if h := t.srv.handler(n.Method); h != nil {
		h(ctx, &Request{Msg: n, T: t})
	}
	return nil
}

// SetSession implements upstream.Transport.
func (t *Transport) SetSession(sessionID, protocolVersion string) {
	t.mu.Lock()
	t.sessionID, t.version = sessionID, protocolVersion
	t.mu.Unlock()
}

// ProtocolVersion is the version the gateway set with SetSession after the handshake.
func (t *Transport) ProtocolVersion() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.version
}

// Done implements upstream.Transport.
func (t *Transport) Done() <-chan struct{} { return t.ctx.Done() }

// Err implements upstream.Transport.
func (t *Transport) Err() error {
	if t.ctx.Err() == nil {
		return nil
	}
	return context.Cause(t.ctx)
}

// Close implements upstream.Transport.
func (t *Transport) Close() error {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.cancel(ErrClosed)
	t.srv.mu.Lock()
	t.srv.notifyLocked()
	t.srv.mu.Unlock()
	return nil
}

// Closed reports whether Close was called.
func (t *Transport) Closed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// Crash makes the transport die with err (Done closes, calls in flight fail).
func (t *Transport) Crash(err error) {
	if err == nil {
		err = errors.New("server crashed")
	}
	t.cancel(err)
	t.srv.mu.Lock()
	t.srv.notifyLocked()
	t.srv.mu.Unlock()
}

// SendRequest sends the client a request (sampling/createMessage, elicitation/create,
// roots/list) through the gateway and returns its answer. Pass the handler's ctx to have the
// gateway relate it to the request being handled, as a Streamable HTTP server does; pass a
// background context to leave that to the gateway, as a stdio server does.
func (t *Transport) SendRequest(ctx context.Context, method string, params any) (*jsonrpc.Message, error) {
	if t.ctx.Err() != nil {
		return nil, t.unavailable()
	}
	id := jsonrpc.ID(strconv.Quote("srv-" + strconv.FormatInt(t.nextID.Add(1), 10)))
	resp := t.in(ctx, jsonrpc.NewRequest(id, method, params))
	if resp == nil {
		return nil, errors.New("the gateway returned no response")
	}
	if string(resp.ID) != string(id) {
		return resp, fmt.Errorf("response id %s does not match request id %s", resp.ID, id)
	}
	return resp, nil
}

// SendNotification sends the client a notification (progress, logging, list changes)
// through the gateway.
func (t *Transport) SendNotification(ctx context.Context, method string, params any) {
	if t.ctx.Err() != nil {
		return
	}
	t.in(ctx, jsonrpc.NewNotification(method, params))
}

func (s *Server) dispatch(ctx context.Context, t *Transport, req *jsonrpc.Message) *jsonrpc.Message {
	r := &Request{Msg: req, T: t}
	h := s.handler(req.Method)
	if h == nil {
		h = s.Default
	}
	res, err := h(ctx, r)
	if err != nil {
		var je *jsonrpc.Error
		if errors.As(err, &je) {
			return jsonrpc.NewError(req.ID, je)
		}
		return jsonrpc.NewError(req.ID, jsonrpc.Errorf(jsonrpc.CodeInternalError, "%v", err))
	}
	if m, ok := res.(*jsonrpc.Message); ok {
		return m
	}
	return jsonrpc.NewResult(req.ID, res)
}

// Default is the server's built-in behaviour; a Handler may fall back to it.
func (s *Server) Default(ctx context.Context, r *Request) (any, error) {
	m := r.Msg
	s.mu.Lock()
	tools, prompts, resources, templates := s.Tools, s.Prompts, s.Resources, s.Templates
	s.mu.Unlock()
	switch m.Method {
	case "initialize":
		return s.initResult(r), nil
	case "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe":
		return json.RawMessage(`{}`), nil
	case "tools/list":
		items := make([]any, len(tools))
		for i, t := range tools {
			schema := t.InputSchema
			if len(schema) == 0 {
				schema = json.RawMessage(`{"type":"object"}`)
			}
			items[i] = map[string]any{"name": t.Name, "description": t.Description, "inputSchema": schema}
		}
		return s.page(r, "tools", items)
	case "prompts/list":
		items := make([]any, len(prompts))
		for i, p := range prompts {
			items[i] = map[string]any{"name": p.Name, "description": p.Description}
		}
		return s.page(r, "prompts", items)
	case "resources/list":
		items := make([]any, len(resources))
		for i, res := range resources {
			items[i] = map[string]any{"uri": res.URI, "name": res.Name}
		}
		return s.page(r, "resources", items)
	case "resources/templates/list":
		items := make([]any, len(templates))
		for i, tp := range templates {
			items[i] = map[string]any{"uriTemplate": tp.URITemplate, "name": tp.Name}
		}
		return s.page(r, "resourceTemplates", items)
	case "tools/call":
		name := r.Name()
		if !slices.ContainsFunc(tools, func(t Tool) bool { return t.Name == name }) {
			return nil, jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "unknown tool %q", name)
		}
		args, ok := jsonrpc.Lookup(m.Params, "arguments")
		if !ok {
			args = []byte(`{}`)
		}
		return map[string]any{
			"content":           []any{map[string]any{"type": "text", "text": s.Name + ":" + name}},
			"structuredContent": map[string]any{"server": s.Name, "tool": name, "arguments": json.RawMessage(args)},
		}, nil
	case "prompts/get":
		name := r.Name()
		if !slices.ContainsFunc(prompts, func(p Prompt) bool { return p.Name == name }) {
			return nil, jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "unknown prompt %q", name)
		}
		return map[string]any{"messages": []any{map[string]any{"role": "user",
			"content": map[string]any{"type": "text", "text": s.Name + ":" + name}}}}, nil
	case "resources/read":
		uri, _ := jsonrpc.LookupString(m.Params, "uri")
		for _, res := range resources {
			if res.URI == uri {
				text := res.Text
				if text == "" {
					text = s.Name + ":" + uri
				}
				return readResult(uri, text), nil
			}
		}
		for _, tp := range templates {
			if lit, _, _ := strings.Cut(tp.URITemplate, "{"); strings.HasPrefix(uri, lit) {
				return readResult(uri, s.Name+":"+uri), nil
			}
		}
		return nil, jsonrpc.Errorf(-32002, "resource %q not found", uri)
	case "completion/complete":
		ref, _ := jsonrpc.Lookup(m.Params, "ref")
		name, ok := jsonrpc.LookupString(ref, "name")
		if !ok {
			name, _ = jsonrpc.LookupString(ref, "uri")
		}
		return map[string]any{"completion": map[string]any{"values": []string{s.Name + ":" + name}, "hasMore": false}}, nil
	}
	if m.IsNotification() {
		return nil, nil
	}
	return nil, jsonrpc.Errorf(jsonrpc.CodeMethodNotFound, "method %q not found", m.Method)
}

func readResult(uri, text string) map[string]any {
	return map[string]any{"contents": []any{map[string]any{"uri": uri, "mimeType": "text/plain", "text": text}}}
}

func (s *Server) initResult(r *Request) map[string]any {
	var p struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	r.Decode(&p)
	version := s.ProtocolVersion
	if version == "" {
		version = p.ProtocolVersion
	}
	s.mu.Lock()
	caps := s.Capabilities
	if len(caps) == 0 {
		c := map[string]any{}
		if s.Tools != nil {
			c["tools"] = map[string]any{}
		}
		if s.Prompts != nil {
			c["prompts"] = map[string]any{}
			c["completions"] = map[string]any{}
		}
		if s.Resources != nil || s.Templates != nil {
			c["resources"] = map[string]any{}
		}
		caps, _ = json.Marshal(c)
	}
	s.mu.Unlock()
	v := s.Version
	if v == "" {
		v = "1.0.0"
	}
	res := map[string]any{
		"protocolVersion": version,
		"capabilities":    caps,
		"serverInfo":      map[string]any{"name": s.Name, "version": v},
	}
	if s.Instructions != "" {
		res["instructions"] = s.Instructions
	}
	return res
}

// page returns the page of items r asks for (params.cursor), with nextCursor when more
// follow and PageSize is set.
func (s *Server) page(r *Request, field string, items []any) (any, error) {
	start := 0
	if c, ok := jsonrpc.LookupString(r.Msg.Params, "cursor"); ok {
		n, err := strconv.Atoi(c)
		if err != nil || n < 0 || n > len(items) {
			return nil, jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "invalid cursor %q", c)
		}
		start = n
	}
	end := len(items)
	if s.PageSize > 0 && start+s.PageSize < end {
		end = start + s.PageSize
	}
	res := map[string]any{field: items[start:end]}
	if end < len(items) {
		res["nextCursor"] = strconv.Itoa(end)
	}
	return res, nil
}
