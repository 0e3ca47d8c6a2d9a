// Package rpc is a bidirectional JSON-RPC peer over a stream of messages: it numbers
// outgoing requests, matches responses, and hands incoming requests and notifications to a
// handler. Upstream connections and the stdio front side are built on it.
package rpc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

// Stream carries whole messages in both directions. Read returns io.EOF when the other
// side closed; a *jsonrpc.DecodeError for a message that was rejected (the stream goes on).
type Stream interface {
	Read() (*jsonrpc.Message, error)
	Write(m *jsonrpc.Message) error
	Close() error
}

// Handler answers incoming messages. For a request it returns the response (with any id:
// the peer sets it); for a notification its result is ignored. ctx is cancelled when the
// other side cancels the request or the peer closes.
type Handler func(ctx context.Context, m *jsonrpc.Message) *jsonrpc.Message

// ErrClosed is returned for calls on a closed peer.
var ErrClosed = errors.New("connection closed")

// Peer is one end of a JSON-RPC connection.
type Peer struct {
	stream  Stream
	handler Handler
	// OnDecodeError, when set, is called for messages the stream rejected; the default
	// answers requests whose id could be read with the decode error.
	OnDecodeError func(*jsonrpc.DecodeError)

	nextID  atomic.Int64
	mu      sync.Mutex
	pending map[string]chan *jsonrpc.Message
	active  map[string]context.CancelFunc // incoming requests being handled
	writeMu sync.Mutex
	done    chan struct{}
	err     error
	closeMu sync.Once
}

// NewPeer returns a peer over s; call Run to start reading.
func NewPeer(s Stream, h Handler) *Peer {
	return &Peer{
		stream:  s,
		handler: h,
		pending: make(map[string]chan *jsonrpc.Message),
		active:  make(map[string]context.CancelFunc),
		done:    make(chan struct{}),
	}
}

// Done is closed when the peer stops.
func (p *Peer) Done() <-chan struct{} { return p.done }

// Err is why the peer stopped.
func (p *Peer) Err() error {
	<-p.done
	return p.err
}

// Write sends m as it is.
func (p *Peer) Write(m *jsonrpc.Message) error {
	select {
	case <-p.done:
		return ErrClosed
	default:
	}
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	return p.stream.Write(m)
}

// Call sends req with a fresh id and waits for the response, whose id is restored to the
// id req had. When ctx ends first, the other side is sent notifications/cancelled.
func (p *Peer) Call(ctx context.Context, req *jsonrpc.Message) (*jsonrpc.Message, error) {
	id := jsonrpc.IntID(p.nextID.Add(1))
	ch := make(chan *jsonrpc.Message, 1)
	key := string(id)
	p.mu.Lock()
	if p.pending == nil {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	p.pending[key] = ch
	p.mu.Unlock()
	out := *req
	out.ID = id
	if err := p.Write(&out); err != nil {
		p.forget(key)
		return nil, err
	}
	select {
	case resp := <-ch:
		r := *resp
		r.ID = req.ID
		return &r, nil
	case <-ctx.Done():
		p.forget(key)
		cancel := jsonrpc.NewNotification("notifications/cancelled", map[string]any{
			"requestId": jsonrpcRaw(id), "reason": context.Cause(ctx).Error(),
		})
		_ = p.Write(cancel)
		return nil, context.Cause(ctx)
	case <-p.done:
		// A response read before the stream ended is still this call's answer.
		select {
		case resp := <-ch:
			r := *resp
			r.ID = req.ID
			return &r, nil
		default:
		}
		return nil, fmt.Errorf("%w: %v", ErrClosed, p.err)
	}
}

type jsonrpcRaw []byte

func (r jsonrpcRaw) MarshalJSON() ([]byte, error) { return r, nil }

func (p *Peer) forget(key string) {
	p.mu.Lock()
	if p.pending != nil {
		delete(p.pending, key)
	}
	p.mu.Unlock()
}

// Notify sends a notification.
func (p *Peer) Notify(m *jsonrpc.Message) error { return p.Write(m) }

// Run reads until the stream ends, then fails every pending call. It returns why it stopped.
func (p *Peer) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var err error
	for {
		var m *jsonrpc.Message
		m, err = p.stream.Read()
		if err != nil {
			var de *jsonrpc.DecodeError
			if errors.As(err, &de) {
				p.decodeError(de)
				continue
			}
			break
		}
		switch {
		case m.IsResponse():
			p.mu.Lock()
			ch := p.pending[string(m.ID)]
			delete(p.pending, string(m.ID))
			p.mu.Unlock()
			if ch != nil {
				ch <- m
			}
		case m.IsNotification():
			if m.Method == "notifications/cancelled" {
				if id, ok := jsonrpc.Lookup(m.Params, "requestId"); ok {
					p.mu.Lock()
					if c := p.active[string(id)]; c != nil {
						c()
					}
					p.mu.Unlock()
				}
			}
			p.handler(ctx, m)
		default:
			rctx, rcancel := context.WithCancel(ctx)
			p.mu.Lock()
			p.active[string(m.ID)] = rcancel
			p.mu.Unlock()
			go func(m *jsonrpc.Message) {
				defer func() {
					p.mu.Lock()
					delete(p.active, string(m.ID))
					p.mu.Unlock()
					rcancel()
				}()
				resp := p.handler(rctx, m)
				if resp == nil {
					return
				}
				r := *resp
				r.ID = m.ID
				r.Method = ""
				_ = p.Write(&r)
			}(m)
		}
	}
	p.closeWith(err)
	return err
}

func (p *Peer) decodeError(de *jsonrpc.DecodeError) {
	if p.OnDecodeError != nil {
		p.OnDecodeError(de)
		return
	}
	_ = p.Write(jsonrpc.NewError(de.ID, de.AsError()))
}

func (p *Peer) closeWith(err error) {
	p.closeMu.Do(func() {
		p.mu.Lock()
		p.err = err
		p.pending = nil
		p.mu.Unlock()
		close(p.done)
	})
}

// Close closes the stream; Run then returns.
func (p *Peer) Close() error {
	err := p.stream.Close()
	p.closeWith(ErrClosed)
	return err
}
