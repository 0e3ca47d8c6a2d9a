package upstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
	"github.com/portcullis-mcp/portcullis/internal/rpc"
)

// StdioOptions describe a server run as a child process speaking MCP on stdin/stdout.
type StdioOptions struct {
	Name    string
	Command string
	Args    []string
	Env     []string // full environment of the child (KEY=value)
	Dir     string
	Limits  jsonrpc.Limits
	Logger  *slog.Logger
	// Wrap, when set, turns the command line into the one actually started (a sandbox
	// launcher, for example).
	Wrap func(cmd *exec.Cmd) error
	// Verify, when set, checks the executable (as resolved on PATH) before every start,
	// before Wrap; an error refuses the start (the registry's SHA-256 pin).
	Verify func(path string) error
}

// Stdio is a running child process.
type Stdio struct {
	opts  StdioOptions
	cmd   *exec.Cmd
	peer  *rpc.Peer
	done  chan struct{}
	err   error
	once  sync.Once
	waitc chan struct{}
}

// StartStdio starts the process. Messages it sends unasked go to in.
func StartStdio(ctx context.Context, opts StdioOptions, in Incoming) (*Stdio, error) {
	cmd := exec.Command(opts.Command, opts.Args...)
	cmd.Env = opts.Env
	cmd.Dir = opts.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if opts.Verify != nil {
		if cmd.Err != nil {
			return nil, fmt.Errorf("%w: server %q: %v", ErrUnavailable, opts.Name, cmd.Err)
		}
		if err := opts.Verify(cmd.Path); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
	}
	if opts.Wrap != nil {
		if err := opts.Wrap(cmd); err != nil {
			return nil, fmt.Errorf("server %q: %w", opts.Name, err)
		}
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	err = cmd.Start()
	// The child has its own copies of the extra files (a wrapper's pipes) now; the
	// parent's must close, so that their readers see the end when the child's close.
	for _, f := range cmd.ExtraFiles {
		f.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("%w: server %q: start %s: %v", ErrUnavailable, opts.Name, opts.Command, err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	s := &Stdio{opts: opts, cmd: cmd, done: make(chan struct{}), waitc: make(chan struct{})}
	go func() { // the server's stderr is its log
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 0, 4096), 64<<10)
		for sc.Scan() {
			logger.Debug("server stderr", "upstream", opts.Name, "line", sc.Text())
		}
		io.Copy(io.Discard, stderr)
	}()
	stream := rpc.NewLineStream(stdout, stdin, stdin, opts.Limits)
	bg := context.WithoutCancel(ctx)
	s.peer = rpc.NewPeer(stream, func(ctx context.Context, m *jsonrpc.Message) *jsonrpc.Message { return in(ctx, m) })
	s.peer.OnDecodeError = func(de *jsonrpc.DecodeError) {
		logger.Warn("server sent an invalid message; dropped", "upstream", opts.Name, "err", de.Msg)
	}
	go func() {
		err := s.peer.Run(bg)
		werr := cmd.Wait()
		close(s.waitc)
		if werr != nil {
			err = fmt.Errorf("%w: server %q exited: %v", ErrUnavailable, opts.Name, werr)
		} else {
			err = fmt.Errorf("%w: server %q exited", ErrUnavailable, opts.Name)
		}
		s.finish(err)
	}()
	return s, nil
}

func (s *Stdio) finish(err error) {
	s.once.Do(func() {
		s.err = err
		close(s.done)
	})
}

// Call implements Transport.
func (s *Stdio) Call(ctx context.Context, req *jsonrpc.Message) (*jsonrpc.Message, error) {
	resp, err := s.peer.Call(ctx, req)
	if err != nil && errors.Is(err, rpc.ErrClosed) {
		<-s.done
		return nil, s.err
	}
	return resp, err
}

// Notify implements Transport.
func (s *Stdio) Notify(ctx context.Context, n *jsonrpc.Message) error {
	if err := s.peer.Notify(n); err != nil {
		return fmt.Errorf("%w: server %q: %v", ErrUnavailable, s.opts.Name, err)
	}
	return nil
}

// SetSession implements Transport; stdio has no session ids.
func (s *Stdio) SetSession(string, string) {}

// Done implements Transport.
func (s *Stdio) Done() <-chan struct{} { return s.done }

// Err implements Transport.
func (s *Stdio) Err() error {
	<-s.done
	return s.err
}

// Close closes stdin, as the MCP stdio transport asks, then sends SIGTERM and finally
// SIGKILL to the process group if the server does not exit.
func (s *Stdio) Close() error {
	s.peer.Close()
	select {
	case <-s.waitc:
		return nil
	case <-time.After(2 * time.Second):
	}
	pg := -s.cmd.Process.Pid
	_ = syscall.Kill(pg, syscall.SIGTERM)
	select {
	case <-s.waitc:
		return nil
	case <-time.After(3 * time.Second):
	}
	_ = syscall.Kill(pg, syscall.SIGKILL)
	<-s.waitc
	return nil
}

// Environ returns the gateway's environment reduced to what a child needs to find its
// tools (PATH, HOME, locale, temp dirs), plus extra.
func Environ(extra map[string]string) []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "USER", "LANG", "LC_ALL", "TMPDIR", "TERM", "NODE_PATH", "npm_config_cache", "XDG_CACHE_HOME", "XDG_CONFIG_HOME"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	for k, v := range extra {
		env = append(env, k+"="+v)
	}
	return env
}
