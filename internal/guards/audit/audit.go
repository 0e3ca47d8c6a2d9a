// Package audit is the outermost guard: it records every request and its outcome in the
// audit trail (package internal/audit) and refuses what it cannot record.
//
// For each request (client to server, and server to client: sampling, elicitation,
// roots) it records a request event before passing the request on, and a response event
// (decision, refusing guard, error code, incident, latency, findings) before releasing the
// answer. When recording fails, the call is refused with CodeAuditUnavailable and an
// incident id, and the server never sees the request (or the client never sees the
// answer). Notifications pass without being recorded.
//
// Arguments and results are written as policy says: hashed (HMAC-SHA256 under the
// per-install key; the default), full, or omitted. The request event never holds the
// arguments in clear, because detectors have not run yet when it is written; with
// "full", the response event holds them, with every place a detector reported replaced
// by "[redacted]".
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	trail "github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
	"github.com/portcullis-mcp/portcullis/internal/metrics"
)

// Name is the guard's name in configuration and refusals.
const Name = "audit"

// Recorder is what the guard records into (a *audit.Broker).
type Recorder interface {
	Record(ctx context.Context, e *trail.Event) error
}

// Options parameterize the guard.
type Options struct {
	Key       *trail.Key // for hashed arguments and results
	Arguments Policy
	Results   Policy
	Alerts    []*alertRule // compiled guards.audit.alerts
	Logger    *slog.Logger
	Now       func() time.Time
}

var alertsFired = metrics.Default.NewCounterVec("portcullis_alerts_total",
	"Alert rules (guards.audit.alerts) that fired, by rule.", "rule")

// New returns the guard recording into r.
func New(r Recorder, o Options) guard.Middleware {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Key == nil {
		o.Key = trail.NewKey([]byte(trail.NewID()))
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return func(next guard.Handler) guard.Handler { return &auditor{r: r, o: o, next: next} }
}

type auditor struct {
	r    Recorder
	o    Options
	next guard.Handler
}

func (a *auditor) Handle(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
	m := c.Msg
	if !m.IsRequest() {
		return a.next.Handle(ctx, c)
	}
	start := a.o.Now()
	req := a.event(c, start)
	if c.Direction == guard.Outbound {
		req.Code = trail.CodeServerRequest
	} else {
		req.Code = trail.CodeRequest
	}
	req.Kind = trail.KindRequest
	req.TraceID, req.SpanID = traceparent(m)
	args := arguments(m)
	if len(args) > 0 && a.o.Arguments != Omit {
		req.ArgumentsHMAC = a.o.Key.Sum(args)
	}
	if err := a.r.Record(ctx, req); err != nil {
		return nil, a.unavailable(c, err)
	}
	notes := &trail.Notes{}
	resp, err := a.next.Handle(trail.WithNotes(ctx, notes), c)
	end := a.o.Now()
	for _, d := range notes.Decisions() {
		e := a.event(c, end)
		e.Kind, e.Code, e.Guard, e.Message, e.Approval, e.Approver = trail.KindDecision, d.Code, d.Guard, d.Message, d.Approval, d.Approver
		e.Decision, e.Call = d.Decision, req.ID
		if rerr := a.r.Record(ctx, e); rerr != nil {
			return nil, a.unavailable(c, rerr)
		}
	}
	out := a.event(c, end)
	out.Kind = trail.KindResponse
	out.Call = req.ID
	out.LatencyMicros = end.Sub(start).Microseconds()
	out.Findings = notes.Findings()
	if out.TraceID, out.SpanID = notes.Span(); out.TraceID == "" {
		out.TraceID, out.SpanID = req.TraceID, req.SpanID
	}
	if err != nil {
		err = a.outcome(out, err)
	} else {
		out.Decision = trail.Allowed
		out.Code = trail.CodeAllowed
		if c.Direction == guard.Outbound {
			out.Code = trail.CodeServerAllowed
		}
		if resp != nil && resp.Error != nil {
			out.ErrorCode = resp.Error.Code // a server's error: its message stays out of the trail
		}
	}
	if a.o.Arguments == Full && len(args) > 0 {
		out.Arguments = redact(args, out.Findings, "arguments")
	}
	if resp != nil && len(resp.Result) > 0 {
		switch a.o.Results {
		case Full:
			out.Result = redact(resp.Result, out.Findings, "result")
		case Hashed:
			out.ResultHMAC = a.o.Key.Sum(resp.Result)
		}
	}
	if rerr := a.r.Record(ctx, out); rerr != nil {
		return nil, a.unavailable(c, rerr)
	}
	observe(c, out)
	if len(out.Findings) > 0 && len(a.o.Alerts) > 0 {
		a.alert(ctx, out, end)
	}
	return resp, err
}

// alert records the alerts out's findings fire. The call was recorded already: an alert
// that cannot be recorded is logged, and the call stands.
func (a *auditor) alert(ctx context.Context, out *trail.Event, now time.Time) {
	for _, r := range a.o.Alerts {
		ev := r.observe(out, now)
		if ev == nil {
			continue
		}
		alertsFired.Inc(r.Name)
		if err := a.r.Record(ctx, ev); err != nil {
			a.o.Logger.Error("AUDIT UNAVAILABLE: an alert could not be recorded", "alert", r.Name, "call", out.ID, "err", err)
			continue
		}
		a.o.Logger.Warn("alert", "alert", r.Name, "code", ev.Code, "principal", ev.Principal, "server", ev.Server, "tool", ev.Tool, "message", ev.Message)
	}
}

// traceparent returns the trace and parent span of the client's W3C trace context in
// params._meta, when it has a valid one.
func traceparent(m *jsonrpc.Message) (traceID, spanID string) {
	meta, ok := jsonrpc.Lookup(m.Params, "_meta")
	if !ok {
		return "", ""
	}
	tp, ok := jsonrpc.LookupString(meta, "traceparent")
	// version-traceid-parentid-flags: 2+1+32+1+16+1+2
	if !ok || len(tp) < 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' {
		return "", ""
	}
	traceID, spanID = tp[3:35], tp[36:52]
	if !lowerHex(traceID) || !lowerHex(spanID) || strings.Trim(traceID, "0") == "" || strings.Trim(spanID, "0") == "" {
		return "", ""
	}
	return traceID, spanID
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func (a *auditor) event(c *guard.Call, t time.Time) *trail.Event {
	e := &trail.Event{Time: t, Direction: c.Direction.String(), Principal: c.Principal.ID, AuthMethod: c.Principal.Method,
		Session: c.Session, Server: c.Server, Method: c.Msg.Method, Tool: c.Name, RequestID: string(c.Msg.ID)}
	if len(e.RequestID) > 1 && e.RequestID[0] == '"' {
		if s, err := strconv.Unquote(e.RequestID); err == nil {
			e.RequestID = s
		}
	}
	return e
}

// outcome fills the decision from the chain's error and returns the error the client
// gets, so that the incident in the trail is the one the client sees.
func (a *auditor) outcome(e *trail.Event, err error) error {
	outbound := e.Direction == "outbound"
	var r *guard.Refusal
	if errors.As(err, &r) {
		e.Guard, e.ErrorCode, e.Message, e.Incident = r.Guard, r.Code, r.Message, r.Incident
		e.Findings = mergeFindings(e.Findings, findingsOf(r.Guard, r.Data))
		if upstreamFault(r.Code) {
			e.Decision = trail.Failed
			e.Code = pick(outbound, trail.CodeServerFailed, trail.CodeFailed)
		} else {
			e.Decision = trail.Denied
			e.Code = pick(outbound, trail.CodeServerDenied, trail.DeniedCode(r.Guard, r.Code))
		}
		return err
	}
	je, incident := guard.ErrorFor(err)
	e.Decision = trail.Failed
	e.Code = pick(outbound, trail.CodeServerFailed, trail.CodeFailed)
	e.ErrorCode, e.Message, e.Incident = je.Code, je.Message, incident
	if incident == "" {
		return err
	}
	// An internal fault: the client gets the incident the trail holds, the log the cause.
	return &refusalError{r: &guard.Refusal{Guard: "gateway", Code: je.Code, Message: je.Message, Incident: incident}, cause: err}
}

func pick(outbound bool, out, in string) string {
	if outbound {
		return out
	}
	return in
}

func upstreamFault(code int) bool {
	return code == jsonrpc.CodeUpstreamUnavailable || code == jsonrpc.CodeUpstreamTimeout || code == jsonrpc.CodeGatewayError
}

// unavailable is the refusal of a call that could not be recorded.
func (a *auditor) unavailable(c *guard.Call, err error) error {
	metrics.AuditEvents.Inc("refused")
	metrics.Refusals.Inc(Name, strconv.Itoa(jsonrpc.CodeAuditUnavailable))
	metrics.Calls.Inc(c.Direction.String(), c.Server, c.Msg.Method, trail.Denied)
	r := guard.Deny(Name, jsonrpc.CodeAuditUnavailable, "the call could not be recorded in the audit trail, so it was refused")
	return &refusalError{r: r, cause: err}
}

// refusalError is a refusal (what the client gets) with its cause (what the log gets).
type refusalError struct {
	r     *guard.Refusal
	cause error
}

func (e *refusalError) Error() string   { return e.r.Error() + ": " + e.cause.Error() }
func (e *refusalError) Unwrap() []error { return []error{e.r, e.cause} }

// arguments returns what a request's arguments are: params.arguments for tools/call and
// prompts/get, the params otherwise.
func arguments(m *jsonrpc.Message) []byte {
	if len(m.Params) == 0 {
		return nil
	}
	if m.Method == "tools/call" || m.Method == "prompts/get" {
		if v, ok := jsonrpc.Lookup(m.Params, "arguments"); ok {
			return v
		}
		return nil
	}
	return m.Params
}

// findingsOf reads the findings a detector's refusal carries in its data. Detectors on
// arguments point into params ("/arguments/..."): the pointers are made relative to the
// arguments, which is what the trail keeps.
func findingsOf(guardName string, data map[string]any) []trail.Finding {
	list, ok := data["findings"]
	if !ok {
		return nil
	}
	b, err := json.Marshal(list)
	if err != nil {
		return nil
	}
	var fs []trail.Finding
	if json.Unmarshal(b, &fs) != nil {
		return nil
	}
	for i := range fs {
		switch {
		case fs[i].In != "":
		case guardName == "detect-args":
			fs[i].In = "arguments"
			if p, ok := strings.CutPrefix(fs[i].Pointer, "/arguments"); ok && (p == "" || p[0] == '/') {
				fs[i].Pointer = p
			}
		case guardName == "detect-results":
			fs[i].In = "result"
		}
	}
	return fs
}

// mergeFindings adds the findings of more that are not in fs already (a detector reports
// what it found, and its refusal carries the findings again).
func mergeFindings(fs, more []trail.Finding) []trail.Finding {
	for _, f := range more {
		if !slices.ContainsFunc(fs, func(g trail.Finding) bool {
			return g.Detector == f.Detector && g.Rule == f.Rule && g.Pointer == f.Pointer && g.In == f.In
		}) {
			fs = append(fs, f)
		}
	}
	return fs
}

// redact replaces the places findings point at (in "arguments" or "result", or anywhere
// when a finding does not say) with "[redacted]". When a finding cannot be placed, the
// whole value is replaced: a secret is never written in clear.
func redact(v []byte, fs []trail.Finding, in string) json.RawMessage {
	var ptrs []string
	for _, f := range fs {
		if f.In == "" || f.In == in {
			ptrs = append(ptrs, f.Pointer)
		}
	}
	if len(ptrs) == 0 {
		return v
	}
	var doc any
	if json.Unmarshal(v, &doc) != nil {
		return json.RawMessage(`"[redacted]"`)
	}
	for _, p := range ptrs {
		var ok bool
		if doc, ok = replaceAt(doc, p); !ok {
			return json.RawMessage(`"[redacted]"`)
		}
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return json.RawMessage(`"[redacted]"`)
	}
	return b
}

// replaceAt replaces the value at RFC 6901 pointer p.
func replaceAt(doc any, p string) (any, bool) {
	if p == "" {
		return "[redacted]", true
	}
	if !strings.HasPrefix(p, "/") {
		return doc, false
	}
	toks := strings.Split(p[1:], "/")
	cur := doc
	for i, t := range toks {
		t = strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
		last := i == len(toks)-1
		switch x := cur.(type) {
		case map[string]any:
			if _, ok := x[t]; !ok {
				return doc, false
			}
			if last {
				x[t] = "[redacted]"
				return doc, true
			}
			cur = x[t]
		case []any:
			n, err := strconv.Atoi(t)
			if err != nil || n < 0 || n >= len(x) {
				return doc, false
			}
			if last {
				x[n] = "[redacted]"
				return doc, true
			}
			cur = x[n]
		default:
			return doc, false
		}
	}
	return doc, false
}

func observe(c *guard.Call, e *trail.Event) {
	metrics.AuditEvents.Add(2, "recorded")
	metrics.Calls.Inc(e.Direction, c.Server, c.Msg.Method, e.Decision)
	metrics.Latency.Observe(float64(e.LatencyMicros)/1e6, c.Server, c.Name)
	switch e.Decision {
	case trail.Denied:
		metrics.Refusals.Inc(e.Guard, strconv.Itoa(e.ErrorCode))
	case trail.Failed:
		metrics.UpstreamErrors.Inc(c.Server, strconv.Itoa(e.ErrorCode))
	}
	for _, f := range e.Findings {
		metrics.Findings.Inc(f.Detector, f.Severity)
	}
}
