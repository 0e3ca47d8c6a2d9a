// Package approval is the guard that settles holds (guard.Hold): calls that policy says a
// person must approve (authz rules with effect approve, detect-args findings at the
// approval severity). A held call waits here, and goes on to the server only once it is
// approved; a decline, a denial or a timeout refuses it, so the server never sees it.
//
// In order: an earlier approval of the same principal, server, tool and arguments with a
// session or duration scope releases the call (store.FindGrant). Otherwise a pending
// approval is recorded in the store, and
//
//   - when no approver group is named and the client declared elicitation, the user is
//     asked through MCP itself: elicitation/create on the session of a legacy client, an
//     input_required result with an elicitation request for a 2026-07-28 client (which
//     retries the call with the answer and the signed requestState);
//   - in every case the approval can be settled from any process through the store: the
//     command line (portcullis approvals), the dashboard, a signed link sent by webhook.
//
// Nobody deciding within the timeout denies the call and marks the approval expired. The
// outcome and the approver are recorded in the audit trail (codes PC6002I..PC6005I,
// PC6001W for the refusal).
package approval

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	trail "github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
	"github.com/portcullis-mcp/portcullis/internal/store"
)

// Name is the guard's name in configuration and refusals.
const Name = "approval"

// Config is the guard's configuration section.
type Config struct {
	// Timeout is how long a held call waits for a decision (default 5m). Then it is
	// denied and its approval marked expired.
	Timeout time.Duration `yaml:"timeout"`
	// Elicitation asks the user through MCP when the client can (default true).
	Elicitation *bool `yaml:"elicitation"`
	// GrantDuration is the "for N minutes" choice offered to the user (default 15m).
	GrantDuration time.Duration `yaml:"grant_duration"`
	// PollInterval is how often a held call looks in the store (default 250ms; 2s when
	// the store notifies settlements).
	PollInterval time.Duration `yaml:"poll_interval"`
	// KeyFile holds the per-install key that signs requestState and links (created when
	// missing). Default: approval.key in the user's configuration directory. Replicas of
	// a fleet must share it.
	KeyFile string `yaml:"key_file"`
	// ProgressInterval is how often a held call whose request asked for progress (a
	// _meta.progressToken) is reported to its client as waiting (default 15s; the first
	// report goes at once).
	ProgressInterval time.Duration `yaml:"progress_interval"`
	// Webhook, when set, is told of every pending approval, with signed links.
	Webhook *WebhookConfig `yaml:"webhook"`
}

// Options are what New needs besides the configuration.
type Options struct {
	Store  store.Store
	Signer *Signer
	// Key loads the signer on first use when Signer is nil; with neither, a random key
	// of the process's own.
	Key    func() (*Signer, error)
	Logger *slog.Logger
	Now    func() time.Time
	// Notify is told of every new pending approval (the webhook); nil: nobody.
	Notify func(ctx context.Context, a store.Approval)
}

// Guard is the configured guard.
type Guard struct {
	c      Config
	o      Options
	elicit bool
	poll   time.Duration
	log    *slog.Logger
	hook   *webhook

	signerOnce sync.Once
	signer     *Signer
	signerErr  error
}

// sign returns the signer, loading the key on first use.
func (g *Guard) sign() (*Signer, error) {
	g.signerOnce.Do(func() {
		switch {
		case g.o.Signer != nil:
			g.signer = g.o.Signer
		case g.o.Key != nil:
			g.signer, g.signerErr = g.o.Key()
		default:
			var k [32]byte
			rand.Read(k[:])
			g.signer = NewSigner(k[:])
		}
	})
	return g.signer, g.signerErr
}

// current is the guard of the running chain, for the link endpoints.
var current atomic.Pointer[Guard]

// check checks the fields of a configuration (not the webhook's).
func (c *Config) check() error {
	var errs []error
	if c.Timeout < 0 {
		errs = append(errs, fieldErr("timeout", "must be positive"))
	}
	if c.GrantDuration < 0 || c.GrantDuration > MaxGrant {
		errs = append(errs, fieldErr("grant_duration", "must be between 1s and %s", MaxGrant))
	}
	if c.PollInterval < 0 {
		errs = append(errs, fieldErr("poll_interval", "must be positive"))
	}
	if c.ProgressInterval < 0 {
		errs = append(errs, fieldErr("progress_interval", "must be positive"))
	}
	return errors.Join(errs...)
}

// Compile checks a configuration.
func Compile(c Config, o Options) (*Guard, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Minute
	}
	if c.GrantDuration == 0 {
		c.GrantDuration = 15 * time.Minute
	}
	if c.ProgressInterval == 0 {
		c.ProgressInterval = 15 * time.Second
	}
	poll := c.PollInterval
	if poll == 0 {
		poll = 250 * time.Millisecond
		if _, ok := o.Store.(Watcher); ok {
			poll = 2 * time.Second
		}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Guard{c: c, o: o, elicit: c.Elicitation == nil || *c.Elicitation, poll: poll, log: o.Logger.With("guard", Name)}, nil
}

// Middleware returns the guard as a middleware.
func (g *Guard) Middleware() guard.Middleware {
	return func(next guard.Handler) guard.Handler { return &handler{g: g, next: next} }
}

type handler struct {
	g    *Guard
	next guard.Handler
}

// inputRequiredMethods are the requests a 2026-07-28 server may answer with input_required.
var inputRequiredMethods = map[string]bool{"tools/call": true, "prompts/get": true, "resources/read": true}

// elicitKey names the gateway's request in inputRequests and inputResponses.
const elicitKey = "portcullis_approval"

func (h *handler) Handle(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
	if c.Direction == guard.Outbound && c.Msg.Method == "notifications/progress" && reported.active.Load() > 0 {
		c.Msg = reported.continued(c)
	}
	if len(c.Holds) == 0 || c.Direction != guard.Inbound || !c.Msg.IsRequest() {
		return h.next.Handle(ctx, c)
	}
	return h.held(ctx, c)
}

// held decides a call that a guard before this one asked to hold. (Apart from Handle, so
// that the rest of the chain, run from Handle for every other call, does not run on top
// of this frame's 2.8 KiB.)
func (h *handler) held(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
	g := h.g
	// The person's time is the approval's timeout, not the server's call_timeout: the
	// call's timeouts stop while it is held and go on when it is released.
	resume := guard.PauseTimeouts(ctx)
	held := true
	defer func() {
		if held {
			resume()
		}
	}()
	next := h.next
	h = &handler{g: g, next: guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
		held = false
		resume()
		return next.Handle(ctx, c)
	})}
	if g.o.Store == nil {
		return nil, guard.Deny(Name, jsonrpc.CodeApprovalRequired, "%s needs a person's approval (%s), and the gateway has no store to hold approvals in, so it was refused", what(c), reasons(c.Holds))
	}
	args, err := Arguments(c.Msg)
	if err != nil {
		return nil, guard.Deny(Name, jsonrpc.CodeInvalidParams, "%v", err)
	}
	b := Binding(c, args)
	session := sessionOf(c)
	now := g.o.Now()

	a := store.Approval{
		ID: NewID(), ApprovalBinding: b, Session: session, Arguments: args, Reason: reasons(c.Holds),
		Approvers: approvers(c.Holds), Status: store.ApprovalPending, CreatedAt: now, ExpiresAt: now.Add(g.c.Timeout),
	}
	ask := g.elicit && len(a.Approvers) == 0 && c.HasCapability("elicitation") && formMode(c)
	mrtr := ask && c.Era == "modern" && inputRequiredMethods[c.Msg.Method]

	// A 2026-07-28 retry: the answer to the gateway's own question.
	if v, ok := jsonrpc.LookupString(c.Msg.Params, "requestState"); ok && mrtr && isState(v) {
		return h.resume(ctx, c, a, v)
	}
	if grant, err := g.o.Store.FindGrant(ctx, b, session, now); err == nil {
		trail.Decide(ctx, trail.Event{Code: trail.CodeApprovalGranted, Guard: Name, Decision: "approved", Approval: grant.ID,
			Approver: approverOf(grant), Message: fmt.Sprintf("released by approval %s (scope %s)", grant.ID, scopeText(grant))})
		return h.pass(ctx, c)
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, g.failed(c, "look up earlier approvals", err)
	}
	if mrtr {
		// Nothing is stored until the answer comes back: a client that never retries
		// leaves no pending approval behind.
		return g.inputRequired(ctx, c, a)
	}
	if err := g.o.Store.CreateApproval(ctx, a); err != nil {
		return nil, g.failed(c, "record the pending approval", err)
	}
	g.log.LogAttrs(ctx, slog.LevelInfo, "call held for approval", slog.String("approval", a.ID), slog.String("principal", b.Principal),
		slog.String("upstream", b.Server), slog.String("method", b.Method), slog.String("tool", b.Tool), slog.String("reason", a.Reason))
	if g.o.Notify != nil {
		g.o.Notify(context.WithoutCancel(ctx), a)
	}
	settled, last, err := g.hold(ctx, c, a, ask && c.Era != "modern")
	if last >= 0 {
		// The client was told of progress while the call was held: the server's own
		// reports for the token count on from past the gateway's until the call ends.
		defer reported.start(c, last)()
	}
	if err != nil {
		return nil, err
	}
	return h.finish(ctx, c, settled)
}

// hold waits for approval a to be settled, asking the user meanwhile when ask is set, and
// returns it settled, with the last progress reported to the client meanwhile (-1: none).
// At the timeout it is settled as expired.
func (g *Guard) hold(ctx context.Context, c *guard.Call, a store.Approval, ask bool) (store.Approval, float64, error) {
	wctx, cancel := context.WithDeadline(ctx, a.ExpiresAt)
	defer cancel()
	wake := make(chan struct{}, 1)
	var wg sync.WaitGroup
	if ask {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.askLegacy(wctx, c, a)
			wake <- struct{}{}
		}()
	}
	last := -1.0
	if token, ok := progressToken(c.Msg); ok && c.Client != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last = g.reportHeld(wctx, c, a, token)
		}()
	}
	settled, err := waitSettled(wctx, g.o.Store, a.ID, g.poll, wake)
	cancel()
	wg.Wait()
	if err == nil {
		return settled, last, nil
	}
	// The deadline passed, or the client went away: nobody approved it in time.
	bg := context.WithoutCancel(ctx)
	note := "nobody decided within " + g.c.Timeout.String()
	if ctx.Err() != nil {
		note = "the client cancelled the call"
	}
	settled, serr := g.o.Store.SettleApproval(bg, a.ID, store.ApprovalDecision{Status: store.ApprovalExpired, Via: "timeout", Note: note, At: g.o.Now()})
	if serr != nil && !errors.Is(serr, store.ErrNotPending) {
		return store.Approval{}, last, g.failed(c, "expire the approval", serr)
	}
	Settled(a.ID)
	if ctx.Err() != nil && settled.Status != store.ApprovalApproved {
		return store.Approval{}, last, ctx.Err()
	}
	return settled, last, nil
}

// askLegacy asks the user of a legacy client with elicitation/create and settles the
// approval with the answer. Errors leave it pending for others to settle.
func (g *Guard) askLegacy(ctx context.Context, c *guard.Call, a store.Approval) {
	req := jsonrpc.NewRequest(nil, "elicitation/create", g.question(c, a, false))
	resp, err := c.Client.Request(ctx, req)
	if err != nil || resp == nil || resp.Error != nil {
		if ctx.Err() == nil {
			msg := "no answer"
			if err != nil {
				msg = err.Error()
			} else if resp != nil && resp.Error != nil {
				msg = resp.Error.Message
			}
			g.log.LogAttrs(ctx, slog.LevelWarn, "the client could not ask its user; the approval stays pending", slog.String("approval", a.ID), slog.String("err", msg))
		}
		return
	}
	d, ok := g.answer(resp.Result, c)
	if !ok {
		g.log.LogAttrs(ctx, slog.LevelWarn, "the client's answer to the approval question is not an elicitation result; the approval stays pending", slog.String("approval", a.ID))
		return
	}
	if _, err := Settle(context.WithoutCancel(ctx), g.o.Store, a.ID, d, g.o.Now()); err != nil && !errors.Is(err, store.ErrNotPending) {
		g.log.LogAttrs(ctx, slog.LevelError, "could not record the user's answer", slog.String("approval", a.ID), slog.String("err", err.Error()))
	}
}

// answer reads an elicitation result: accept (with the scope chosen), decline or cancel.
func (g *Guard) answer(result []byte, c *guard.Call) (Decision, bool) {
	var r struct {
		Action  string `json:"action"`
		Content struct {
			Scope string `json:"scope"`
		} `json:"content"`
	}
	if json.Unmarshal(result, &r) != nil {
		return Decision{}, false
	}
	d := Decision{Approver: c.Principal.ID, Via: "elicitation"}
	if d.Approver == "" {
		d.Approver = "the caller"
	}
	switch r.Action {
	case "accept":
		d.Approve = true
		switch r.Content.Scope {
		case "", store.ScopeOnce:
			d.Scope = store.ScopeOnce
		case store.ScopeSession:
			if sessionOf(c) == "" {
				return Decision{}, false
			}
			d.Scope = store.ScopeSession
		case store.ScopeDuration:
			d.Scope, d.For = store.ScopeDuration, g.c.GrantDuration
		default:
			return Decision{}, false
		}
	case "decline", "cancel":
		d.Note = "the user chose " + r.Action
	default:
		return Decision{}, false
	}
	return d, true
}

// question is the elicitation/create params that ask the user about approval a, showing
// the exact server, tool and arguments.
func (g *Guard) question(c *guard.Call, a store.Approval, modern bool) map[string]any {
	var b strings.Builder
	fmt.Fprintf(&b, "Portcullis holds this call until you approve it.\n\nServer: %s\n", orNone(a.Server))
	switch a.Method {
	case "tools/call":
		fmt.Fprintf(&b, "Tool: %s\n", a.Tool)
	case "prompts/get":
		fmt.Fprintf(&b, "Prompt: %s\n", a.Tool)
	default:
		fmt.Fprintf(&b, "Request: %s %s\n", a.Method, a.Tool)
	}
	fmt.Fprintf(&b, "Arguments: %s\nWhy: %s\nApproval: %s (expires %s)", a.Arguments, a.Reason, a.ID, a.ExpiresAt.UTC().Format(time.RFC3339))
	options := []map[string]any{{"const": store.ScopeOnce, "title": "This call only"}}
	if !modern && sessionOf(c) != "" {
		options = append(options, map[string]any{"const": store.ScopeSession, "title": "These arguments, for this session"})
	}
	options = append(options, map[string]any{"const": store.ScopeDuration, "title": fmt.Sprintf("These arguments, for %s", g.c.GrantDuration)})
	p := map[string]any{
		"message": b.String(),
		"requestedSchema": map[string]any{
			"type": "object",
			"properties": map[string]any{
				"scope": map[string]any{"type": "string", "title": "Approve", "oneOf": options, "default": store.ScopeOnce},
			},
		},
	}
	if modern {
		p["mode"] = "form"
	}
	return p
}

// inputRequired answers a 2026-07-28 client with an input_required result: an
// elicitation request and a signed requestState for the retry.
func (g *Guard) inputRequired(ctx context.Context, c *guard.Call, a store.Approval) (*jsonrpc.Message, error) {
	signer, err := g.sign()
	if err != nil {
		return nil, g.failed(c, "load the approval key", err)
	}
	trail.Decide(ctx, trail.Event{Code: trail.CodeApprovalAsked, Guard: Name, Decision: "held", Approval: a.ID,
		Message: "the user was asked (input_required); the call waits for the client's retry"})
	return jsonrpc.NewResult(c.Msg.ID, map[string]any{
		"resultType":    "input_required",
		"inputRequests": map[string]any{elicitKey: map[string]any{"method": "elicitation/create", "params": g.question(c, a, true)}},
		"requestState":  signer.State(a),
	}), nil
}

// resume handles the retry of a 2026-07-28 client that carries the gateway's requestState.
// The approval a (built for this retry) takes the id and expiry of the state; it is
// recorded only with the answer, and its id is new only once: a second retry with the
// same state finds it recorded and releases nothing.
func (h *handler) resume(ctx context.Context, c *guard.Call, a store.Approval, v string) (*jsonrpc.Message, error) {
	g := h.g
	now := g.o.Now()
	signer, err := g.sign()
	if err != nil {
		return nil, g.failed(c, "load the approval key", err)
	}
	st, err := signer.Check(v, a.ApprovalBinding, now)
	if err != nil {
		return nil, guard.Deny(Name, jsonrpc.CodeDenied, "%s was refused: %v", what(c), err)
	}
	a.ID, a.ExpiresAt = st.ID, time.Unix(st.Expires, 0).UTC()
	raw, ok := jsonrpc.LookupPath(c.Msg.Params, "inputResponses", elicitKey)
	if !ok {
		return g.inputRequired(ctx, c, a) // asked again, as the spec says
	}
	d, ok := g.answer(raw, c)
	if !ok {
		return nil, guard.Deny(Name, jsonrpc.CodeInvalidParams, "inputResponses.%s is not an elicitation result (accept, decline or cancel)", elicitKey)
	}
	if err := g.o.Store.CreateApproval(ctx, a); errors.Is(err, store.ErrExists) {
		used, gerr := g.o.Store.GetApproval(ctx, a.ID)
		if gerr != nil {
			return nil, g.failed(c, "read the approval", gerr)
		}
		return h.finish(ctx, c, spent(used))
	} else if err != nil {
		return nil, g.failed(c, "record the approval", err)
	}
	settled, err := Settle(ctx, g.o.Store, a.ID, d, now)
	if errors.Is(err, store.ErrNotPending) {
		return h.finish(ctx, c, spent(settled))
	}
	if err != nil {
		return nil, g.failed(c, "record the user's answer", err)
	}
	return h.finish(ctx, c, settled)
}

// spent is an approval a retry found already settled: a requestState is used once, so an
// approval it finds approved was used by an earlier retry and releases nothing.
func spent(a store.Approval) store.Approval {
	if a.Status == store.ApprovalApproved {
		a.Status = "used"
	}
	return a
}

// finish passes a call whose approval was approved and refuses it otherwise.
func (h *handler) finish(ctx context.Context, c *guard.Call, a store.Approval) (*jsonrpc.Message, error) {
	switch a.Status {
	case store.ApprovalApproved:
		trail.Decide(ctx, trail.Event{Code: trail.CodeApproved, Guard: Name, Decision: "approved", Approval: a.ID, Approver: approverOf(a),
			Message: fmt.Sprintf("approved (scope %s)%s", scopeText(a), noteText(a))})
		return h.pass(ctx, c)
	case store.ApprovalDenied:
		trail.Decide(ctx, trail.Event{Code: trail.CodeApprovalDenied, Guard: Name, Decision: "denied", Approval: a.ID, Approver: approverOf(a),
			Message: "denied" + noteText(a)})
		r := guard.Deny(Name, jsonrpc.CodeDenied, "%s was denied by %s (approval %s)%s", what(c), approverOf(a), a.ID, noteText(a))
		r.Data = map[string]any{"approval": a.ID, "status": a.Status}
		return nil, r
	case store.ApprovalExpired:
		trail.Decide(ctx, trail.Event{Code: trail.CodeApprovalExpired, Guard: Name, Decision: "denied", Approval: a.ID,
			Message: "expired: " + orNone(a.Note)})
		r := guard.Deny(Name, jsonrpc.CodeDenied, "%s was refused: nobody approved it in time (approval %s expired)", what(c), a.ID)
		r.Data = map[string]any{"approval": a.ID, "status": a.Status}
		return nil, r
	default:
		r := guard.Deny(Name, jsonrpc.CodeDenied, "%s was refused: approval %s was already used (an approval releases one call; retry the call to be asked again)", what(c), a.ID)
		r.Data = map[string]any{"approval": a.ID, "status": a.Status}
		return nil, r
	}
}

// pass sends an approved call on, without its holds and the gateway's retry fields.
func (h *handler) pass(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
	c.Holds = nil
	if c.Era == "modern" {
		if p := stripRetry(c.Msg.Params); len(p) != len(c.Msg.Params) {
			m := *c.Msg
			m.Params = p
			c.Msg = &m
		}
	}
	return h.next.Handle(ctx, c)
}

// failed refuses a call when approvals cannot be kept: fail closed.
func (g *Guard) failed(c *guard.Call, doing string, err error) error {
	r := guard.Deny(Name, jsonrpc.CodeApprovalRequired, "%s needs a person's approval, and the gateway could not %s, so it was refused", what(c), doing)
	g.log.Error("approval store failed; the call was refused", "incident", r.Incident, "err", err)
	return r
}

// NewID returns a fresh approval id: "ap_" and 16 hex digits.
func NewID() string {
	var b [8]byte
	rand.Read(b[:])
	return "ap_" + hex.EncodeToString(b[:])
}

// sessionOf is the session a session scope is bound to: none for 2026-07-28 clients,
// whose requests share no session.
func sessionOf(c *guard.Call) string {
	if c.Era == "modern" {
		return ""
	}
	return c.Session
}

// formMode reports whether the client's elicitation capability includes form mode (an
// empty object means form only).
func formMode(c *guard.Call) bool {
	raw, ok := jsonrpc.Lookup(c.Client.Capabilities(), "elicitation")
	if !ok {
		return false
	}
	keys := jsonrpc.Keys(raw)
	return len(keys) == 0 || slices.Contains(keys, "form")
}

func what(c *guard.Call) string {
	if c.Name != "" {
		if c.Server != "" {
			return fmt.Sprintf("%s of %q on server %q", c.Msg.Method, c.Name, c.Server)
		}
		return fmt.Sprintf("%s of %q", c.Msg.Method, c.Name)
	}
	return c.Msg.Method
}

func reasons(hs []guard.Hold) string {
	parts := make([]string, 0, len(hs))
	for _, h := range hs {
		parts = append(parts, h.Guard+": "+h.Reason)
	}
	return strings.Join(parts, "; ")
}

func approvers(hs []guard.Hold) []string {
	var out []string
	for _, h := range hs {
		for _, a := range h.Approvers {
			if !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	return out
}

func approverOf(a store.Approval) string {
	if a.Via == "" {
		return a.Approver
	}
	return a.Approver + " via " + a.Via
}

func scopeText(a store.Approval) string {
	if a.Scope == store.ScopeDuration && a.GrantUntil != nil {
		return "duration, until " + a.GrantUntil.UTC().Format(time.RFC3339)
	}
	return a.Scope
}

func noteText(a store.Approval) string {
	if a.Note == "" {
		return ""
	}
	return ": " + a.Note
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
