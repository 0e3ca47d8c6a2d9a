package cli

import (
	"fmt"
	"os"
	"testing"
)

// TestMain gives the commands a scratch $XDG_STATE_HOME: a configuration without a store
// path keeps its store there, and tests must neither read nor change the user's own.
func TestMain(m *testing.M) {
	state, err := os.MkdirTemp("", "portcullis-cli-state-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("XDG_STATE_HOME", state)
	code := m.Run()
	os.RemoveAll(state)
	os.Exit(code)
}
