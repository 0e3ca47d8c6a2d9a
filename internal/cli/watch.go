package cli

import (
	"context"
	"crypto/sha256"
	"os"
	"time"
)

// watchFile calls changed when the file at path has new contents. It polls (editors often
// replace a file rather than write it, and polling sees that the same way everywhere) and
// compares a hash of the contents, so touching the file without changing it does nothing.
func watchFile(ctx context.Context, path string, every time.Duration, changed func()) {
	sum := func() [32]byte {
		b, err := os.ReadFile(path)
		if err != nil {
			return [32]byte{}
		}
		return sha256.Sum256(b)
	}
	last := sum()
	var lastMod time.Time
	var lastSize int64 = -1
	if fi, err := os.Stat(path); err == nil {
		lastMod, lastSize = fi.ModTime(), fi.Size()
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fi, err := os.Stat(path)
		if err != nil || (fi.ModTime().Equal(lastMod) && fi.Size() == lastSize) {
			continue
		}
		lastMod, lastSize = fi.ModTime(), fi.Size()
		if s := sum(); s != last {
			last = s
			changed()
		}
	}
}
