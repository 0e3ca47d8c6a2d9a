package sandbox

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Exit is what the launcher reports on fd 4 when the server ends.
type Exit struct {
	Code   int    `json:"code"`
	Signal string `json:"signal,omitempty"`
}

// Main runs the launcher (`portcullis __sandbox-exec STAGE`) and returns its exit code.
// Stage "init" runs first, as pid 1 of the new namespaces; it starts stage "exec", which
// confines itself and becomes the server.
func Main(args []string) int {
	stage := ""
	if len(args) > 0 {
		stage = args[0]
	}
	var err error
	switch stage {
	case "probe":
		if err = setupNamespaces(); err == nil {
			return 0
		}
	case "init":
		var code int
		code, err = initStage()
		if err == nil {
			return code
		}
	case "exec":
		err = execStage()
	default:
		err = fmt.Errorf("this command is started by the gateway only")
	}
	fmt.Fprintf(os.Stderr, "portcullis sandbox: %v\n", err)
	return 126
}

// initStage prepares the namespaces, starts the exec stage and waits for it, reaping
// every orphan, relaying signals and forwarding egress.
func initStage() (int, error) {
	spec, err := readSpec()
	if err != nil {
		return 0, err
	}
	status := os.NewFile(4, "status")
	syscall.CloseOnExec(4) // the server must not report its own exit
	if err := setupNamespaces(); err != nil {
		return 0, err
	}
	spec.PrivateTmp = true
	if spec.Egress != "" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("egress: %w", err)
		}
		go forward(ln, spec.Egress)
		proxy := "http://" + ln.Addr().String()
		spec.Env = setEnv(spec.Env, "HTTP_PROXY", proxy, "HTTPS_PROXY", proxy, "http_proxy", proxy, "https_proxy", proxy,
			"PORTCULLIS_EGRESS_PROXY", proxy, "NODE_USE_ENV_PROXY", "1") // Node 24+ fetch honours the proxy with it
	}
	for _, f := range spec.Forward {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", f.Port))
		if err != nil {
			return 0, fmt.Errorf("forward of port %d: %w", f.Port, err)
		}
		go forward(ln, f.Socket)
	}
	if _, err := os.Stat("/dev/shm"); err == nil {
		spec.Env = setEnv(spec.Env, "TMPDIR", "/dev/shm")
	}
	pipe, err := specPipe(spec)
	if err != nil {
		return 0, err
	}
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	proc, err := os.StartProcess(exe, []string{exe, LauncherArg, "exec"}, &os.ProcAttr{
		Env:   []string{},
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr, pipe},
	})
	pipe.Close()
	if err != nil {
		return 0, fmt.Errorf("starting the server: %w", err)
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	go func() {
		for s := range sigs {
			proc.Signal(s)
		}
	}()
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("waiting for the server: %w", err)
		}
		if pid != proc.Pid {
			continue // an orphan
		}
		ex := Exit{Code: ws.ExitStatus()}
		if ws.Signaled() {
			ex.Code = 128 + int(ws.Signal())
			ex.Signal = unix.SignalName(ws.Signal())
		}
		if status != nil {
			json.NewEncoder(status).Encode(ex)
			status.Close()
		}
		return ex.Code, nil
	}
}

// setupNamespaces makes the mounts private, mounts /proc for the new pid namespace and a
// private tmpfs on /dev/shm, and brings up loopback. The probe does the same, so that a
// kernel that lets user namespaces be created but not used (AppArmor's
// restrict_unprivileged_userns) reports namespaces as unavailable.
func setupNamespaces() error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mounting /proc for the new pid namespace: %w", err)
	}
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if err := unix.Mount("tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=256m,mode=1777"); err != nil {
			return fmt.Errorf("mounting a private /dev/shm: %w", err)
		}
	}
	if err := loopbackUp(); err != nil {
		return fmt.Errorf("bringing up loopback: %w", err)
	}
	return nil
}

func setEnv(env []string, kv ...string) []string {
	for i := 0; i+1 < len(kv); i += 2 {
		prefix := kv[i] + "="
		out := env[:0]
		for _, e := range env {
			if !strings.HasPrefix(e, prefix) {
				out = append(out, e)
			}
		}
		env = append(out, prefix+kv[i+1])
	}
	return env
}

// forward relays each connection to a port of the sandbox's loopback (the egress proxy's,
// or a forwarded one) to the gateway's unix socket behind it.
func forward(ln net.Listener, sock string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			u, err := net.Dial("unix", sock)
			if err != nil {
				io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
				return
			}
			defer u.Close()
			done := make(chan struct{}, 2)
			go func() { io.Copy(u, c); u.(*net.UnixConn).CloseWrite(); done <- struct{}{} }()
			go func() { io.Copy(c, u); c.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
			<-done
			<-done
		}()
	}
}

// loopbackUp sets the up flag of lo, the only interface of a new network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// execStage confines this process and becomes the server.
func execStage() error {
	runtime.LockOSThread() // credentials and capabilities below are per thread until exec
	spec, err := readSpec()
	if err != nil {
		return err
	}
	if err := setRlimits(spec.Limits); err != nil {
		if spec.requires(Rlimits) {
			return err
		}
	}
	if spec.Dir != "" {
		if err := os.Chdir(spec.Dir); err != nil {
			return fmt.Errorf("cwd: %w", err)
		}
	}
	if err := dropPrivileges(spec.UID != 0); err != nil {
		return err
	}
	if err := applyLandlock(spec); err != nil {
		return err
	}
	if err := applySeccomp(spec); err != nil {
		return err
	}
	if spec.Wasm != nil {
		return runWasm(spec) // in this process, under the same confinement
	}
	if err := syscall.Exec(spec.Path, spec.Args, spec.Env); err != nil {
		return fmt.Errorf("exec %s: %w", spec.Path, err)
	}
	return nil
}
