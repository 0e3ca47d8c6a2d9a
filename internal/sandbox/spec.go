// Package sandbox starts local MCP servers confined: a launcher (the portcullis binary
// itself, re-executed as `portcullis __sandbox-exec`) enters new user, mount, pid, ipc,
// uts and network namespaces, mounts a fresh /proc, then starts a second stage that sets
// rlimits, drops capabilities, applies landlock rules and a seccomp filter, and executes
// the server with a clean environment. A server given as a WebAssembly module runs in
// wazero inside the same confinement.
//
// The gateway side (Command) turns a server's command line into the launcher's and hands
// it a Spec over a pipe (never on the command line or in the environment, where secrets
// would show). Egress, when a server is allowed any, goes through the gateway's proxy
// (Proxy): the launcher forwards a loopback port inside the sandbox to it.
package sandbox

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// LauncherArg is the hidden subcommand that runs the launcher.
const LauncherArg = "__sandbox-exec"

// Protections, as named in configuration (sandbox.require) and reports.
const (
	Namespaces = "namespaces"
	Landlock   = "landlock"
	Seccomp    = "seccomp"
	Rlimits    = "rlimits"
)

// All lists every protection, in the order they are reported.
var All = []string{Namespaces, Landlock, Seccomp, Rlimits}

// Limits are the resource limits of a sandboxed server; zero means unlimited.
type Limits struct {
	Memory    int64 `json:"memory,omitempty"`    // bytes of data (RLIMIT_DATA; wasm: linear memory)
	CPU       int64 `json:"cpu,omitempty"`       // seconds of CPU time (RLIMIT_CPU)
	Processes int64 `json:"processes,omitempty"` // processes and threads (RLIMIT_NPROC)
	Files     int64 `json:"files,omitempty"`     // open files (RLIMIT_NOFILE)
}

// Spec is what the launcher needs to start one server. The gateway writes it to the
// launcher's fd 3 as JSON.
type Spec struct {
	Name string   `json:"name"`
	Path string   `json:"path"` // the resolved executable
	Args []string `json:"args"` // argv, argv[0] included
	Env  []string `json:"env"`  // the server's whole environment
	Dir  string   `json:"dir,omitempty"`

	ReadOnly  []string `json:"read_only,omitempty"`  // directories and files, read and execute
	ReadWrite []string `json:"read_write,omitempty"` // directories and files, read and write

	Limits Limits `json:"limits"`
	// Egress is the unix socket of the gateway's egress proxy; empty: no network at all.
	Egress string `json:"egress,omitempty"`
	// Forward are loopback ports the server may connect to, each relayed to a unix socket
	// of the gateway (the scanner's canary listener).
	Forward []Forward `json:"forward,omitempty"`
	// Require names protections that must be in force; the launcher refuses to start the
	// server without them. Others are applied when the kernel has them.
	Require []string `json:"require,omitempty"`
	// Skip names protections treated as unavailable (see PORTCULLIS_SANDBOX_DISABLE).
	Skip []string `json:"skip,omitempty"`
	// UID, when not zero, is the host uid the server runs as (the gateway runs as root:
	// the server then keeps read and write access through landlock's rules only).
	UID int `json:"uid,omitempty"`

	// PrivateTmp says /dev/shm is the sandbox's own tmpfs (set by the first stage), which
	// the server may then write.
	PrivateTmp bool `json:"private_tmp,omitempty"`

	// Wasm is a WebAssembly module run in wazero instead of executing Path.
	Wasm *Wasm `json:"wasm,omitempty"`
}

// Forward is a TCP port on the sandbox's loopback that reaches a listener of the gateway:
// inside the network namespace the launcher listens on 127.0.0.1:Port and relays each
// connection to Socket; without namespaces the server reaches the gateway's own listener
// on that port. Landlock lets the server connect to the port either way. Nothing in a
// configuration sets it: it is for the scanner's canaries.
type Forward struct {
	Port   int    `json:"port"`
	Socket string `json:"socket"`
}

// Wasm describes a WebAssembly server.
type Wasm struct {
	Module string   `json:"module"`
	Dirs   []string `json:"dirs,omitempty"`    // preopened read-write directories
	RODirs []string `json:"ro_dirs,omitempty"` // preopened read-only directories
	// Timeout, in seconds, bounds the module's whole run (zero: none).
	Timeout int64 `json:"timeout,omitempty"`
}

func (s *Spec) requires(p string) bool {
	for _, r := range s.Require {
		if r == p {
			return true
		}
	}
	return false
}

func (s *Spec) skips(p string) bool {
	for _, r := range s.Skip {
		if r == p {
			return true
		}
	}
	return false
}

// readSpec reads the spec from fd 3 and closes it.
func readSpec() (*Spec, error) {
	f := os.NewFile(3, "spec")
	if f == nil {
		return nil, fmt.Errorf("no spec on fd 3 (this command is started by the gateway only)")
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the spec: %w", err)
	}
	var s Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decoding the spec: %w", err)
	}
	return &s, nil
}

// specPipe returns the read end of a pipe that yields s.
func specPipe(s *Spec) (*os.File, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	go func() {
		w.Write(b)
		w.Close()
	}()
	return r, nil
}
