package sandbox

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/audit"
)

// Recorder records audit events (an *audit.Broker).
type Recorder interface {
	Record(ctx context.Context, e *audit.Event) error
}

// Options describe how one server is confined.
type Options struct {
	Name      string
	ReadOnly  []string // declared, besides the server's own install
	ReadWrite []string
	Limits    Limits
	// Require lists the protections without which the server must not start.
	Require []string
	// Egress, when set, is the proxy the server may reach named hosts through.
	Egress *Proxy
	// Forward are loopback ports relayed to listeners of the gateway (see Forward).
	Forward []Forward
	// Wasm is the module of a WebAssembly server (the command is then ignored).
	Wasm        string
	WasmTimeout time.Duration
	// Env is the server's declared environment (secrets included); the sandbox passes it
	// and, from the gateway's, only PATH, HOME, LANG, LC_ALL, TERM and npm_config_cache.
	Env map[string]string
	// UID is the host uid of servers started by a gateway running as root (default 65534).
	UID    int
	Logger *slog.Logger
	// Launcher is the portcullis binary to run as the launcher (default: this one).
	Launcher string
	// Audit returns where sandbox events are recorded (nil: nowhere).
	Audit func() Recorder
}

// Wrap returns the function that turns a server's command into the launcher's (see
// upstream.StdioOptions.Wrap). It refuses, naming the protection, when the kernel lacks
// one the server requires.
func Wrap(o Options) func(cmd *exec.Cmd) error {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.UID == 0 {
		o.UID = 65534
	}
	return func(cmd *exec.Cmd) error { return o.wrap(cmd) }
}

func (o *Options) wrap(cmd *exec.Cmd) error {
	sup := Probe()
	if missing := sup.Missing(o.Require); len(missing) > 0 {
		var b strings.Builder
		for i, m := range missing {
			if i > 0 {
				b.WriteString("; ")
			}
			fmt.Fprintf(&b, "%s: %s", m.Name, m.Detail)
		}
		o.record(audit.CodeSandboxRefused, "refused", "the sandbox lacks required protections: "+b.String())
		return fmt.Errorf("sandbox: this kernel lacks protections the server requires (%s); run `portcullis sandbox check`, or drop them from sandbox.require to start it without them", b.String())
	}
	var skip []string
	for _, st := range sup.Statuses {
		if !st.Available {
			skip = append(skip, st.Name)
			o.Logger.Warn("sandbox protection unavailable; the server starts without it", "upstream", o.Name, "protection", st.Name, "reason", st.Detail)
		}
	}
	spec := &Spec{Name: o.Name, Args: cmd.Args, Env: o.environ(), Dir: cmd.Dir, Limits: o.Limits, Require: o.Require, Skip: skip}
	if o.Wasm != "" {
		mod, err := filepath.Abs(o.Wasm)
		if err != nil {
			return err
		}
		spec.Wasm = &Wasm{Module: mod, Timeout: int64(o.WasmTimeout / time.Second)}
		spec.Args = append([]string{filepath.Base(mod)}, cmd.Args[1:]...)
		spec.ReadOnly = append(spec.ReadOnly, mod)
		spec.Wasm.Dirs = absAll(o.ReadWrite)
		spec.Wasm.RODirs = absAll(o.ReadOnly)
		cmd.Err = nil
	} else {
		if cmd.Err != nil {
			return cmd.Err
		}
		path := cmd.Path
		if !filepath.IsAbs(path) {
			base := cmd.Dir
			if base == "" {
				base, _ = os.Getwd()
			}
			path = filepath.Join(base, path)
		}
		spec.Path = path
		spec.ReadOnly = append(spec.ReadOnly, installRoots(path, cmd.Args[1:], cmd.Env)...)
	}
	if cmd.Dir != "" {
		spec.ReadOnly = append(spec.ReadOnly, cmd.Dir)
	}
	spec.ReadOnly = append(spec.ReadOnly, absAll(o.ReadOnly)...)
	for _, p := range absAll(o.ReadWrite) {
		// A declared directory that does not exist yet is made, so that a first start (an
		// npm cache of the server's own, a data directory) works; the rules below need it.
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(p, 0o700); err != nil {
				return fmt.Errorf("sandbox: read_write %s does not exist and cannot be made: %w", p, err)
			}
			o.Logger.Info("made a sandbox read_write directory", "upstream", o.Name, "path", p)
		}
		spec.ReadWrite = append(spec.ReadWrite, p)
	}
	if o.Egress != nil {
		spec.Egress = o.Egress.Path()
	}
	spec.Forward = o.Forward
	exe := o.Launcher
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return fmt.Errorf("sandbox: finding the portcullis binary: %w", err)
		}
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	stage := "init"
	if sup.Has(Namespaces) {
		uid := 0
		if os.Getuid() == 0 {
			uid = o.UID
			spec.UID = o.UID
		}
		setNamespaces(cmd.SysProcAttr, uid)
	} else {
		stage = "exec" // no namespaces: confine in place
		spec.Egress = ""
	}
	pipe, err := specPipe(spec)
	if err != nil {
		return err
	}
	sr, sw, err := os.Pipe()
	if err != nil {
		pipe.Close()
		return err
	}
	cmd.Path = exe
	cmd.Args = []string{"portcullis-sandbox", LauncherArg, stage}
	cmd.Env = []string{}
	cmd.Dir = ""
	// The caller closes the extra files once Start has given them to the child (as
	// upstream.StartStdio does): the read end of the status pipe then sees the end when
	// the launcher ends.
	cmd.ExtraFiles = []*os.File{pipe, sw}
	go o.watch(sr)
	o.record(audit.CodeSandboxStarted, "allowed", "started in the sandbox: "+summary(sup, spec))
	return nil
}

// passedEnv are the variables of the gateway's environment a sandboxed server gets.
var passedEnv = []string{"PATH", "HOME", "LANG", "LC_ALL", "TERM", "npm_config_cache"}

func (o *Options) environ() []string {
	var env []string
	for _, k := range passedEnv {
		if _, declared := o.Env[k]; declared {
			continue
		}
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	keys := make([]string, 0, len(o.Env))
	for k := range o.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+o.Env[k])
	}
	return env
}

func summary(sup *Support, spec *Spec) string {
	var parts []string
	for _, st := range sup.Statuses {
		if st.Available {
			parts = append(parts, st.Detail)
		} else {
			parts = append(parts, st.Name+" unavailable")
		}
	}
	if spec.Egress != "" {
		parts = append(parts, "egress through the gateway's proxy")
	} else {
		parts = append(parts, "no network")
	}
	if spec.Wasm != nil {
		parts = append(parts, "WebAssembly (wazero)")
	}
	return strings.Join(parts, ", ")
}

// watch reads the launcher's report of how the server ended and audits abnormal ends.
func (o *Options) watch(r *os.File) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	if !sc.Scan() {
		return
	}
	var ex Exit
	if json.Unmarshal(sc.Bytes(), &ex) != nil {
		return
	}
	if ex.Signal == "" && ex.Code == 0 {
		return
	}
	msg := fmt.Sprintf("the sandboxed server exited with code %d", ex.Code)
	switch ex.Signal {
	case "":
	case "SIGXCPU":
		msg = "the sandboxed server was stopped by its CPU time limit (SIGXCPU)"
	case "SIGTERM", "SIGINT", "SIGHUP":
		return // stopped by the gateway
	case "SIGKILL":
		msg = "the sandboxed server was killed (SIGKILL: a CPU or memory limit, or the gateway stopping it)"
	case "SIGSYS":
		msg = "the sandboxed server was killed by the seccomp filter (SIGSYS)"
	default:
		msg = "the sandboxed server was killed by " + ex.Signal
	}
	o.Logger.Warn("sandboxed server ended", "upstream", o.Name, "code", ex.Code, "signal", ex.Signal)
	o.record(audit.CodeSandboxExit, "failed", msg)
}

func (o *Options) record(code, decision, msg string) {
	if o.Audit == nil {
		return
	}
	r := o.Audit()
	if r == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Record(ctx, &audit.Event{Code: code, Kind: audit.KindSystem, Server: o.Name, Method: "sandbox", Decision: decision, Message: msg}); err != nil {
		o.Logger.Error("sandbox event not recorded", "upstream", o.Name, "err", err)
	}
}

func absAll(ps []string) []string {
	var out []string
	for _, p := range ps {
		if a, err := filepath.Abs(p); err == nil {
			out = append(out, a)
		}
	}
	return out
}

var nodeTools = map[string]bool{"node": true, "nodejs": true, "npx": true, "npm": true, "pnpm": true, "pnpx": true, "yarn": true, "corepack": true}

// installRoots returns what a server needs to read of its own install: the directory of
// its executable (and of the file a symbolic link leads to), the node_modules tree of
// every script among its arguments, and for Node tools npm's cache and global packages.
func installRoots(exe string, args, env []string) []string {
	var out []string
	node := false
	home := lookupEnv(env, "HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	// grant adds dir, unless it is the home directory or holds it: then only file.
	grant := func(dir, file string) {
		if home != "" && (dir == "/" || home == dir || strings.HasPrefix(home, dir+string(filepath.Separator))) {
			out = append(out, file)
			return
		}
		out = append(out, dir)
	}
	add := func(p string) {
		if p == "" {
			return
		}
		if i := strings.Index(p, string(filepath.Separator)+"node_modules"+string(filepath.Separator)); i >= 0 {
			grant(p[:i+len("/node_modules")], p)
			return
		}
		dir := filepath.Dir(p)
		grant(dir, p)
		if filepath.Base(dir) == "bin" {
			if lib := filepath.Join(filepath.Dir(dir), "lib", "node_modules"); isDir(lib) {
				out = append(out, lib)
			}
		}
	}
	for _, p := range []string{exe, realPath(exe)} {
		add(p)
		node = node || nodeTools[filepath.Base(p)] || strings.HasSuffix(p, "npx-cli.js") || strings.HasSuffix(p, "npm-cli.js")
	}
	for _, a := range args {
		if filepath.IsAbs(a) && isFile(a) {
			add(a)
			add(realPath(a))
		}
		node = node || a == "npx" || a == "npm"
	}
	if node {
		if c := lookupEnv(env, "npm_config_cache"); c != "" {
			out = append(out, c)
		} else if h := lookupEnv(env, "HOME"); h != "" {
			out = append(out, filepath.Join(h, ".npm"))
		}
	}
	return out
}

func lookupEnv(env []string, k string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], k+"="); ok {
			return v
		}
	}
	return ""
}

func realPath(p string) string {
	r, err := filepath.EvalSymlinks(p)
	if err != nil || r == p {
		return ""
	}
	return r
}

func isDir(p string) bool  { fi, err := os.Stat(p); return err == nil && fi.IsDir() }
func isFile(p string) bool { fi, err := os.Stat(p); return err == nil && fi.Mode().IsRegular() }
