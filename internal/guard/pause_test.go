package guard

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestPausableTimeout(t *testing.T) {
	cause := errors.New("call timeout")
	ctx, stop := PausableTimeout(context.Background(), 30*time.Millisecond, cause)
	defer stop()
	resume := PauseTimeouts(ctx)
	time.Sleep(100 * time.Millisecond) // paused: more than the timeout passes
	if ctx.Err() != nil {
		t.Fatalf("a paused timeout fired: %v", ctx.Err())
	}
	resume()
	resume() // idempotent
	<-ctx.Done()
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) || !errors.Is(context.Cause(ctx), cause) {
		t.Errorf("err %v, cause %v", ctx.Err(), context.Cause(ctx))
	}
	// Without a pause it fires; a parent's cancellation passes through as Canceled.
	parent, cancel := context.WithCancel(context.Background())
	ctx2, stop2 := PausableTimeout(parent, time.Hour, cause)
	defer stop2()
	cancel()
	<-ctx2.Done()
	if !errors.Is(ctx2.Err(), context.Canceled) {
		t.Errorf("parent cancelled: %v", ctx2.Err())
	}
	// No timeout in ctx: a no-op.
	PauseTimeouts(context.Background())()
}
