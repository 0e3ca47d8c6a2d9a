package detectlistings

import (
	"crypto/sha256"
	"slices"
	"sync"

	"github.com/portcullis-mcp/portcullis/internal/detect"
	"github.com/portcullis-mcp/portcullis/internal/detect/poisoning"
)

// verdictsMax bounds the remembered verdicts; the table is emptied when it is full.
const verdictsMax = 4096

// verdicts remembers the poisoning detector's verdict on item definitions seen before,
// keyed by the SHA-256 of their exact bytes. Every session of a stateful server lists the
// same tools, and checking them was two fifths of a session's start; a definition that
// changes by one byte is checked anew.
type verdicts struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]verdict
}

type verdict struct {
	fs []detect.Finding
	t  poisoning.Tool
}

// check returns d.CheckTool(raw), remembered. The findings are the caller's to change.
func (v *verdicts) check(d *poisoning.Detector, raw []byte) ([]detect.Finding, poisoning.Tool) {
	k := sha256.Sum256(raw)
	v.mu.Lock()
	r, ok := v.m[k]
	v.mu.Unlock()
	if !ok {
		r.fs, r.t = d.CheckTool(raw)
		r.fs = slices.Clip(r.fs)
		v.mu.Lock()
		if v.m == nil || len(v.m) >= verdictsMax {
			v.m = make(map[[sha256.Size]byte]verdict)
		}
		v.m[k] = r
		v.mu.Unlock()
	}
	return slices.Clone(r.fs), r.t
}
