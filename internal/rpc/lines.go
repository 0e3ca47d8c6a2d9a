package rpc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

// LineStream is the stdio framing of MCP: one message a line, no embedded newlines.
type LineStream struct {
	r      *bufio.Reader
	w      io.Writer
	c      io.Closer
	lim    jsonrpc.Limits
	buf    []byte
	outBuf []byte
}

// NewLineStream reads messages from r and writes them to w; Close closes c (may be nil).
func NewLineStream(r io.Reader, w io.Writer, c io.Closer, lim jsonrpc.Limits) *LineStream {
	return &LineStream{r: bufio.NewReaderSize(r, 64<<10), w: w, c: c, lim: lim}
}

// Read returns the next message. A line over the size limit is skipped whole and reported
// as a *jsonrpc.DecodeError, so memory stays bounded and the stream goes on.
func (s *LineStream) Read() (*jsonrpc.Message, error) {
	max := s.lim.MaxBytes
	if max <= 0 {
		max = jsonrpc.DefaultMaxBytes
	}
	for {
		s.buf = s.buf[:0]
		tooLong := false
		var err error
		for {
			var chunk []byte
			chunk, err = s.r.ReadSlice('\n')
			if !tooLong {
				if len(s.buf)+len(chunk) > max+2 { // allow for \r\n
					tooLong = true
					s.buf = s.buf[:0]
				} else {
					s.buf = append(s.buf, chunk...)
				}
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			break
		}
		if tooLong {
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, err
			}
			return nil, &jsonrpc.DecodeError{Code: jsonrpc.CodeInvalidRequest, Msg: fmt.Sprintf("message exceeds the limit of %d bytes", max)}
		}
		line := bytes.TrimSpace(s.buf)
		if len(line) == 0 {
			if err != nil {
				return nil, err
			}
			continue
		}
		// The message's raw fields alias its bytes, so they get their own copy.
		m, derr := jsonrpc.Decode(bytes.Clone(line), s.lim)
		if derr != nil {
			return nil, derr
		}
		return m, nil
	}
}

// Write writes m and a newline.
func (s *LineStream) Write(m *jsonrpc.Message) error {
	s.outBuf = append(m.Append(s.outBuf[:0]), '\n')
	_, err := s.w.Write(s.outBuf)
	return err
}

// Close closes the underlying closer.
func (s *LineStream) Close() error {
	if s.c == nil {
		return nil
	}
	return s.c.Close()
}
