package h1server

import (
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// response is the http.ResponseWriter of the fast path. A response written at once is
// sent in one write with its Content-Length; Flush, or a body larger than the buffer,
// switches to chunked transfer coding (an SSE stream).
type response struct {
	c           *conn
	req         *http.Request
	header      http.Header
	status      int
	wroteHeader bool // the handler chose the status
	sentHeader  bool // the head is on the wire
	chunked     bool
	declared    int64 // Content-Length the handler set when streaming, else -1
	written     int64
	body        []byte
	closeAfter  bool
	err         error
}

// maxBuffered is how much of a body is held back to send it with its length.
const maxBuffered = 64 << 10

func (w *response) Header() http.Header { return w.header }

func (w *response) WriteHeader(code int) {
	if w.wroteHeader || code < 200 { // informational responses are not sent
		if code < 100 || code > 999 {
			panic("h1server: invalid WriteHeader code " + strconv.Itoa(code))
		}
		return
	}
	if code > 999 {
		panic("h1server: invalid WriteHeader code " + strconv.Itoa(code))
	}
	w.wroteHeader = true
	w.status = code
}

func bodyAllowed(status int) bool {
	return status != http.StatusNoContent && status != http.StatusNotModified
}

func (w *response) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.err != nil {
		return 0, w.err
	}
	if !w.sentHeader {
		if len(w.body)+len(p) <= maxBuffered {
			if w.body == nil {
				w.body = w.c.bodyBuf[:0]
			}
			w.body = append(w.body, p...)
			return len(p), nil
		}
		if err := w.sendHead(false); err != nil {
			return 0, err
		}
	}
	if w.declared >= 0 && w.written+int64(len(p)) > w.declared {
		return 0, http.ErrContentLength
	}
	out := w.c.out[:0]
	if w.chunked {
		out = strconv.AppendInt(out, int64(len(p)), 16)
		out = append(out, "\r\n"...)
		out = append(out, p...)
		out = append(out, "\r\n"...)
	} else {
		out = append(out, p...)
	}
	w.c.out = out[:0]
	if err := w.send(out); err != nil {
		return 0, err
	}
	w.written += int64(len(p))
	return len(p), nil
}

// Flush sends the head and what is buffered, as a chunk.
func (w *response) Flush() { w.FlushError() }

func (w *response) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return w.err
	}
	if !w.sentHeader {
		return w.sendHead(false)
	}
	return nil
}

// OnDisconnect sets f to run when the client's connection breaks while the handler runs,
// as context.AfterFunc(r.Context(), f) would, without an object and a registration on the
// request's context per call. A later call replaces f; nil removes it. f runs at most once,
// in another goroutine than the handler's.
func (w *response) OnDisconnect(f func()) {
	w.c.mu.Lock()
	w.c.onGone = f
	w.c.mu.Unlock()
}

// SetWriteDeadline lets http.ResponseController bound a write.
func (w *response) SetWriteDeadline(t time.Time) error {
	w.c.wdl = true
	return w.c.setWriteDeadline(t)
}

// sendHead writes the status line and header, and the buffered body: with its length
// when final, else as the first chunk (or raw when the handler declared a length).
func (w *response) sendHead(final bool) error {
	w.sentHeader = true
	h := w.header
	w.declared = -1
	if final {
		h.Del("Transfer-Encoding")
		if bodyAllowed(w.status) {
			h["Content-Length"] = []string{strconv.Itoa(len(w.body))}
		} else {
			h.Del("Content-Length")
		}
	} else if cl := h.Get("Content-Length"); cl != "" {
		n, err := strconv.ParseInt(cl, 10, 64)
		if err != nil || n < 0 {
			h.Del("Content-Length")
			w.chunked = true
		} else {
			w.declared = n
		}
	} else if bodyAllowed(w.status) {
		w.chunked = true
	}
	if bodyAllowed(w.status) && h.Get("Content-Type") == "" && (len(w.body) > 0 || !final) {
		if len(w.body) > 0 {
			h["Content-Type"] = []string{http.DetectContentType(w.body)}
		}
	}
	if w.closeAfter || w.c.s.shutting.Load() || hasClose(h["Connection"]) {
		w.closeAfter = true
		h["Connection"] = []string{"close"}
	}
	out := w.c.out[:0]
	out = append(out, "HTTP/1.1 "...)
	out = strconv.AppendInt(out, int64(w.status), 10)
	out = append(out, ' ')
	out = append(out, http.StatusText(w.status)...)
	out = append(out, "\r\nDate: "...)
	out = appendDate(out, time.Now())
	if w.chunked {
		out = append(out, "\r\nTransfer-Encoding: chunked"...)
	}
	for k, vs := range h {
		if k == "Date" || k == "Transfer-Encoding" || !validFieldName(k) {
			continue
		}
		for _, v := range vs {
			out = append(out, "\r\n"...)
			out = append(out, k...)
			out = append(out, ": "...)
			out = appendFieldValue(out, v)
		}
	}
	out = append(out, "\r\n\r\n"...)
	if bodyAllowed(w.status) && len(w.body) > 0 {
		if w.chunked {
			out = strconv.AppendInt(out, int64(len(w.body)), 16)
			out = append(out, "\r\n"...)
			out = append(out, w.body...)
			out = append(out, "\r\n"...)
		} else {
			out = append(out, w.body...)
		}
		w.written = int64(len(w.body))
	}
	if cap(w.body) <= maxBuffered {
		w.c.bodyBuf = w.body[:0]
	}
	w.body = nil
	if cap(out) <= 2*maxBuffered {
		w.c.out = out[:0]
	}
	return w.send(out)
}

func (w *response) send(b []byte) error {
	if w.err != nil {
		return w.err
	}
	if _, err := w.c.nc.Write(b); err != nil {
		w.err = err
		w.closeAfter = true
		return err
	}
	return nil
}

// finish completes the response after the handler returned.
func (w *response) finish() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.sentHeader {
		return w.sendHead(true)
	}
	if w.err != nil {
		return w.err
	}
	if w.chunked {
		return w.send([]byte("0\r\n\r\n"))
	}
	if w.declared >= 0 && w.written != w.declared {
		w.closeAfter = true // the client would wait for the rest
	}
	return nil
}

func validFieldName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !isTokenChar(k[i]) {
			return false
		}
	}
	return true
}

// appendFieldValue appends v with CR and LF replaced by spaces, as net/http does.
func appendFieldValue(out []byte, v string) []byte {
	if !strings.ContainsAny(v, "\r\n") {
		return append(out, v...)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		out = append(out, c)
	}
	return out
}

func hasClose(vs []string) bool {
	for _, v := range vs {
		var c bool
		if connectionOK([]byte(v), &c); c {
			return true
		}
	}
	return false
}

// dateCache is the Date header value of the current second, formatted once per second
// rather than once per response.
type dateCache struct {
	sec int64
	val []byte
}

var lastDate atomic.Pointer[dateCache]

func appendDate(out []byte, now time.Time) []byte {
	sec := now.Unix()
	if d := lastDate.Load(); d != nil && d.sec == sec {
		return append(out, d.val...)
	}
	d := &dateCache{sec: sec, val: now.UTC().AppendFormat(nil, http.TimeFormat)}
	lastDate.Store(d)
	return append(out, d.val...)
}
