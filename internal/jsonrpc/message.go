// Package jsonrpc is the gateway's strict, lossless JSON-RPC 2.0 layer.
//
// Only the envelope (jsonrpc, id, method, error) is decoded; params and result stay raw
// bytes and are written back byte for byte unless a guard replaces them. A message is
// rejected at the edge when it could be read two ways: duplicate or case-colliding keys,
// invalid UTF-8 or lone surrogates, batches, excessive size or nesting. A decision is thus
// always made on exactly the bytes the other side will read.
package jsonrpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Defaults for Limits.
const (
	DefaultMaxBytes = 4 << 20
	DefaultMaxDepth = 64
)

// Limits bound what Decode accepts.
type Limits struct {
	MaxBytes int // whole message; 0 means DefaultMaxBytes
	MaxDepth int // nesting of objects and arrays; 0 means DefaultMaxDepth
}

func (l Limits) maxBytes() int {
	if l.MaxBytes <= 0 {
		return DefaultMaxBytes
	}
	return l.MaxBytes
}

func (l Limits) maxDepth() int {
	if l.MaxDepth <= 0 {
		return DefaultMaxDepth
	}
	return l.MaxDepth
}

// ID is the raw JSON of a request id: a string or a number. Nil means absent.
type ID []byte

// String returns the id as written.
func (id ID) String() string { return string(id) }

// IntID returns the ID for n.
func IntID(n int64) ID { return strconv.AppendInt(nil, n, 10) }

// Message is one JSON-RPC 2.0 request, notification or response.
type Message struct {
	ID     ID
	Method string
	Params json.RawMessage
	Result json.RawMessage
	Error  *Error
}

// IsRequest reports whether m is a request (a method and an id).
func (m *Message) IsRequest() bool { return m.Method != "" && m.ID != nil }

// IsNotification reports whether m is a notification (a method, no id).
func (m *Message) IsNotification() bool { return m.Method != "" && m.ID == nil }

// IsResponse reports whether m is a response (a result or an error).
func (m *Message) IsResponse() bool { return m.Method == "" }

// DecodeError is why a message was rejected. ID is the request id when it could be read,
// so that the error response can carry it.
type DecodeError struct {
	Code int
	Msg  string
	ID   ID
}

func (e *DecodeError) Error() string { return e.Msg }

// AsError converts e to a JSON-RPC error object.
func (e *DecodeError) AsError() *Error { return &Error{Code: e.Code, Message: e.Msg} }

// ErrTooLarge is wrapped by DecodeError messages about size.
var ErrTooLarge = errors.New("message too large")

// Decode parses one message under lim. The returned message's raw fields alias data.
func Decode(data []byte, lim Limits) (*Message, error) {
	if len(data) > lim.maxBytes() {
		return nil, &DecodeError{Code: CodeInvalidRequest, Msg: fmt.Sprintf("message of %d bytes exceeds the limit of %d bytes", len(data), lim.maxBytes())}
	}
	if !utf8.Valid(data) {
		return nil, &DecodeError{Code: CodeParseError, Msg: fmt.Sprintf("parse error: invalid UTF-8 at byte %d", invalidUTF8Offset(data))}
	}
	v := validatorPool.Get().(*validator)
	defer validatorPool.Put(v)
	v.reset(data, lim.maxDepth())
	v.skipSpace()
	if v.pos < len(data) && data[v.pos] == '[' {
		return nil, &DecodeError{Code: CodeInvalidRequest, Msg: "batch requests are not supported (JSON-RPC batching was removed from MCP)"}
	}
	if v.pos >= len(data) {
		return nil, &DecodeError{Code: CodeParseError, Msg: "parse error: empty message"}
	}
	if data[v.pos] != '{' {
		if err := v.value(); err != nil {
			return nil, &DecodeError{Code: CodeParseError, Msg: "parse error: " + err.Error()}
		}
		return nil, &DecodeError{Code: CodeInvalidRequest, Msg: "invalid request: a message must be a JSON object"}
	}
	err := v.object(true)
	if err == nil {
		v.skipSpace()
		if v.pos != len(data) {
			err = v.fail("trailing data after JSON value")
		}
	}
	if err != nil {
		de := &DecodeError{Code: CodeParseError, Msg: "parse error: " + err.Error()}
		// Report the id when the top level got far enough to have one.
		for _, mb := range v.top {
			if string(mb.name) == "id" && validID(mb.value) {
				de.ID = ID(mb.value)
			}
		}
		return nil, de
	}
	return envelope(v.top)
}

func validID(raw []byte) bool {
	if len(raw) == 0 {
		return false
	}
	switch c := raw[0]; {
	case c == '"':
		return true
	case c == '-' || (c >= '0' && c <= '9'):
		return true
	}
	return false
}

func envelope(members []member) (*Message, error) {
	m := &Message{}
	var version []byte
	var hasID, hasMethod, hasResult, hasError, hasParams bool
	var errRaw []byte
	for _, mb := range members {
		switch string(mb.name) {
		case "jsonrpc":
			version = mb.value
		case "id":
			hasID = true
			m.ID = ID(mb.value)
		case "method":
			hasMethod = true
			if mb.value[0] != '"' {
				return nil, invalid(m, "\"method\" must be a string")
			}
			s, err := unquote(mb.value)
			if err != nil {
				return nil, invalid(m, "\"method\" is not a valid string")
			}
			m.Method = s
		case "params":
			hasParams = true
			m.Params = json.RawMessage(mb.value)
		case "result":
			hasResult = true
			m.Result = json.RawMessage(mb.value)
		case "error":
			hasError = true
			errRaw = mb.value
		default:
			// JSON-RPC 2.0 defines no other members. They are dropped: the envelope is
			// re-encoded from the members above, so what is checked is what is sent.
		}
	}
	if hasID {
		if bytes.Equal(m.ID, []byte("null")) {
			if !hasError {
				return nil, invalid(nil, "\"id\" must not be null")
			}
		} else if !validID(m.ID) {
			m.ID = nil
			return nil, invalid(nil, "\"id\" must be a string or a number")
		}
	}
	if string(version) != `"2.0"` {
		return nil, invalid(m, "\"jsonrpc\" must be \"2.0\"")
	}
	switch {
	case hasMethod:
		if hasResult || hasError {
			return nil, invalid(m, "a request must not have \"result\" or \"error\"")
		}
		if m.Method == "" {
			return nil, invalid(m, "\"method\" must not be empty")
		}
		if hasParams && m.Params[0] != '{' && m.Params[0] != '[' {
			return nil, invalid(m, "\"params\" must be an object or an array")
		}
	case hasResult && hasError:
		return nil, invalid(m, "a response must not have both \"result\" and \"error\"")
	case hasResult:
		if !hasID {
			return nil, invalid(m, "a response must have an \"id\"")
		}
	case hasError:
		e := &Error{}
		if err := json.Unmarshal(errRaw, e); err != nil || errRaw[0] != '{' {
			return nil, invalid(m, "\"error\" must be an object with \"code\" and \"message\"")
		}
		m.Error = e
		if !hasID {
			m.ID = ID("null")
		}
	default:
		return nil, invalid(m, "a message needs \"method\", \"result\" or \"error\"")
	}
	return m, nil
}

func invalid(m *Message, msg string) *DecodeError {
	de := &DecodeError{Code: CodeInvalidRequest, Msg: "invalid request: " + msg}
	if m != nil && m.ID != nil && validID(m.ID) {
		de.ID = m.ID
	}
	return de
}

func unquote(raw []byte) (string, error) {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), nil
	}
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err
}

// AppendQuote appends s as a JSON string.
func AppendQuote(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			b, _ := json.Marshal(s)
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// Append appends the encoding of m to dst. Raw fields are written as they are.
func (m *Message) Append(dst []byte) []byte {
	dst = append(dst, `{"jsonrpc":"2.0"`...)
	if m.ID != nil {
		dst = append(dst, `,"id":`...)
		dst = append(dst, m.ID...)
	}
	if m.Method != "" {
		dst = append(dst, `,"method":`...)
		dst = AppendQuote(dst, m.Method)
		if len(m.Params) > 0 {
			dst = append(dst, `,"params":`...)
			dst = append(dst, m.Params...)
		}
	} else if m.Error != nil {
		if m.ID == nil {
			dst = append(dst, `,"id":null`...)
		}
		dst = append(dst, `,"error":`...)
		dst = m.Error.append(dst)
	} else {
		dst = append(dst, `,"result":`...)
		if len(m.Result) == 0 {
			dst = append(dst, "{}"...)
		} else {
			dst = append(dst, m.Result...)
		}
	}
	return append(dst, '}')
}

// Marshal returns the encoding of m.
func (m *Message) Marshal() []byte { return m.Append(make([]byte, 0, 64+len(m.Params)+len(m.Result))) }

// MarshalJSON implements json.Marshaler.
func (m *Message) MarshalJSON() ([]byte, error) { return m.Marshal(), nil }

// NewRequest returns a request with params marshalled from p (raw when p is json.RawMessage).
func NewRequest(id ID, method string, params any) *Message {
	return &Message{ID: id, Method: method, Params: mustRaw(params)}
}

// NewNotification returns a notification.
func NewNotification(method string, params any) *Message {
	return &Message{Method: method, Params: mustRaw(params)}
}

// NewResult returns a response carrying result.
func NewResult(id ID, result any) *Message {
	return &Message{ID: id, Result: mustRaw(result)}
}

// NewError returns an error response.
func NewError(id ID, e *Error) *Message {
	if id == nil {
		id = ID("null")
	}
	return &Message{ID: id, Error: e}
}

func mustRaw(v any) json.RawMessage {
	switch v := v.(type) {
	case nil:
		return nil
	case json.RawMessage:
		return v
	case []byte:
		return v
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("jsonrpc: cannot marshal %T: %v", v, err))
	}
	return b
}
