package store

import (
	"context"
	"errors"
	"time"
)

// Pins keeps the approved definition of each tool, prompt and resource template a server
// offers (package pins decides; this is only the state). A pin has an approved hash
// (empty while a new definition awaits review) and, when the server now offers something
// else, a pending candidate that stays blocked until a person approves it.
type Pins interface {
	// PinFirst stores p unless a pin with its key exists, and returns the stored pin
	// (p, or the one that was there) and whether it was created by this call: two
	// gateways seeing a new tool at once agree, and only one reports it.
	PinFirst(ctx context.Context, p Pin) (stored Pin, created bool, err error)
	// SetPinPending records cand as the key's pending definition (replacing an older
	// candidate). ErrNotFound when there is no pin.
	SetPinPending(ctx context.Context, k PinKey, cand PinCandidate) error
	// ApprovePin makes the pending definition the approved one. When hash is not empty
	// the pending definition must have that hash (what the approver saw), else
	// ErrConflict. ErrNotFound when there is no pin or nothing pending.
	ApprovePin(ctx context.Context, k PinKey, hash, by string, at time.Time) (Pin, error)
	// DeletePins removes the pins of server; of one kind and name when name is set.
	// It returns how many were removed.
	DeletePins(ctx context.Context, server, kind, name string) (int, error)
	// ListPins returns every pin, ordered by server, kind and name.
	ListPins(ctx context.Context) ([]Pin, error)
	// PinsVersion is a counter that changes whenever any pin changes: a gateway re-reads
	// the pins only when it moved.
	PinsVersion(ctx context.Context) (int64, error)
}

// PinKey names one definition: a tool, prompt or resource template of a server.
type PinKey struct {
	Server string
	Kind   string // "tool", "prompt" or "resource_template"
	Name   string // its name (the URI template for resource templates)
}

// Pin is the approved definition of one key, and a pending change to it.
type Pin struct {
	PinKey
	Hash       string    // "sha256:<hex>" of the approved canonical definition; "" while never approved
	Definition []byte    // the approved canonical definition (JSON)
	PinnedAt   time.Time // when it was approved (or first seen, in tofu mode)
	PinnedBy   string    // "tofu", or who approved it
	Pending    *PinCandidate
}

// PinCandidate is a definition a server offers that differs from the approved one.
type PinCandidate struct {
	Hash       string
	Definition []byte
	SeenAt     time.Time
}

// ErrConflict is returned when a change was decided on a state that no longer holds.
var ErrConflict = errors.New("store: conflict")
