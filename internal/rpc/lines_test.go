package rpc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

// describe summarizes what Read returned: "method id params", "error: msg" or "EOF".
func describe(m *jsonrpc.Message, err error) string {
	switch {
	case errors.Is(err, io.EOF):
		return "EOF"
	case err != nil:
		var de *jsonrpc.DecodeError
		if errors.As(err, &de) {
			return fmt.Sprintf("decode error %d id=%s: %s", de.Code, de.ID, de.Msg)
		}
		return "error: " + err.Error()
	case m.IsResponse():
		return fmt.Sprintf("response %s %s", m.ID, m.Result)
	}
	return strings.TrimSpace(fmt.Sprintf("%s %s %s", m.Method, m.ID, m.Params))
}

func TestLineStreamRead(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"several",
			`{"jsonrpc":"2.0","id":1,"method":"a","params":{"x":1}}` + "\n" +
				`{"jsonrpc":"2.0","method":"b"}` + "\n" +
				`{"jsonrpc":"2.0","id":"s","result":{"ok":true}}` + "\n",
			[]string{`a 1 {"x":1}`, "b", `response "s" {"ok":true}`, "EOF"}},
		{"blank lines",
			"\n\n   \n\t\n" + `{"jsonrpc":"2.0","method":"a"}` + "\n\n \n" + `{"jsonrpc":"2.0","method":"b"}` + "\n\n",
			[]string{"a", "b", "EOF"}},
		{"crlf",
			`{"jsonrpc":"2.0","id":1,"method":"a"}` + "\r\n" + "\r\n" + `{"jsonrpc":"2.0","id":2,"method":"b"}` + "\r\n",
			[]string{"a 1", "b 2", "EOF"}},
		{"no final newline",
			`{"jsonrpc":"2.0","method":"a"}` + "\n" + `{"jsonrpc":"2.0","method":"b"}`,
			[]string{"a", "b", "EOF"}},
		{"empty", "", []string{"EOF"}},
		{"only blank", "\n\r\n  \n", []string{"EOF"}},
		{"bad line in between",
			`{"jsonrpc":"2.0","method":"a"}` + "\nnot json\n" + `{"jsonrpc":"2.0","id":3,"method":"c","method":"d"}` + "\n" + `{"jsonrpc":"2.0","method":"b"}` + "\n",
			[]string{"a", "decode error -32700 id=: parse error: invalid literal at byte 0",
				`decode error -32700 id=3: parse error: duplicate object key "method" at byte 37`, "b", "EOF"}},
		{"batch", `[{"jsonrpc":"2.0","method":"a"}]` + "\n", []string{
			"decode error -32600 id=: batch requests are not supported (JSON-RPC batching was removed from MCP)", "EOF"}},
	}
	readers := []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"whole", func(r io.Reader) io.Reader { return r }},
		{"one byte", iotest.OneByteReader},
		{"halves", iotest.HalfReader},
	}
	for _, tt := range tests {
		for _, rd := range readers {
			t.Run(tt.name+"/"+rd.name, func(t *testing.T) {
				s := NewLineStream(rd.wrap(strings.NewReader(tt.in)), io.Discard, nil, jsonrpc.Limits{})
				var got []string
				for range len(tt.want) {
					got = append(got, describe(s.Read()))
				}
				if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
					t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(tt.want, "\n\t"))
				}
			})
		}
	}
}

// message returns a notification of exactly n bytes.
func message(n int) string {
	const head, tail = `{"jsonrpc":"2.0","method":"m","params":{"p":"`, `"}}`
	return head + strings.Repeat("x", n-len(head)-len(tail)) + tail
}

func TestLineStreamSizeLimit(t *testing.T) {
	const max = 1 << 10
	tooLong := fmt.Sprintf("decode error %d id=: message exceeds the limit of %d bytes", jsonrpc.CodeInvalidRequest, max)
	decodeTooLong := func(n int) string {
		return fmt.Sprintf("decode error %d id=: message of %d bytes exceeds the limit of %d bytes", jsonrpc.CodeInvalidRequest, n, max)
	}
	next := `{"jsonrpc":"2.0","id":2,"method":"next"}`
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"at the limit", message(max) + "\n" + next + "\n", []string{"m", "next 2", "EOF"}},
		{"at the limit, crlf", message(max) + "\r\n" + next + "\n", []string{"m", "next 2", "EOF"}},
		{"one over", message(max+1) + "\n" + next + "\n", []string{decodeTooLong(max + 1), "next 2", "EOF"}},
		{"three over", message(max+3) + "\n" + next + "\n", []string{tooLong, "next 2", "EOF"}},
		{"1 MiB", message(1<<20) + "\n" + next + "\n", []string{tooLong, "next 2", "EOF"}},
		{"1 MiB crlf", message(1<<20) + "\r\n" + next + "\r\n", []string{tooLong, "next 2", "EOF"}},
		{"1 MiB garbage", strings.Repeat("{", 1<<20) + "\n" + next + "\n", []string{tooLong, "next 2", "EOF"}},
		{"1 MiB at the end", next + "\n" + message(1<<20), []string{"next 2", tooLong, "EOF"}},
		{"two in a row", message(1<<20) + "\n" + message(200<<10) + "\n" + next + "\n", []string{tooLong, tooLong, "next 2", "EOF"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewLineStream(iotest.HalfReader(strings.NewReader(tt.in)), io.Discard, nil, jsonrpc.Limits{MaxBytes: max})
			var got []string
			for range len(tt.want) {
				m, err := s.Read()
				if m != nil {
					m.Params = nil // the test is about which messages come through
				}
				got = append(got, describe(m, err))
				// What is kept of a line is bounded by the limit, not by the line.
				if c := cap(s.buf); c > 4*max {
					t.Fatalf("the stream holds a buffer of %d bytes for a limit of %d", c, max)
				}
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(tt.want, "\n\t"))
			}
		})
	}
}

// errReader returns data, then err.
type errReader struct {
	data []byte
	err  error
}

func (r *errReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestLineStreamReadError(t *testing.T) {
	broken := errors.New("pipe broke")
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"after a line", `{"jsonrpc":"2.0","method":"a"}` + "\n", []string{"a", "error: pipe broke"}},
		{"inside a long line", strings.Repeat("x", 4<<10), []string{"error: pipe broke"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewLineStream(&errReader{[]byte(tt.in), broken}, io.Discard, nil, jsonrpc.Limits{MaxBytes: 1 << 10})
			var got []string
			for range len(tt.want) {
				got = append(got, describe(s.Read()))
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestLineStreamNoAlias checks that a message read earlier keeps its bytes when the
// stream reads the next one into the same buffer.
func TestLineStreamNoAlias(t *testing.T) {
	in := `{"jsonrpc":"2.0","id":"first","method":"tools/call","params":{"name":"aaaa","arguments":{"k":"1111"}}}` + "\n" +
		`{"jsonrpc":"2.0","id":"other","method":"tools/call","params":{"name":"bbbb","arguments":{"k":"2222"}}}` + "\n" +
		`{"jsonrpc":"2.0","id":"third","result":{"content":[{"type":"text","text":"zzzzzzzzzzzzzzzzzzzzzzzzzz"}]}}` + "\n"
	s := NewLineStream(strings.NewReader(in), io.Discard, nil, jsonrpc.Limits{})
	m1, err := s.Read()
	if err != nil {
		t.Fatal(err)
	}
	params, id := string(m1.Params), string(m1.ID)
	for range 2 {
		if _, err := s.Read(); err != nil {
			t.Fatal(err)
		}
	}
	if string(m1.Params) != params || string(m1.ID) != id {
		t.Errorf("the first message changed to id %s params %s", m1.ID, m1.Params)
	}
	if params != `{"name":"aaaa","arguments":{"k":"1111"}}` {
		t.Errorf("params = %s", params)
	}
}

type recorder struct {
	bytes.Buffer
	closed int
}

func (r *recorder) Close() error { r.closed++; return nil }

func TestLineStreamWrite(t *testing.T) {
	var w recorder
	s := NewLineStream(strings.NewReader(""), &w, &w, jsonrpc.Limits{})
	msgs := []*jsonrpc.Message{
		jsonrpc.NewRequest(jsonrpc.IntID(1), "tools/call", map[string]any{"name": "a long name to make this longer"}),
		jsonrpc.NewNotification("n", nil),
		jsonrpc.NewError(nil, jsonrpc.Errorf(jsonrpc.CodeParseError, "bad")),
	}
	for _, m := range msgs {
		if err := s.Write(m); err != nil {
			t.Fatal(err)
		}
	}
	want := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a long name to make this longer"}}` + "\n" +
		`{"jsonrpc":"2.0","method":"n"}` + "\n" +
		`{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"bad"}}` + "\n"
	if w.String() != want {
		t.Errorf("wrote\n%s\nwant\n%s", w.String(), want)
	}
	// What was written reads back.
	r := NewLineStream(strings.NewReader(w.String()), io.Discard, nil, jsonrpc.Limits{})
	for _, m := range msgs {
		got, err := r.Read()
		if err != nil || !bytes.Equal(got.Marshal(), m.Marshal()) {
			t.Errorf("read back %v, %v; want %s", got, err, m.Marshal())
		}
	}
	if err := s.Close(); err != nil || w.closed != 1 {
		t.Errorf("Close = %v, closed %d times", err, w.closed)
	}
	if err := NewLineStream(strings.NewReader(""), io.Discard, nil, jsonrpc.Limits{}).Close(); err != nil {
		t.Errorf("Close without a closer = %v", err)
	}
}

func BenchmarkLineStreamRead(b *testing.B) {
	line := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}` + "\n")
	r := &repeatReader{line: line}
	s := NewLineStream(r, io.Discard, nil, jsonrpc.Limits{})
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Read(); err != nil {
			b.Fatal(err)
		}
	}
}

type repeatReader struct {
	line []byte
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.line[r.off:])
		n += c
		r.off = (r.off + c) % len(r.line)
	}
	return n, nil
}
