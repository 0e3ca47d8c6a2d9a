package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// rpcID is a JSON-RPC id decoded without allocating. mcpload only sends
// integer ids, so anything else (a string, a fraction) never matches.
type rpcID struct {
	set   bool // the member was present and not null
	isNum bool // it was an integer that fits in int64
	num   int64
}

func (r *rpcID) UnmarshalJSON(b []byte) error {
	*r = rpcID{}
	if len(b) == 0 || b[0] == 'n' { // null
		return nil
	}
	r.set = true
	r.num, r.isNum = parseInt(b)
	return nil
}

// parseInt parses a JSON integer literal (optional '-', digits only).
func parseInt(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg, b = true, b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

type rpcError struct {
	Code    int64           `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// rpcHeader holds the members every JSON-RPC message may carry. A message with a
// method is a request or notification from the server, not our response.
type rpcHeader struct {
	ID     rpcID     `json:"id"`
	Method string    `json:"method"`
	Error  *rpcError `json:"error"`
}

func (h *rpcHeader) header() *rpcHeader { return h }

// envelope is a JSON-RPC response shape that findResponse can decode into.
type envelope interface {
	header() *rpcHeader
	reset()
}

// callResponse is the hot-path decoding of a tools/call response: the content
// is skipped by the decoder, only isError is kept.
type callResponse struct {
	rpcHeader
	Result *struct {
		IsError bool `json:"isError"`
	} `json:"result"`
}

func (r *callResponse) reset() { *r = callResponse{} }

type initResponse struct {
	rpcHeader
	Result *struct {
		ProtocolVersion string `json:"protocolVersion"`
	} `json:"result"`
}

func (r *initResponse) reset() { *r = initResponse{} }

type listResponse struct {
	rpcHeader
	Result *struct {
		Tools []struct {
			Name string `json:"name"`
		} `json:"tools"`
		NextCursor string `json:"nextCursor"`
	} `json:"result"`
}

func (r *listResponse) reset() { *r = listResponse{} }

// mediaType returns the lower-cased media type of a Content-Type value without
// its parameters ("text/event-stream; charset=utf-8" -> "text/event-stream").
// It does not allocate for the usual already-lower-case values.
func mediaType(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	for i := 0; i < len(ct); i++ {
		if c := ct[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(ct)
		}
	}
	return ct
}

var errNoResponse = errors.New("no JSON-RPC response with the request's id in the body")

// findResponse decodes into dst the JSON-RPC response with id want from an HTTP
// response body whose Content-Type is ct: either one JSON object
// (application/json) or a server-sent event stream (text/event-stream) whose
// events' data are JSON-RPC messages. Other messages in the stream (server
// notifications and requests, responses with other ids) are skipped. scratch is
// reused to join multi-line event data.
func findResponse(ct string, body []byte, want int64, scratch *[]byte, dst envelope) error {
	switch mediaType(ct) {
	case "application/json":
		dst.reset()
		if err := json.Unmarshal(body, dst); err != nil {
			return fmt.Errorf("decoding JSON response: %v", err)
		}
		if h := dst.header(); h.Method != "" || !h.ID.isNum || h.ID.num != want {
			return errNoResponse
		}
		return nil
	case "text/event-stream":
		var decodeErr error
		found := scanSSE(body, scratch, func(data []byte) bool {
			dst.reset()
			if err := json.Unmarshal(data, dst); err != nil {
				if decodeErr == nil {
					decodeErr = fmt.Errorf("decoding event data: %v", err)
				}
				return false
			}
			h := dst.header()
			return h.Method == "" && h.ID.isNum && h.ID.num == want
		})
		if found {
			return nil
		}
		if decodeErr != nil {
			return decodeErr
		}
		return errNoResponse
	default:
		return fmt.Errorf("unexpected Content-Type %q", ct)
	}
}

// scanSSE splits a text/event-stream body into events and calls fn with each
// event's data (its data lines joined by "\n"), until fn returns true; it
// reports whether it did. Lines may end in CRLF, LF or CR; comment lines and
// fields other than data are ignored; an event is dispatched at a blank line,
// and also at the end of the body (leniently, for a stream cut off after its
// last data line). Events without data are not dispatched. Single-line data is
// passed as a sub-slice of body, so the common case does not copy.
func scanSSE(body []byte, scratch *[]byte, fn func(data []byte) bool) bool {
	var data []byte
	lines := 0 // data lines in the current event
	for len(body) > 0 {
		var line []byte
		if i := bytes.IndexAny(body, "\r\n"); i < 0 {
			line, body = body, nil
		} else {
			line = body[:i]
			if body[i] == '\r' && i+1 < len(body) && body[i+1] == '\n' {
				body = body[i+2:]
			} else {
				body = body[i+1:]
			}
		}
		if len(line) == 0 {
			if lines > 0 && fn(data) {
				return true
			}
			data, lines = nil, 0
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value := line, []byte(nil)
		if c := bytes.IndexByte(line, ':'); c >= 0 {
			field, value = line[:c], line[c+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		if string(field) != "data" {
			continue
		}
		switch lines {
		case 0:
			data = value
		case 1:
			*scratch = append(append(append((*scratch)[:0], data...), '\n'), value...)
			data = *scratch
		default:
			*scratch = append(append(*scratch, '\n'), value...)
			data = *scratch
		}
		lines++
	}
	return lines > 0 && fn(data)
}

// callOutcome turns a decoded tools/call response into "" (success) or the
// error's text. ct and body are only used, on the isError path, to fetch the
// tool's error message from the result content.
func callOutcome(r *callResponse, ct string, body []byte, want int64) string {
	if r.Error != nil {
		return "JSON-RPC error " + strconv.FormatInt(r.Error.Code, 10) + ": " + r.Error.Message
	}
	if r.Result == nil {
		return "response has neither result nor error"
	}
	if r.Result.IsError {
		return "tool result isError: " + toolErrorText(responseData(ct, body, want))
	}
	return ""
}

// toolErrorText extracts the text content of an isError tool result (error path only).
func toolErrorText(msg []byte) string {
	var m struct {
		Result struct {
			Content []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"content"`
		} `json:"result"`
	}
	if json.Unmarshal(msg, &m) != nil {
		return "(undecodable result)"
	}
	var parts []string
	for _, c := range m.Result.Content {
		if c.Type == "text" {
			parts = append(parts, c.Text)
		}
	}
	if len(parts) == 0 {
		return "(no text content)"
	}
	return strings.Join(parts, " ")
}

// responseData returns the raw JSON of the response with id want (error path
// only: used to re-read the content of an isError result).
func responseData(ct string, body []byte, want int64) []byte {
	if mediaType(ct) != "text/event-stream" {
		return body
	}
	var out, scratch []byte
	scanSSE(body, &scratch, func(data []byte) bool {
		var h rpcHeader
		if json.Unmarshal(data, &h) == nil && h.Method == "" && h.ID.isNum && h.ID.num == want {
			out = append([]byte(nil), data...)
			return true
		}
		return false
	})
	return out
}
