package sandbox

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// runWasm runs the spec's WebAssembly module with WASI stdio, the preopened directories
// only, no network, its linear memory bounded by the memory limit and its run by the
// timeout. It returns only on failure; a clean exit ends the process with the module's
// exit code.
func runWasm(spec *Spec) error {
	ctx := context.Background()
	if spec.Wasm.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(spec.Wasm.Timeout)*time.Second)
		defer cancel()
	}
	rc := wazero.NewRuntimeConfig().WithCloseOnContextDone(true)
	if m := spec.Limits.Memory; m > 0 {
		pages := m / 65536
		if pages > 65536 {
			pages = 65536
		}
		if pages < 1 {
			pages = 1
		}
		rc = rc.WithMemoryLimitPages(uint32(pages))
	}
	r := wazero.NewRuntimeWithConfig(ctx, rc)
	defer r.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	code, err := os.ReadFile(spec.Wasm.Module)
	if err != nil {
		return fmt.Errorf("wasm: %w", err)
	}
	mod, err := r.CompileModule(ctx, code)
	if err != nil {
		return fmt.Errorf("wasm: compiling %s: %w", spec.Wasm.Module, err)
	}
	fsc := wazero.NewFSConfig()
	for _, d := range spec.Wasm.Dirs {
		fsc = fsc.WithDirMount(d, d)
	}
	for _, d := range spec.Wasm.RODirs {
		fsc = fsc.WithReadOnlyDirMount(d, d)
	}
	mc := wazero.NewModuleConfig().WithStdin(os.Stdin).WithStdout(os.Stdout).WithStderr(os.Stderr).
		WithArgs(spec.Args...).WithFSConfig(fsc).WithSysWalltime().WithSysNanotime().WithSysNanosleep().
		WithRandSource(rand.Reader).WithName("")
	for _, e := range spec.Env {
		if k, v, ok := strings.Cut(e, "="); ok {
			mc = mc.WithEnv(k, v)
		}
	}
	_, err = r.InstantiateModule(ctx, mod, mc)
	var ee *sys.ExitError
	if errors.As(err, &ee) {
		if ee.ExitCode() == sys.ExitCodeDeadlineExceeded {
			return fmt.Errorf("wasm: the module ran past its timeout of %ds", spec.Wasm.Timeout)
		}
		os.Exit(int(ee.ExitCode()))
	}
	if err != nil {
		return fmt.Errorf("wasm: %w", err)
	}
	os.Exit(0)
	return nil
}
