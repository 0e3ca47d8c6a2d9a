package pins

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/store"
)

// Entry is one pin as people see it (the pins command, the dashboard).
type Entry struct {
	store.Pin
	Status string // "pinned", "changed" (blocked until approved) or "new" (awaiting review)
}

// Blocked reports whether the server's current offer of the item is held back.
func (e Entry) Blocked() bool { return e.Status != StatusPinned }

// Statuses of an entry.
const (
	StatusPinned  = "pinned"
	StatusChanged = "changed"
	StatusNew     = "new"
)

func status(p store.Pin) string {
	switch {
	case p.Pending == nil:
		return StatusPinned
	case p.Hash == "":
		return StatusNew
	default:
		return StatusChanged
	}
}

// List returns the pins, of one server when server is set.
func List(ctx context.Context, st store.Pins, server string) ([]Entry, error) {
	ps, err := st.ListPins(ctx)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, p := range ps {
		if server == "" || p.Server == server {
			out = append(out, Entry{Pin: p, Status: status(p)})
		}
	}
	return out, nil
}

// Find returns the pin of server's item name; kind may be empty when the name is used by
// one kind only (otherwise the error lists the kinds to choose from).
func Find(ctx context.Context, st store.Pins, server, kind, name string) (Entry, error) {
	if kind != "" && !slices.Contains(Kinds, kind) {
		return Entry{}, fmt.Errorf("unknown kind %q (want %s)", kind, strings.Join(Kinds, ", "))
	}
	es, err := List(ctx, st, server)
	if err != nil {
		return Entry{}, err
	}
	var found []Entry
	for _, e := range es {
		if e.Name == name && (kind == "" || e.Kind == kind) {
			found = append(found, e)
		}
	}
	switch len(found) {
	case 0:
		if kind == "" {
			kind = "tool, prompt or resource template"
		}
		return Entry{}, fmt.Errorf("server %q has no pinned %s %q (see portcullis pins list): %w", server, kind, name, store.ErrNotFound)
	case 1:
		return found[0], nil
	}
	var ks []string
	for _, e := range found {
		ks = append(ks, e.Kind)
	}
	return Entry{}, fmt.Errorf("server %q has a %s named %q: say which with --kind", server, strings.Join(ks, " and a "), name)
}

// DiffOf returns what changed: from the approved definition to the pending one (empty
// when nothing is pending).
func DiffOf(e Entry) string {
	if e.Pending == nil {
		return ""
	}
	return Diff(e.Definition, e.Pending.Definition)
}

// Approve approves the pending definition of an item. hash, when set, must be the
// pending definition's hash (what the approver reviewed). The running gateways see the
// approval on their next listing or call.
func Approve(ctx context.Context, st store.Pins, server, kind, name, hash, by string) (Entry, error) {
	e, err := Find(ctx, st, server, kind, name)
	if err != nil {
		return Entry{}, err
	}
	if e.Pending == nil {
		return e, fmt.Errorf("%s %q of server %q has no change to approve: it is pinned to %s", e.Kind, name, server, Short(e.Hash))
	}
	p, err := st.ApprovePin(ctx, e.PinKey, hash, by, time.Now().UTC())
	if errors.Is(err, store.ErrConflict) {
		return Entry{}, fmt.Errorf("the pending definition changed since you reviewed it (now %s): run portcullis pins diff again: %w", Short(e.Pending.Hash), err)
	}
	if err != nil {
		return Entry{}, err
	}
	return Entry{Pin: p, Status: status(p)}, nil
}

// Reset forgets the pins of server (of one item when name is set): the next definition
// seen is pinned again (tofu) or held for review.
func Reset(ctx context.Context, st store.Pins, server, kind, name string) (int, error) {
	if name != "" {
		e, err := Find(ctx, st, server, kind, name)
		if err != nil {
			return 0, err
		}
		kind = e.Kind
	}
	return st.DeletePins(ctx, server, kind, name)
}
