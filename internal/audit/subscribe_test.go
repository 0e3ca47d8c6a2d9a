package audit_test

import (
	"context"
	"errors"
	"testing"

	"github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/audit/audittest"
)

func TestSubscribe(t *testing.T) {
	s := audittest.New("s")
	br, err := audit.NewBroker([]audit.Sink{s}, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	ctx := context.Background()
	sub := br.Subscribe(2)
	small := br.Subscribe(1)
	// Recorded events reach the subscriber, sealed and in order.
	for i := range 2 {
		if err := br.Record(ctx, event(i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 {
		e := <-sub.C
		if e.Tool != event(i).Tool || e.Hash == "" || e.Seq == 0 {
			t.Errorf("event %d: %+v", i, e)
		}
	}
	// A subscriber that does not keep up loses events; the trail does not wait for it.
	if small.Dropped() != 1 {
		t.Errorf("dropped = %d, want 1", small.Dropped())
	}
	// A refused event is never published.
	s.Fail(true)
	if err := br.Record(ctx, event(7)); !errors.Is(err, audit.ErrAuditUnavailable) {
		t.Fatalf("failing sink: %v", err)
	}
	s.Fail(false)
	sub.Close()
	if err := br.Record(ctx, event(8)); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-sub.C:
		t.Errorf("closed subscription got %+v", e)
	default:
	}
}
