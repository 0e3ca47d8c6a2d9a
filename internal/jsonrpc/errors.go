package jsonrpc

import (
	"encoding/json"
	"fmt"
)

// JSON-RPC 2.0 error codes.
const (
	CodeParseError     = -32700
	CodeInvalidRequest = -32600
	CodeMethodNotFound = -32601
	CodeInvalidParams  = -32602
	CodeInternalError  = -32603
)

// MCP 2026-07-28 error codes (the -32020..-32099 range is reserved for the specification).
const (
	CodeHeaderMismatch                  = -32020
	CodeMissingRequiredClientCapability = -32021
	CodeUnsupportedProtocolVersion      = -32022
)

// Portcullis error codes, from the implementation-defined range -32000..-32019. Every
// refusal the gateway makes uses one of these, with an incident id in the error data.
const (
	CodeDenied              = -32010 // a guard refused the call (policy, detector, registry)
	CodeLimitExceeded       = -32011 // a limit refused the call (size, rate, concurrency, budget)
	CodeUpstreamUnavailable = -32012 // the server could not be reached, or crashed
	CodeUpstreamTimeout     = -32013 // the server did not answer in time
	CodeAuditUnavailable    = -32014 // the call could not be recorded, so it was refused
	CodeApprovalRequired    = -32015 // a human must approve the call
	CodeGatewayError        = -32016 // an internal fault in the gateway; refused, not passed
)

// Error is a JSON-RPC error object.
type Error struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

func (e *Error) Error() string { return fmt.Sprintf("jsonrpc error %d: %s", e.Code, e.Message) }

// Errorf returns an error with a formatted message.
func Errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// WithData returns a copy of e with data marshalled from v.
func (e *Error) WithData(v any) *Error {
	c := *e
	c.Data = mustRaw(v)
	return &c
}

func (e *Error) append(dst []byte) []byte {
	dst = append(dst, `{"code":`...)
	dst = fmt.Appendf(dst, "%d", e.Code)
	dst = append(dst, `,"message":`...)
	dst = AppendQuote(dst, e.Message)
	if len(e.Data) > 0 {
		dst = append(dst, `,"data":`...)
		dst = append(dst, e.Data...)
	}
	return append(dst, '}')
}
