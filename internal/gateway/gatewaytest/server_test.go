package gatewaytest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
	"github.com/portcullis-mcp/portcullis/internal/upstream"
)

func req(id, method, params string) *jsonrpc.Message {
	return &jsonrpc.Message{ID: jsonrpc.ID(id), Method: method, Params: []byte(params)}
}

func TestServer(t *testing.T) {
	s := &Server{Name: "f", PageSize: 1, Tools: []Tool{{Name: "a"}, {Name: "b"}}}
	var got []string
	tr, err := s.Dial(context.Background(), func(ctx context.Context, m *jsonrpc.Message) *jsonrpc.Message {
		got = append(got, m.Method)
		if m.IsRequest() {
			return jsonrpc.NewResult(m.ID, map[string]string{"answer": "yes"})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	resp, _ := tr.Call(ctx, req("1", "initialize", `{"protocolVersion":"2025-11-25"}`))
	if v, _ := jsonrpc.LookupString(resp.Result, "protocolVersion"); v != "2025-11-25" {
		t.Errorf("initialize %s", resp.Result)
	}
	if _, ok := jsonrpc.LookupPath(resp.Result, "capabilities", "tools"); !ok {
		t.Errorf("no tools capability: %s", resp.Result)
	}
	resp, _ = tr.Call(ctx, req("2", "tools/list", `{}`))
	if c, _ := jsonrpc.LookupString(resp.Result, "nextCursor"); c != "1" || string(resp.ID) != "2" {
		t.Errorf("first page %s", resp.Marshal())
	}
	resp, _ = tr.Call(ctx, req("3", "tools/list", `{"cursor":"1"}`))
	if _, ok := jsonrpc.Lookup(resp.Result, "nextCursor"); ok || !strings.Contains(string(resp.Result), `"b"`) {
		t.Errorf("last page %s", resp.Result)
	}
	resp, _ = tr.Call(ctx, req("4", "tools/call", `{"name":"nope"}`))
	if resp.Error == nil || resp.Error.Code != jsonrpc.CodeInvalidParams {
		t.Errorf("unknown tool %s", resp.Marshal())
	}

	s.Handle("tools/call", func(ctx context.Context, r *Request) (any, error) {
		a, err := r.T.SendRequest(ctx, "sampling/createMessage", nil)
		if err != nil {
			return nil, err
		}
		r.T.SendNotification(ctx, "notifications/progress", nil)
		return a.Result, nil
	})
	resp, _ = tr.Call(ctx, req("5", "tools/call", `{"name":"a"}`))
	if !strings.Contains(string(resp.Result), "yes") || strings.Join(got, ",") != "sampling/createMessage,notifications/progress" {
		t.Errorf("result %s, client got %v", resp.Result, got)
	}

	// A caller that gives up: the server is told.
	s.Handle("tools/call", func(ctx context.Context, r *Request) (any, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := tr.Call(cctx, req("6", "tools/call", `{"name":"a"}`)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Call after its ctx ended: %v", err)
	}
	if c := s.Requests("notifications/cancelled"); len(c) != 1 || !strings.Contains(string(c[0].Params), `"requestId":6`) {
		t.Errorf("cancellation not recorded: %v", c)
	}
	if n := len(s.Traffic()); n != 6 {
		t.Errorf("traffic %d messages, want 6 (2 lists, 3 calls, 1 cancellation)", n)
	}

	// A crash ends calls in flight.
	done := make(chan error, 1)
	go func() { _, err := tr.Call(ctx, req("7", "tools/call", `{"name":"a"}`)); done <- err }()
	s.WaitFor("tools/call", 4, time.Second)
	if n := s.Crash(errors.New("oops")); n != 1 {
		t.Errorf("crashed %d", n)
	}
	if err := <-done; !errors.Is(err, upstream.ErrUnavailable) || !strings.Contains(err.Error(), "oops") {
		t.Errorf("call during the crash: %v", err)
	}
	select {
	case <-tr.Done():
	default:
		t.Error("Done not closed")
	}
	if tr.Err() == nil || tr.(*Transport).Closed() {
		t.Errorf("Err %v, Closed %v", tr.Err(), tr.(*Transport).Closed())
	}
	if len(s.Live()) != 0 {
		t.Error("crashed transport is live")
	}

	tr2, _ := s.Dial(ctx, nil)
	tr2.Close()
	if !tr2.(*Transport).Closed() || !errors.Is(tr2.Err(), ErrClosed) || s.Dials() != 2 {
		t.Errorf("Close: closed %v, err %v, dials %d", tr2.(*Transport).Closed(), tr2.Err(), s.Dials())
	}
	s.DialError = func(n int) error { return errors.New("refused") }
	if _, err := s.Dial(ctx, nil); !errors.Is(err, upstream.ErrUnavailable) || s.Dials() != 3 {
		t.Errorf("failing dial: %v, dials %d", err, s.Dials())
	}
}
