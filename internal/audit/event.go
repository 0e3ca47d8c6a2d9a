// Package audit records what the gateway did: every call, every decision and who made it,
// as hash-chained events written to one or more sinks (a JSONL file, syslog, a webhook; the
// SQLite store plugs in as one more Sink).
//
// The model is Vault's audit broker: Broker.Record writes an event to every sink and
// succeeds when at least one sink recorded it; otherwise it returns ErrAuditUnavailable
// and the caller (the audit guard) refuses the call. Writes are detached from the caller's
// cancellation and bounded by their own timeout.
//
// Every event carries the hash of the event before it (Prev) and its own (Hash), computed
// over its canonical encoding (Event.AppendCanonical, the bytes a JSONL file stores), so
// that Verify names the first event that was altered, removed or reordered.
package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

// Kinds of events.
const (
	KindRequest  = "request"  // a request, recorded before it is passed on
	KindResponse = "response" // the outcome of a request, recorded before it is released
	KindSystem   = "system"   // the audit trail itself: started, recovered
	KindDecision = "decision" // a decision about a call while it was handled: an approval
	KindAlert    = "alert"    // an alert rule fired on findings
	KindAdmin    = "admin"    // what a person did on the dashboard: logins, approvals, exports
)

// Decisions.
const (
	Allowed = "allowed" // the call was passed on and answered (even with a server error)
	Denied  = "denied"  // a guard refused the call
	Failed  = "failed"  // the gateway could not complete the call (server unreachable, timeout, fault)
)

// Stable event codes: PC, four digits (group), then I (info), W (warning: a refusal), E
// (error) or A (alert: a security event a person must look at now). Codes never change
// meaning; new situations get new codes.
const (
	CodeRequest          = "PC1001I" // a client request, before it is passed on
	CodeAllowed          = "PC1002I" // a client request answered (result or server error)
	CodeFailed           = "PC1003E" // a client request the gateway could not complete
	CodeServerRequest    = "PC1101I" // a server-to-client request (sampling, elicitation, roots)
	CodeServerAllowed    = "PC1102I" // a server-to-client request answered
	CodeServerDenied     = "PC1103W" // a server-to-client request refused by a guard
	CodeServerFailed     = "PC1104E" // a server-to-client request that could not be delivered
	CodeStarted          = "PC1900I" // the audit trail (re)started
	CodeRecovered        = "PC1901W" // recording works again after calls were refused
	CodeDenied           = "PC2000W" // refused by a guard with no code of its own
	CodeDeniedAuthz      = "PC2001W" // refused by authz
	CodeApprovalRequired = "PC2002W" // authz or approval requires a person to approve
	CodeDeniedLimits     = "PC3001W" // refused by limits
	CodeDeniedDetectArgs = "PC4001W" // refused by detect-args
	CodeDeniedDetectRes  = "PC4002W" // refused by detect-results
	CodeDeniedDetectList = "PC4003W" // refused by detect-listings
	CodeDeniedRegistry   = "PC5001W" // refused by registry
	CodeRugPull          = "PC5002A" // a pinned tool, prompt or template definition changed (the diff is in the message); blocked until approved
	CodeRegistryRefused  = "PC5003A" // a server refused by the registry: not listed, source or binary hash or certificate not matching, bad signature
	CodePinReview        = "PC5004W" // a new definition held for review
	CodeSupplyChain      = "PC5005W" // a registry finding: unpinned package, server or tool imitating another, tool name collision
	CodeApprovalAsked    = "PC6000I" // a held call: the user was asked (2026-07-28 input_required)
	CodeDeniedApproval   = "PC6001W" // refused by approval (rejected or timed out)
	CodeApproved         = "PC6002I" // a held call approved by a person (approver, via, scope)
	CodeApprovalDenied   = "PC6003W" // a held call denied by a person
	CodeApprovalExpired  = "PC6004W" // a held call nobody settled in time: denied
	CodeApprovalGranted  = "PC6005I" // a held call released by an earlier session or duration approval
	CodeDeniedAudit      = "PC1902E" // refused because it could not be recorded (written on recovery)
	CodeAuthFailed       = "PC7001W" // a request refused at the edge: authentication failed
	CodeSessionMisuse    = "PC7002W" // a session id presented by a principal that does not own it
	CodeUnroutable       = "PC2003W" // refused by the router: unknown server prefix, name or resource
	CodeAlert            = "PC8001W" // an alert rule fired (findings of a severity, at a rate)
	CodeAdminLogin       = "PC9001I" // a person logged in to the dashboard
	CodeAdminLoginFailed = "PC9002W" // a dashboard login refused (bad key, no role)
	CodeAdminLogout      = "PC9003I" // a person logged out of the dashboard
	CodeAdminAction      = "PC9101I" // a dashboard action, recorded before it is carried out
	CodeAdminDone        = "PC9102I" // a dashboard action carried out
	CodeAdminRefused     = "PC9103W" // a dashboard action refused (role, CSRF) or that failed
	CodeSandboxStarted   = "PC8501I" // a local server started in the sandbox (the protections in force)
	CodeSandboxRefused   = "PC8502W" // a local server not started: the kernel lacks a protection it requires
	CodeSandboxExit      = "PC8503W" // a sandboxed server ended abnormally (a limit, a signal, an error)
	CodeEgressAllowed    = "PC8601I" // a sandboxed server's connection through the egress proxy
	CodeEgressDenied     = "PC8602W" // a sandboxed server's connection refused by the egress proxy
)

// DeniedCode returns the event code for a refusal by guard.
func DeniedCode(guard string, rpcCode int) string {
	if rpcCode == jsonrpc.CodeApprovalRequired {
		return CodeApprovalRequired
	}
	switch guard {
	case "authz":
		return CodeDeniedAuthz
	case "limits":
		return CodeDeniedLimits
	case "detect-args":
		return CodeDeniedDetectArgs
	case "detect-results":
		return CodeDeniedDetectRes
	case "detect-listings":
		return CodeDeniedDetectList
	case "registry":
		return CodeDeniedRegistry
	case "approval":
		return CodeDeniedApproval
	case "router":
		return CodeUnroutable
	}
	return CodeDenied
}

// Finding is what a detector found, as the audit trail keeps it: never the secret itself.
type Finding struct {
	Detector string `json:"detector"`
	Rule     string `json:"rule,omitempty"`
	Severity string `json:"severity"`
	Pointer  string `json:"pointer,omitempty"` // RFC 6901 pointer into the arguments or result
	In       string `json:"in,omitempty"`      // "arguments" or "result"
	Evidence string `json:"evidence,omitempty"`
	Message  string `json:"message,omitempty"`
}

// Event is one audit record. The JSON names are those of the canonical encoding.
type Event struct {
	Time      time.Time `json:"time"`
	Seq       uint64    `json:"seq"`
	ID        string    `json:"id"`
	Code      string    `json:"code"`
	Kind      string    `json:"kind"`
	Direction string    `json:"direction,omitempty"` // inbound (client to server) or outbound
	Decision  string    `json:"decision,omitempty"`

	Principal     string `json:"principal,omitempty"`
	AuthMethod    string `json:"auth_method,omitempty"`
	Session       string `json:"session,omitempty"`
	Server        string `json:"server,omitempty"`
	Method        string `json:"method,omitempty"`
	Tool          string `json:"tool,omitempty"` // tool or prompt name, or resource URI
	RequestID     string `json:"request_id,omitempty"`
	Call          string `json:"call,omitempty"`       // on a response: the id of its request's event
	Guard         string `json:"guard,omitempty"`      // the guard that refused the call
	ErrorCode     int    `json:"error_code,omitempty"` // the JSON-RPC error code the client got
	Message       string `json:"message,omitempty"`
	Incident      string `json:"incident,omitempty"`
	LatencyMicros int64  `json:"latency_us,omitempty"`
	Approval      string `json:"approval,omitempty"` // the id of the approval a decision event is about
	Approver      string `json:"approver,omitempty"` // who settled it, and how: "alice via cli"
	TraceID       string `json:"trace_id,omitempty"` // W3C trace context: the call's trace
	SpanID        string `json:"span_id,omitempty"`  // and span (the client's on a request, the gateway's on a response)
	Alert         string `json:"alert,omitempty"`    // on an alert: the rule that fired

	Findings      []Finding       `json:"findings,omitempty"`
	Arguments     json.RawMessage `json:"arguments,omitempty"`      // policy "full"
	ArgumentsHMAC string          `json:"arguments_hmac,omitempty"` // policy "hashed"
	Result        json.RawMessage `json:"result,omitempty"`
	ResultHMAC    string          `json:"result_hmac,omitempty"`

	Prev string `json:"prev"`
	Hash string `json:"hash"`

	// line is the canonical encoding Seal made (nil until sealed): sinks write it as it
	// is instead of encoding the event again.
	line []byte
}

// Latency returns the recorded latency.
func (e *Event) Latency() time.Duration { return time.Duration(e.LatencyMicros) * time.Microsecond }

// Genesis is the Prev of the first event of a trail.
const Genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// AppendBody appends the canonical encoding of e without its hash: a JSON object with the
// fields in a fixed order, empty fields left out, ending with "prev". The hash of an event
// is SHA-256 over exactly these bytes.
func (e *Event) AppendBody(dst []byte) []byte {
	dst = append(dst, `{"time":"`...)
	dst = appendTime(dst, e.Time)
	dst = append(dst, `","seq":`...)
	dst = strconv.AppendUint(dst, e.Seq, 10)
	dst = str(dst, "id", e.ID, true)
	dst = str(dst, "code", e.Code, true)
	dst = str(dst, "kind", e.Kind, true)
	dst = str(dst, "direction", e.Direction, false)
	dst = str(dst, "decision", e.Decision, false)
	dst = str(dst, "principal", e.Principal, false)
	dst = str(dst, "auth_method", e.AuthMethod, false)
	dst = str(dst, "session", e.Session, false)
	dst = str(dst, "server", e.Server, false)
	dst = str(dst, "method", e.Method, false)
	dst = str(dst, "tool", e.Tool, false)
	dst = str(dst, "request_id", e.RequestID, false)
	dst = str(dst, "call", e.Call, false)
	dst = str(dst, "guard", e.Guard, false)
	if e.ErrorCode != 0 {
		dst = append(dst, `,"error_code":`...)
		dst = strconv.AppendInt(dst, int64(e.ErrorCode), 10)
	}
	dst = str(dst, "message", e.Message, false)
	dst = str(dst, "incident", e.Incident, false)
	if e.LatencyMicros != 0 {
		dst = append(dst, `,"latency_us":`...)
		dst = strconv.AppendInt(dst, e.LatencyMicros, 10)
	}
	dst = str(dst, "approval", e.Approval, false)
	dst = str(dst, "approver", e.Approver, false)
	dst = str(dst, "trace_id", e.TraceID, false)
	dst = str(dst, "span_id", e.SpanID, false)
	dst = str(dst, "alert", e.Alert, false)
	if len(e.Findings) > 0 {
		dst = append(dst, `,"findings":[`...)
		for i, f := range e.Findings {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"detector":`...)
			dst = jsonrpc.AppendQuote(dst, f.Detector)
			dst = str(dst, "rule", f.Rule, false)
			dst = str(dst, "severity", f.Severity, true)
			dst = str(dst, "pointer", f.Pointer, false)
			dst = str(dst, "in", f.In, false)
			dst = str(dst, "evidence", f.Evidence, false)
			dst = str(dst, "message", f.Message, false)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	dst = raw(dst, "arguments", e.Arguments)
	dst = str(dst, "arguments_hmac", e.ArgumentsHMAC, false)
	dst = raw(dst, "result", e.Result)
	dst = str(dst, "result_hmac", e.ResultHMAC, false)
	dst = str(dst, "prev", e.Prev, true)
	return append(dst, '}')
}

// timeLayout is how event times are written: UTC, nanoseconds, always 30 bytes for the
// years 0 to 9999.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// appendTime appends t in timeLayout, as t.UTC().AppendFormat(dst, timeLayout) does,
// without parsing the layout for every event (a fifth of the cost of sealing one).
func appendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(dst, timeLayout)
	}
	hour, min, sec := t.Clock()
	var b [len(timeLayout)]byte
	put := func(i, v, n int) {
		for j := i + n - 1; j >= i; j-- {
			b[j] = byte('0' + v%10)
			v /= 10
		}
	}
	put(0, year, 4)
	b[4] = '-'
	put(5, int(month), 2)
	b[7] = '-'
	put(8, day, 2)
	b[10] = 'T'
	put(11, hour, 2)
	b[13] = ':'
	put(14, min, 2)
	b[16] = ':'
	put(17, sec, 2)
	b[19] = '.'
	put(20, t.Nanosecond(), 9)
	b[29] = 'Z'
	return append(dst, b[:]...)
}

// AppendCanonical appends the stored form of a sealed event: its body with the hash as
// the last member. It is one line of JSON (no newline). For an event sealed by Seal it is
// the line Seal made; a sealed event is not to be changed.
func (e *Event) AppendCanonical(dst []byte) []byte {
	if e.line != nil && e.Hash != "" {
		return append(dst, e.line...)
	}
	dst = e.AppendBody(dst)
	dst = dst[:len(dst)-1]
	dst = append(dst, `,"hash":"`...)
	dst = append(dst, e.Hash...)
	return append(dst, `"}`...)
}

// canonical returns the stored form of a sealed event; the bytes are not to be changed.
func (e *Event) canonical() []byte {
	if e.line != nil && e.Hash != "" {
		return e.line
	}
	return e.AppendCanonical(nil)
}

func str(dst []byte, key, v string, always bool) []byte {
	if v == "" && !always {
		return dst
	}
	dst = append(dst, ',', '"')
	dst = append(dst, key...)
	dst = append(dst, '"', ':')
	return jsonrpc.AppendQuote(dst, v)
}

func raw(dst []byte, key string, v json.RawMessage) []byte {
	if len(v) == 0 {
		return dst
	}
	dst = append(dst, ',', '"')
	dst = append(dst, key...)
	dst = append(dst, '"', ':')
	if bytes.IndexByte(v, 0) >= 0 {
		// Not JSON (no JSON text holds a NUL byte), and the store journal ends at its
		// first NUL: kept as a string, escaped.
		return jsonrpc.AppendQuote(dst, string(v))
	}
	if bytes.ContainsAny(v, "\n\r\t ") {
		var b bytes.Buffer
		if json.Compact(&b, v) == nil {
			return append(dst, b.Bytes()...)
		}
		return jsonrpc.AppendQuote(dst, string(v)) // not JSON: kept as a string
	}
	return append(dst, v...)
}

// ParseLine decodes one stored event.
func ParseLine(line []byte) (*Event, error) {
	var e Event
	if err := json.Unmarshal(line, &e); err != nil {
		return nil, fmt.Errorf("not an audit event: %w", err)
	}
	if e.ID == "" || e.Code == "" || e.Hash == "" {
		return nil, fmt.Errorf("not an audit event: id, code or hash missing")
	}
	return &e, nil
}
