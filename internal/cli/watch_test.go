package cli

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWatchFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "portcullis.yaml")
	os.WriteFile(path, []byte("a: 1\n"), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes := make(chan struct{}, 10)
	go watchFile(ctx, path, time.Millisecond, func() { changes <- struct{}{} })
	time.Sleep(20 * time.Millisecond)
	// Touching without a change does nothing.
	now := time.Now().Add(time.Second)
	os.Chtimes(path, now, now)
	time.Sleep(20 * time.Millisecond)
	select {
	case <-changes:
		t.Fatal("a touch without new contents was reported")
	default:
	}
	// Replacing the file with new contents is reported once.
	tmp := path + ".tmp"
	os.WriteFile(tmp, []byte("a: 2\n"), 0o644)
	os.Rename(tmp, path)
	select {
	case <-changes:
	case <-time.After(10 * time.Second):
		t.Fatal("a new file was not reported")
	}
}
