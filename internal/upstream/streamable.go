package upstream

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
	"github.com/portcullis-mcp/portcullis/internal/rpc"
)

// HTTPOptions configures the HTTP transports.
type HTTPOptions struct {
	// Client sends the requests; nil means http.DefaultClient. It must not have an overall
	// Timeout, which would cut the event streams.
	Client *http.Client
	// Header is sent on every request (such as an Authorization the gateway holds for
	// this server). The transport's own headers take precedence.
	Header http.Header
	// Limits bound each message, JSON body and SSE event.
	Limits jsonrpc.Limits
	// Name is the server's name in errors; the endpoint's host when empty.
	Name string
}

// ErrSessionExpired is returned when the server answered 404 to a request carrying its
// session id: the session is gone and a new one must be initialized. It wraps
// ErrUnavailable.
var ErrSessionExpired = fmt.Errorf("%w: session expired", ErrUnavailable)

// ErrInvalidMessage is wrapped by errors about a message the server sent that the strict
// decoder rejected, or that does not fit where it came (such as a response to another id).
var ErrInvalidMessage = errors.New("server sent an invalid message")

// StatusError is an HTTP answer outside 2xx. It wraps ErrUnavailable, and ErrSessionExpired
// for a 404 to a request with a session id. StatusCode lets a caller fall back to the
// legacy HTTP+SSE transport when initialize gets 400, 404 or 405.
type StatusError struct {
	Server         string
	Method         string // the HTTP method
	StatusCode     int
	Body           string // at most 512 bytes of the body
	SessionExpired bool
}

func (e *StatusError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "server %q: ", e.Server)
	if e.SessionExpired {
		b.WriteString("session expired: ")
	}
	fmt.Fprintf(&b, "%s answered HTTP %d %s", e.Method, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Body != "" {
		fmt.Fprintf(&b, ": %q", e.Body)
	}
	return b.String()
}

func (e *StatusError) Unwrap() error {
	if e.SessionExpired {
		return ErrSessionExpired
	}
	return ErrUnavailable
}

type headerKey struct{}

// WithHeader returns a ctx whose Call and Notify add the Mcp-Param-* headers of h to the
// HTTP request, as a 2026-07-28 tools/call of a tool with x-mcp-header parameters needs
// (the transport does not read tool schemas). Other headers in h are ignored.
func WithHeader(ctx context.Context, h http.Header) context.Context {
	return context.WithValue(ctx, headerKey{}, h)
}

// Bounds of the stream handling.
const (
	maxRetryDelay      = 5 * time.Second  // a server's retry: is capped here
	defaultRetryDelay  = time.Second      // when a resumable stream gave no retry:
	maxResumeAttempts  = 5                // reconnections in a row that bring no new event
	cancelPostTimeout  = 5 * time.Second  // notifications/cancelled
	replyPostTimeout   = 30 * time.Second // a response to a server request
	deleteTimeout      = 5 * time.Second
	statusBodyExcerpt  = 512
	statusBodyReadable = 64 << 10 // read of an error body, to find a JSON-RPC error
)

// StreamableHTTP is the client side of the Streamable HTTP transport (MCP 2025-03-26 and
// later): each message is a POST to one endpoint, answered with JSON or an SSE stream
// carrying the response and the server's messages about the request; a standalone GET
// stream carries the server's other messages once the session is initialized.
type StreamableHTTP struct {
	endpoint string
	name     string
	// versionHdr and sessionHdr cache the header values of the version and session id.
	versionHdr, sessionHdr atomic.Pointer[[]string]
	nameHdr                atomic.Pointer[nameHdr]
	client                 *http.Client
	header                 http.Header
	limits                 jsonrpc.Limits
	in                     Incoming

	nextID atomic.Int64
	ctx    context.Context // the transport's lifetime: cancelled by Close or a lost session
	cancel context.CancelCauseFunc
	done   chan struct{}
	ending sync.Once
	closer sync.Once

	mu          sync.Mutex
	err         error
	sessionID   string
	version     string
	sessionSet  bool // SetSession was called
	initialized bool // notifications/initialized was accepted
	getStarted  bool
	active      map[string]context.CancelFunc      // server requests being handled
	calls       map[uint64]context.CancelCauseFunc // Calls in flight, cancelled by finish
	callSeq     uint64
}

// NewStreamableHTTP returns a transport for the MCP endpoint; it sends nothing until the
// first Call (normally initialize).
func NewStreamableHTTP(endpoint string, opts HTTPOptions, in Incoming) (*StreamableHTTP, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("upstream: invalid MCP endpoint %q: want an http or https URL", redactURL(endpoint))
	}
	t := &StreamableHTTP{
		endpoint: u.String(),
		name:     serverName(opts.Name, u),
		client:   opts.Client,
		header:   opts.Header,
		limits:   opts.Limits,
		in:       in,
		done:     make(chan struct{}),
		active:   make(map[string]context.CancelFunc),
		calls:    make(map[uint64]context.CancelCauseFunc),
	}
	if t.client == nil {
		t.client = http.DefaultClient
	}
	if t.in == nil {
		t.in = refuseIncoming
	}
	t.ctx, t.cancel = context.WithCancelCause(context.Background())
	return t, nil
}

// SessionID returns the session id the server assigned (from any response), or "".
func (t *StreamableHTTP) SessionID() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sessionID
}

// SetSession implements Transport. An empty sessionID keeps the id captured from the
// server's responses. The standalone GET stream opens once the session is set and
// notifications/initialized was sent.
func (t *StreamableHTTP) SetSession(sessionID, protocolVersion string) {
	t.mu.Lock()
	if sessionID != "" {
		t.sessionID = sessionID
	}
	if protocolVersion != "" {
		t.version = protocolVersion
	}
	t.sessionSet = true
	t.mu.Unlock()
	t.maybeStartGet()
}

// Done implements Transport: it is closed by Close or when the server lost the session.
func (t *StreamableHTTP) Done() <-chan struct{} { return t.done }

// Err implements Transport. It is nil while Done is open.
func (t *StreamableHTTP) Err() error {
	select {
	case <-t.done:
	default:
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

func (t *StreamableHTTP) finish(err error) {
	t.ending.Do(func() {
		t.mu.Lock()
		t.err = err
		t.cancel(err) // under t.mu: a Call that registers after this sees t.ctx done
		for _, c := range t.calls {
			c(err)
		}
		t.mu.Unlock()
		close(t.done)
	})
}

// Close implements Transport: it stops the GET stream and calls in flight, and ends the
// session with DELETE (a 405 answer, for servers that keep sessions, is fine).
func (t *StreamableHTTP) Close() error {
	var err error
	t.closer.Do(func() {
		select {
		case <-t.done:
			return // the session is already gone
		default:
		}
		t.finish(fmt.Errorf("%w: server %q: %w", ErrUnavailable, t.name, rpc.ErrClosed))
		sid, version := t.session()
		if sid == "" {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), deleteTimeout)
		defer cancel()
		req, rerr := http.NewRequestWithContext(ctx, http.MethodDelete, t.endpoint, nil)
		if rerr != nil {
			err = rerr
			return
		}
		copyHeader(req.Header, t.header)
		req.Header.Set("Mcp-Session-Id", sid)
		if version != "" {
			req.Header.Set("Mcp-Protocol-Version", version)
		}
		resp, derr := t.client.Do(req)
		if derr != nil {
			err = fmt.Errorf("%w: server %q: DELETE: %w", ErrUnavailable, t.name, unwrapURLError(derr))
			return
		}
		defer resp.Body.Close()
		switch {
		case resp.StatusCode/100 == 2, resp.StatusCode == http.StatusMethodNotAllowed, resp.StatusCode == http.StatusNotFound:
		default:
			err = newStatusError(t.name, req.Method, readExcerpt(resp.Body, statusBodyExcerpt), resp.StatusCode, false)
		}
	})
	return err
}

func (t *StreamableHTTP) session() (id, version string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sessionID, t.version
}

// closedErr is the error for a call on a transport that is done.
func (t *StreamableHTTP) closedErr() error {
	select {
	case <-t.done:
		return t.Err()
	default:
		return nil
	}
}

// Call implements Transport.
func (t *StreamableHTTP) Call(ctx context.Context, req *jsonrpc.Message) (*jsonrpc.Message, error) {
	if err := t.closedErr(); err != nil {
		return nil, err
	}
	if !req.IsRequest() {
		return nil, fmt.Errorf("upstream: Call needs a request, got %s", describeMsg(req))
	}
	wire := jsonrpc.IntID(t.nextID.Add(1))
	out := *req
	out.ID = wire

	// cctx ends with ctx (the caller gave up) or with the transport (finish cancels the
	// calls in t.calls: cheaper than a callback registered on t.ctx for each call).
	cctx, cancel := context.WithCancelCause(ctx)
	t.mu.Lock()
	if t.ctx.Err() != nil {
		t.mu.Unlock()
		cancel(nil)
		return nil, t.closedErr()
	}
	t.callSeq++
	key := t.callSeq
	t.calls[key] = cancel
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		delete(t.calls, key)
		t.mu.Unlock()
		cancel(nil)
	}()

	resp, err := t.call(cctx, &out)
	if err != nil {
		if t.ctx.Err() != nil {
			return nil, t.closedErr()
		}
		if ctx.Err() != nil {
			// initialize must not be cancelled; the server will time it out.
			if req.Method != "initialize" {
				t.sendCancel(wire, context.Cause(ctx))
			}
			return nil, context.Cause(ctx)
		}
		return nil, err
	}
	if req.Method != "initialize" {
		t.maybeStartGet()
	}
	r := *resp
	r.ID = req.ID
	return &r, nil
}

func (t *StreamableHTTP) call(ctx context.Context, out *jsonrpc.Message) (*jsonrpc.Message, error) {
	resp, sentSession, err := t.post(ctx, out)
	if err != nil {
		return nil, err
	}
	streamed := false // callStream owns the body and closes it
	defer func() {
		if !streamed {
			resp.Body.Close()
		}
	}()
	if resp.StatusCode/100 != 2 {
		return t.callStatus(resp, sentSession, out.ID)
	}
	if resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusNoContent {
		return nil, fmt.Errorf("%w: server %q: POST of a request answered HTTP %d without a response", ErrUnavailable, t.name, resp.StatusCode)
	}
	switch ct := mediaType(resp.Header); ct {
	case "application/json":
		body, err := readLimited(resp.Body, limitBytes(t.limits))
		if err != nil {
			return nil, t.readError(err)
		}
		m, err := jsonrpc.Decode(body, t.limits)
		if err != nil {
			return nil, fmt.Errorf("server %q: %w: %w", t.name, ErrInvalidMessage, err)
		}
		if !m.IsResponse() || (!bytes.Equal(m.ID, out.ID) && !(m.Error != nil && string(m.ID) == "null")) {
			return nil, fmt.Errorf("server %q: %w: the JSON answer to request %s is %s", t.name, ErrInvalidMessage, out.ID, describeMsg(m))
		}
		return m, nil
	case "text/event-stream":
		streamed = true
		return t.callStream(ctx, resp, out.ID)
	default:
		return nil, fmt.Errorf("%w: server %q: POST answered with content type %q", ErrUnavailable, t.name, ct)
	}
}

// callStream reads a request's SSE stream until the response with id want, resuming with
// GET and Last-Event-ID when the server closes it early after an event id.
func (t *StreamableHTTP) callStream(ctx context.Context, resp *http.Response, want jsonrpc.ID) (*jsonrpc.Message, error) {
	er := newEventReader(resp.Body, limitBytes(t.limits))
	defer er.release()
	body := resp.Body
	progressID, attempts := "", 0
	for {
		m, err := t.consume(ctx, er, want)
		if m != nil {
			// The server ends an answered stream; the connection goes back to the pool
			// and its next user reads that end. A server that keeps answered streams
			// open has them drained in the background.
			if d, ok := body.(interface{ DrainLater() bool }); ok && d.DrainLater() {
				return m, nil
			}
			if d, ok := body.(interface{ Detach() }); ok {
				d.Detach()
			}
			go drain(body)
			return m, nil
		}
		body.Close()
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		if errors.Is(err, errEventTooLarge) || errors.Is(err, ErrInvalidMessage) {
			return nil, t.readError(err)
		}
		if er.lastID == "" {
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("%w: server %q: the event stream ended without the response", ErrUnavailable, t.name)
			}
			return nil, fmt.Errorf("%w: server %q: the event stream broke before the response: %w", ErrUnavailable, t.name, err)
		}
		if er.lastID != progressID {
			progressID, attempts = er.lastID, 0
		}
		attempts++
		if attempts > maxResumeAttempts {
			return nil, fmt.Errorf("%w: server %q: the event stream ended without the response; %d attempts to resume it brought nothing", ErrUnavailable, t.name, maxResumeAttempts)
		}
		delay := defaultRetryDelay
		if er.hasRetry {
			delay = er.retry
		}
		if attempts > 1 {
			delay = max(delay, httpBackoff(attempts-1))
		}
		if err := sleepCtx(ctx, min(delay, maxRetryDelay)); err != nil {
			return nil, err
		}
		r, sentSession, err := t.get(ctx, er.lastID)
		if err != nil {
			if ctx.Err() != nil {
				return nil, context.Cause(ctx)
			}
			continue // counted as an attempt without progress
		}
		if r.StatusCode/100 != 2 || mediaType(r.Header) != "text/event-stream" {
			defer r.Body.Close()
			if r.StatusCode/100 != 2 {
				return nil, fmt.Errorf("resuming the event stream: %w", t.statusError(r, sentSession))
			}
			return nil, fmt.Errorf("%w: server %q: resuming the event stream: GET answered with content type %q", ErrUnavailable, t.name, mediaType(r.Header))
		}
		er.reset(r.Body)
		body = r.Body
	}
}

// consume reads events and dispatches the server's messages with ctx until the response
// with id want (returned), or the end of the stream (nil, why). With want nil, responses
// are ignored.
func (t *StreamableHTTP) consume(ctx context.Context, er *eventReader, want jsonrpc.ID) (*jsonrpc.Message, error) {
	for {
		name, data, err := er.next()
		if err != nil {
			return nil, err
		}
		if name != "" && name != "message" {
			continue
		}
		if len(bytes.TrimSpace(data)) == 0 {
			continue // a priming event carries only an id
		}
		m, err := jsonrpc.Decode(data, t.limits)
		if err != nil {
			var de *jsonrpc.DecodeError
			if errors.As(err, &de) && de.ID != nil && !bytes.Equal(de.ID, want) {
				// Perhaps a server request: answer it with the error so it does not wait.
				go t.reply(jsonrpc.NewError(de.ID, de.AsError()))
				continue
			}
			if want == nil {
				continue // the standalone stream goes on without it
			}
			return nil, fmt.Errorf("%w: %w", ErrInvalidMessage, err)
		}
		switch {
		case m.IsResponse():
			if want != nil && bytes.Equal(m.ID, want) {
				return m, nil
			}
			// A response we do not wait for (a late one after a cancel): dropped.
		case m.IsNotification():
			if m.Method == "notifications/cancelled" {
				if id, ok := jsonrpc.Lookup(m.Params, "requestId"); ok {
					t.mu.Lock()
					if c := t.active[string(id)]; c != nil {
						c()
					}
					t.mu.Unlock()
				}
			}
			t.in(ctx, m)
		default:
			t.serve(ctx, m)
		}
	}
}

// serve handles a server request in its own goroutine, so that the stream keeps being
// read, and POSTs the response back.
func (t *StreamableHTTP) serve(ctx context.Context, m *jsonrpc.Message) {
	rctx, rcancel := context.WithCancel(ctx)
	key := string(m.ID)
	t.mu.Lock()
	t.active[key] = rcancel
	t.mu.Unlock()
	go func() {
		resp := t.in(rctx, m)
		t.mu.Lock()
		if t.active[key] != nil {
			delete(t.active, key)
		}
		t.mu.Unlock()
		cancelled := rctx.Err() != nil && ctx.Err() == nil // the server cancelled it
		rcancel()
		if cancelled {
			return // the server asked for no response
		}
		if resp == nil {
			resp = jsonrpc.NewError(m.ID, jsonrpc.Errorf(jsonrpc.CodeInternalError, "no response to %s", m.Method))
		}
		r := *resp
		r.ID, r.Method = m.ID, ""
		t.reply(&r)
	}()
}

// reply POSTs a response to a server request, best effort.
func (t *StreamableHTTP) reply(r *jsonrpc.Message) {
	ctx, cancel := context.WithTimeout(t.ctx, replyPostTimeout)
	defer cancel()
	resp, _, err := t.post(ctx, r)
	if err != nil {
		return
	}
	drainBody(resp)
}

// sendCancel tells the server that request wire was abandoned, best effort.
func (t *StreamableHTTP) sendCancel(wire jsonrpc.ID, cause error) {
	reason := "cancelled"
	if cause != nil {
		reason = cause.Error()
	}
	params := []byte(`{"requestId":`)
	params = append(params, wire...)
	params = append(params, `,"reason":`...)
	params = jsonrpc.AppendQuote(params, reason)
	params = append(params, '}')
	n := &jsonrpc.Message{Method: "notifications/cancelled", Params: params}
	go func() {
		ctx, cancel := context.WithTimeout(t.ctx, cancelPostTimeout)
		defer cancel()
		resp, _, err := t.post(ctx, n)
		if err == nil {
			drainBody(resp)
		}
	}()
}

// Notify implements Transport.
func (t *StreamableHTTP) Notify(ctx context.Context, n *jsonrpc.Message) error {
	if err := t.closedErr(); err != nil {
		return err
	}
	if !n.IsNotification() {
		return fmt.Errorf("upstream: Notify needs a notification, got %s", describeMsg(n))
	}
	resp, sentSession, err := t.post(ctx, n)
	if err != nil {
		if t.ctx.Err() != nil {
			return t.closedErr()
		}
		return err
	}
	defer drainBody(resp)
	if resp.StatusCode/100 != 2 {
		return t.statusError(resp, sentSession)
	}
	if n.Method == "notifications/initialized" {
		t.mu.Lock()
		t.initialized = true
		t.mu.Unlock()
		t.maybeStartGet()
	}
	return nil
}

// post sends m. It reports whether the request carried a session id.
func (t *StreamableHTTP) post(ctx context.Context, m *jsonrpc.Message) (*http.Response, bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.endpoint, bytes.NewReader(m.Marshal()))
	if err != nil {
		return nil, false, err
	}
	if h, ok := ctx.Value(headerKey{}).(http.Header); ok {
		for k, v := range h {
			if k = http.CanonicalHeaderKey(k); strings.HasPrefix(k, "Mcp-Param-") {
				req.Header[k] = append([]string(nil), v...)
			}
		}
	}
	sent := t.setHeaders(req, m)
	req.Header["Content-Type"] = hdrJSON
	req.Header["Accept"] = hdrAcceptPost
	return t.do(req, sent)
}

// Shared, never modified header values: no allocation per request.
var (
	hdrJSON       = []string{"application/json"}
	hdrAcceptPost = []string{"application/json, text/event-stream"}
	hdrMethods    = map[string][]string{}
)

func init() {
	for _, m := range []string{"tools/call", "tools/list", "resources/read", "resources/list", "resources/templates/list",
		"prompts/get", "prompts/list", "completion/complete", "ping", "initialize", "logging/setLevel",
		"notifications/initialized", "notifications/cancelled", "notifications/progress", "server/discover"} {
		hdrMethods[m] = []string{headerValue(m)}
	}
}

// get opens an SSE stream: the standalone one, or a resumption after lastID.
func (t *StreamableHTTP) get(ctx context.Context, lastID string) (*http.Response, bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.endpoint, nil)
	if err != nil {
		return nil, false, err
	}
	sent := t.setHeaders(req, nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	return t.do(req, sent)
}

func (t *StreamableHTTP) do(req *http.Request, sentSession bool) (*http.Response, bool, error) {
	resp, err := t.roundTrip(req)
	if err != nil {
		if ctx := req.Context(); ctx.Err() != nil {
			return nil, sentSession, context.Cause(ctx)
		}
		return nil, sentSession, fmt.Errorf("%w: server %q: %s: %w", ErrUnavailable, t.name, req.Method, unwrapURLError(err))
	}
	if sid := resp.Header.Get("Mcp-Session-Id"); sid != "" && validSessionID(sid) {
		t.mu.Lock()
		if t.sessionID == "" {
			t.sessionID = sid
		}
		t.mu.Unlock()
	}
	return resp, sentSession, nil
}

// roundTrip sends req with the transport's client. With an H1Transport and nothing for
// http.Client to add (cookies, an overall timeout), the exchange goes to the transport
// directly: http.Client's bookkeeping costs more than the exchange's own work on a
// loopback call. A redirect is then followed through the client, unless the client's
// CheckRedirect is set (the gateway's refuses every redirect: the answer is returned).
func (t *StreamableHTTP) roundTrip(req *http.Request) (*http.Response, error) {
	h1, ok := t.client.Transport.(*H1Transport)
	if !ok || t.client.Jar != nil || t.client.Timeout != 0 {
		return t.client.Do(req)
	}
	resp, err := h1.RoundTrip(req)
	if err != nil || t.client.CheckRedirect != nil || resp.StatusCode/100 != 3 || resp.Header.Get("Location") == "" || req.GetBody == nil {
		return resp, err
	}
	resp.Body.Close()
	body, err := req.GetBody()
	if err != nil {
		return nil, err
	}
	req = req.Clone(req.Context())
	req.Body = body
	return t.client.Do(req)
}

// setHeaders sets the static, session and protocol headers, and for a message the
// 2026-07-28 Mcp-Method and Mcp-Name headers. It reports whether a session id was set.
func (t *StreamableHTTP) setHeaders(req *http.Request, m *jsonrpc.Message) bool {
	h := req.Header
	for k, v := range t.header {
		h[k] = append([]string(nil), v...)
	}
	sid, version := t.session()
	if m != nil && m.Method != "" {
		// A 2026-07-28 request names its version in _meta; the header must match it. A
		// session negotiated with initialize keeps its version (a request forwarded into it
		// from a 2026-07-28 client still carries that client's _meta).
		if v, ok := jsonrpc.LookupPath(m.Params, "_meta", "io.modelcontextprotocol/protocolVersion"); ok && version == "" {
			if s, err := unquoteJSON(v); err == nil && s != "" {
				version = s
			}
		}
		if v, ok := hdrMethods[m.Method]; ok {
			h["Mcp-Method"] = v
		} else {
			h.Set("Mcp-Method", headerValue(m.Method))
		}
		switch m.Method {
		case "tools/call", "prompts/get":
			if raw, ok := jsonrpc.Lookup(m.Params, "name"); ok {
				if v, ok := t.nameValue(raw); ok {
					h["Mcp-Name"] = v
				}
			}
		case "resources/read":
			if raw, ok := jsonrpc.Lookup(m.Params, "uri"); ok {
				if v, ok := t.nameValue(raw); ok {
					h["Mcp-Name"] = v
				}
			}
		}
	}
	if version != "" {
		h["Mcp-Protocol-Version"] = t.hdrValue(&t.versionHdr, version)
	}
	if sid != "" {
		h["Mcp-Session-Id"] = t.hdrValue(&t.sessionHdr, sid)
	}
	return sid != ""
}

// hdrValue returns a one-value slice holding v, kept in *cache for the next request with
// the same value (the session id and version change seldom). The slice is shared and
// never modified.
func (t *StreamableHTTP) hdrValue(cache *atomic.Pointer[[]string], v string) []string {
	if p := cache.Load(); p != nil && (*p)[0] == v {
		return *p
	}
	s := []string{v}
	cache.Store(&s)
	return s
}

// nameHdr is the Mcp-Name header value of the last tool, prompt or resource named, with
// the JSON string it came from.
type nameHdr struct {
	raw string
	val []string
}

// nameValue returns the Mcp-Name header value for the JSON string raw, reusing the last
// one when the name is the same (a client tends to call the same tool again); ok is false
// when raw is not a string. The slice is shared and never modified.
func (t *StreamableHTTP) nameValue(raw []byte) ([]string, bool) {
	if p := t.nameHdr.Load(); p != nil && p.raw == string(raw) {
		return p.val, true
	}
	s, err := unquoteJSON(raw)
	if err != nil {
		return nil, false
	}
	n := &nameHdr{raw: string(raw), val: []string{headerValue(s)}}
	t.nameHdr.Store(n)
	return n.val, true
}

// statusError reads a non-2xx answer. A 404 to a request with a session id ends the
// transport: the session is gone.
func (t *StreamableHTTP) statusError(resp *http.Response, sentSession bool) *StatusError {
	expired := resp.StatusCode == http.StatusNotFound && sentSession
	e := newStatusError(t.name, resp.Request.Method, readExcerpt(resp.Body, statusBodyExcerpt), resp.StatusCode, expired)
	if expired {
		t.finish(e)
	}
	return e
}

// callStatus reads a non-2xx answer to a request. When the body is a JSON-RPC error
// response to the request (2026-07-28 servers answer 400 or 404 with one), that is the
// answer; otherwise it is a StatusError.
func (t *StreamableHTTP) callStatus(resp *http.Response, sentSession bool, want jsonrpc.ID) (*jsonrpc.Message, error) {
	if mediaType(resp.Header) != "application/json" {
		return nil, t.statusError(resp, sentSession)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, min(statusBodyReadable, int64(limitBytes(t.limits)))))
	if m, err := jsonrpc.Decode(body, t.limits); err == nil && m.Error != nil && bytes.Equal(m.ID, want) {
		return m, nil
	}
	expired := resp.StatusCode == http.StatusNotFound && sentSession
	e := newStatusError(t.name, resp.Request.Method, truncateBytes(body, statusBodyExcerpt), resp.StatusCode, expired)
	if expired {
		t.finish(e)
	}
	return nil, e
}

// readError wraps an error met while reading a response.
func (t *StreamableHTTP) readError(err error) error {
	if errors.Is(err, ErrInvalidMessage) {
		return fmt.Errorf("server %q: %w", t.name, err)
	}
	return fmt.Errorf("%w: server %q: %w", ErrUnavailable, t.name, err)
}

// maybeStartGet opens the standalone GET stream once the session is initialized.
func (t *StreamableHTTP) maybeStartGet() {
	t.mu.Lock()
	start := !t.getStarted && t.sessionSet && t.initialized && t.sessionID != ""
	if start {
		t.getStarted = true
	}
	t.mu.Unlock()
	if start {
		go t.listen()
	}
}

// listen keeps the standalone GET stream open until Close: it reconnects with backoff
// (and Last-Event-ID), and stops when the server offers no stream (405) or keeps failing.
func (t *StreamableHTTP) listen() {
	ctx := t.ctx
	er := newEventReader(http.NoBody, limitBytes(t.limits))
	failures := 0
	for ctx.Err() == nil {
		if failures > 0 {
			delay := httpBackoff(failures)
			if er.hasRetry {
				delay = max(delay, er.retry)
			}
			if sleepCtx(ctx, min(delay, maxRetryDelay)) != nil {
				return
			}
		}
		resp, sentSession, err := t.get(ctx, er.lastID)
		if err != nil {
			failures++
			if failures > maxListenFailures {
				return
			}
			continue
		}
		switch {
		case resp.StatusCode == http.StatusMethodNotAllowed:
			drainBody(resp)
			return // the server offers no GET stream
		case resp.StatusCode/100 != 2:
			t.statusError(resp, sentSession)
			drainBody(resp)
			failures++
			if failures > maxListenFailures || resp.StatusCode == http.StatusNotFound && sentSession {
				return
			}
			continue
		case mediaType(resp.Header) != "text/event-stream":
			drainBody(resp)
			return
		}
		opened := time.Now()
		er.reset(resp.Body)
		_, _ = t.consume(ctx, er, nil) // the stream ended: reconnect
		resp.Body.Close()
		if er.events > 0 || time.Since(opened) > 10*time.Second {
			// It worked for a while: reconnect after the server's retry: (or promptly).
			failures = 0
			delay := 100 * time.Millisecond
			if er.hasRetry {
				delay = max(er.retry, 10*time.Millisecond)
			}
			if sleepCtx(ctx, min(delay, maxRetryDelay)) != nil {
				return
			}
			continue
		}
		failures++
		if failures > maxListenFailures {
			return
		}
	}
}

// maxListenFailures bounds the reconnections of the GET stream in a row that fail or bring
// nothing; the stream is then given up (calls go on working).
const maxListenFailures = 8

// httpBackoff is 100ms·2^(n-1) with jitter, capped at maxRetryDelay.
func httpBackoff(n int) time.Duration {
	d := 100 * time.Millisecond << min(n-1, 10)
	d = min(d, maxRetryDelay)
	return d/2 + rand.N(d/2+1)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Helpers shared with the legacy SSE transport.

func refuseIncoming(_ context.Context, m *jsonrpc.Message) *jsonrpc.Message {
	if m.IsRequest() {
		return jsonrpc.NewError(m.ID, jsonrpc.Errorf(jsonrpc.CodeMethodNotFound, "method %q is not supported", m.Method))
	}
	return nil
}

func serverName(name string, u *url.URL) string {
	if name != "" {
		return name
	}
	return u.Host
}

func limitBytes(l jsonrpc.Limits) int {
	if l.MaxBytes <= 0 {
		return jsonrpc.DefaultMaxBytes
	}
	return l.MaxBytes
}

func copyHeader(dst, src http.Header) {
	for k, v := range src {
		dst[k] = append([]string(nil), v...)
	}
}

func mediaType(h http.Header) string {
	ct := h.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err == nil {
		return mt
	}
	mt, _, _ := strings.Cut(ct, ";")
	return strings.ToLower(strings.TrimSpace(mt))
}

// readLimited reads all of r, failing beyond max bytes.
func readLimited(r io.Reader, max int) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, int64(max)+1))
	if err != nil {
		return nil, err
	}
	if len(b) > max {
		return nil, fmt.Errorf("%w: the body exceeds the limit of %d bytes", errEventTooLarge, max)
	}
	return b, nil
}

func drainBody(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

func newStatusError(name, method string, body []byte, code int, expired bool) *StatusError {
	return &StatusError{
		Server:         name,
		Method:         method,
		StatusCode:     code,
		Body:           strings.ToValidUTF8(string(bytes.TrimSpace(body)), "\uFFFD"),
		SessionExpired: expired,
	}
}

func readExcerpt(r io.Reader, n int64) []byte {
	b, _ := io.ReadAll(io.LimitReader(r, n))
	return b
}

func truncateBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// unwrapURLError drops the *url.Error layer, whose message repeats the URL (which may
// carry a key in its query).
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	u.RawQuery, u.Fragment = "", ""
	return u.Redacted()
}

func truncateString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

func validSessionID(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return len(s) <= 1024
}

// headerValue encodes s for Mcp-Name and Mcp-Param-*: as is when it is plain visible ASCII
// without edge whitespace, else in the =?base64?…?= form.
func headerValue(s string) string {
	plain := s == strings.TrimSpace(s) && !(strings.HasPrefix(s, "=?base64?") && strings.HasSuffix(s, "?="))
	for i := 0; plain && i < len(s); i++ {
		if c := s[i]; (c < 0x20 || c > 0x7e) && c != '\t' {
			plain = false
		}
	}
	if plain {
		return s
	}
	return "=?base64?" + base64.StdEncoding.EncodeToString([]byte(s)) + "?="
}

func unquoteJSON(raw []byte) (string, error) {
	var v string
	err := json.Unmarshal(raw, &v)
	return v, err
}

func describeMsg(m *jsonrpc.Message) string {
	switch {
	case m.IsRequest():
		return fmt.Sprintf("request %s %q", m.ID, m.Method)
	case m.IsNotification():
		return fmt.Sprintf("notification %q", m.Method)
	default:
		return fmt.Sprintf("response %s", m.ID)
	}
}

// drain reads what is left of an answered stream, bounded in size and time, then closes it.
func drain(body io.ReadCloser) {
	t := time.AfterFunc(5*time.Second, func() { body.Close() })
	io.Copy(io.Discard, io.LimitReader(body, 256<<10))
	t.Stop()
	body.Close()
}
