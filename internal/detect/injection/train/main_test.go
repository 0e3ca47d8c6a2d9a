package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/portcullis-mcp/portcullis/internal/detect/injection"
)

// TestEmbeddedModelIsTrained retrains from the BIPIA training split with the documented
// command's defaults and checks that the result is the embedded model, byte for byte: the
// weights in the binary are the ones this program makes from data the repository reaches.
func TestEmbeddedModelIsTrained(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "..", "..", "shared", "eval", "bipia")
	if _, err := os.Stat(dir); err != nil {
		t.Skip("../shared/eval/bipia not present")
	}
	m, err := train(options{bipia: dir, fp: 0.02, negWeight: 0.25, epochs: 30, w: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if injection.Learned == nil {
		t.Fatal("no embedded model")
	}
	if !bytes.Equal(m.Encode(), injection.Learned.Encode()) {
		t.Errorf("the embedded model.bin is not what go run ./internal/detect/injection/train -bipia ../shared/eval/bipia makes; retrain it")
	}
	if _, err := train(options{bipia: t.TempDir(), fp: 0.02, epochs: 1, w: io.Discard}); err == nil {
		t.Errorf("training on an empty directory succeeded")
	}
}
