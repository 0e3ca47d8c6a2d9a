package audit

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Key is the per-install secret that arguments and results are HMAC'd with, so that the
// trail can tell equal values apart without holding them, and nobody without the key can
// test guesses against it.
type Key struct {
	pool sync.Pool // of *keyState
}

// keyState is one HMAC in use, with room for its sum (so that the sum does not escape
// to the heap on every call).
type keyState struct {
	h   hash.Hash
	sum [sha256.Size]byte
}

// NewKey returns a key for the secret bytes.
func NewKey(secret []byte) *Key {
	s := append([]byte(nil), secret...)
	return &Key{pool: sync.Pool{New: func() any { return &keyState{h: hmac.New(sha256.New, s)} }}}
}

const sumPrefix = "hmac-sha256:"

// Sum returns "hmac-sha256:<hex>" of b (one allocation: the string).
func (k *Key) Sum(b []byte) string {
	st := k.pool.Get().(*keyState)
	st.h.Reset()
	st.h.Write(b)
	var out [len(sumPrefix) + 2*sha256.Size]byte
	copy(out[:], sumPrefix)
	hex.Encode(out[len(sumPrefix):], st.h.Sum(st.sum[:0]))
	k.pool.Put(st)
	return string(out[:])
}

// LoadKey reads the key at path (64 hex digits), creating it with a fresh random key when
// it does not exist.
func LoadKey(path string) (*Key, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		var secret [32]byte
		rand.Read(secret[:])
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("audit key: %w", err)
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			if errors.Is(err, os.ErrExist) { // created meanwhile by another process
				return LoadKey(path)
			}
			return nil, fmt.Errorf("audit key: %w", err)
		}
		_, err = f.WriteString(hex.EncodeToString(secret[:]) + "\n")
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("audit key: %w", err)
		}
		return NewKey(secret[:]), nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	secret, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(secret) < 16 {
		return nil, fmt.Errorf("audit key %s: want at least 32 hex digits", path)
	}
	return NewKey(secret), nil
}
