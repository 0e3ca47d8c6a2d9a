package dashboard

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/store/sqlite"
)

// A fleet feed that reads fewer events than were recorded since its last read says how
// many it did not show, chain by chain, and shows each event it read once.
func TestFleetReaderCountsWhatItSkipped(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var brokers []*audit.Broker
	for _, chain := range []string{"gw-1", "gw-2"} {
		sink, err := audit.OpenStore(ctx, st, chain)
		if err != nil {
			t.Fatal(err)
		}
		b, err := audit.NewBroker([]audit.Sink{sink}, audit.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		brokers = append(brokers, b)
	}
	record := func(n int) {
		for range n {
			for _, b := range brokers {
				if err := b.Record(ctx, &audit.Event{Code: audit.CodeAllowed, Kind: audit.KindResponse, Tool: "t"}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	record(2) // before the page: neither shown nor counted
	f := newFleetReader(ctx, st, time.Now())
	defer func(n int) { fleetReadLimit = n }(fleetReadLimit)
	fleetReadLimit = 4

	record(5) // ten events, four read
	evs, skipped, err := f.next(ctx)
	if err != nil || len(evs) != 4 || skipped != 6 {
		t.Fatalf("first read: %d events, %d skipped, %v; want 4 and 6", len(evs), skipped, err)
	}
	record(1)
	evs, skipped, err = f.next(ctx)
	if err != nil || len(evs) != 2 || skipped != 0 {
		t.Fatalf("second read: %d events, %d skipped, %v; want the 2 new ones", len(evs), skipped, err)
	}
	if evs, skipped, _ = f.next(ctx); len(evs) != 0 || skipped != 0 {
		t.Fatalf("a read with nothing new: %d events, %d skipped", len(evs), skipped)
	}
}
