package sandbox

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/audit"
)

// TestMain lets the test binary serve as the launcher, as the portcullis binary does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == LauncherArg {
		os.Exit(Main(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "echo-server" {
		echoServer()
		os.Exit(0)
	}
	if len(os.Args) > 1 && os.Args[1] == "dial" {
		dialAll(os.Args[2:])
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func requireSandbox(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts sandboxed processes")
	}
	if m := Probe().Missing(All); len(m) > 0 {
		t.Skipf("this kernel lacks %v", m)
	}
}

// run starts script with sh in the sandbox and returns its output.
func run(t *testing.T, o Options, script string) (string, error) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	if o.Require == nil {
		o.Require = All
	}
	if err := Wrap(o)(cmd); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func TestConfinement(t *testing.T) {
	requireSandbox(t)
	dir := t.TempDir()
	rw := filepath.Join(dir, "rw")
	other := filepath.Join(dir, "other")
	os.Mkdir(rw, 0o755)
	os.Mkdir(other, 0o755)
	os.WriteFile(filepath.Join(other, "secret"), []byte("s3cret"), 0o600)
	o := Options{Name: "t", ReadWrite: []string{rw}, Env: map[string]string{"DECLARED": "1"}}
	for _, c := range []struct {
		name, script string
		ok           bool
	}{
		{"read system", "cat /etc/hostname >/dev/null || cat /etc/passwd >/dev/null", true},
		{"write declared", "echo hi > " + rw + "/f && cat " + rw + "/f", true},
		{"read undeclared", "cat " + other + "/secret", false},
		{"write undeclared", "echo x > " + other + "/new", false},
		{"read shadow", "cat /etc/shadow", false},
		{"pid 1 is the launcher", "test $$ -ne 1 && test -d /proc/1", true},
		{"no host processes", "test ! -d /proc/" + strconv.Itoa(os.Getpid()), true},
		{"no mount", "mount -t tmpfs none " + rw, false},
		{"no new user namespace", "unshare -U true", false},
		{"no reading /root", "ls /root", false},
		{"declared env only", "test \"$DECLARED\" = 1 && test -z \"$GOPATH$GOFLAGS$USER\"", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := run(t, o, c.script)
			if (err == nil) != c.ok {
				t.Fatalf("%q: err=%v, want ok=%v; output:\n%s", c.script, err, c.ok, out)
			}
		})
	}
}

func TestExcept(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"certs/ca.pem", "private/key.pem", "tls/certs/a.pem", "tls/private/k.pem", "tls/openssl.cnf"} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(dir, p), nil, 0o644)
	}
	got := except(dir, []string{"private", "tls/private"})
	want := []string{dir + "/certs", dir + "/tls/certs", dir + "/tls/openssl.cnf"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("except = %v, want %v", got, want)
	}
}

func TestAbnormalExitIsAudited(t *testing.T) {
	requireSandbox(t)
	rec := &recorder{}
	_, err := run(t, Options{Name: "t", Audit: func() Recorder { return rec }}, "kill -KILL $$")
	if err == nil {
		t.Fatal("the killed server exited cleanly")
	}
	for i := 0; i < 100 && !strings.Contains(rec.codes(), audit.CodeSandboxExit); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if got := rec.codes(); !strings.Contains(got, audit.CodeSandboxStarted) || !strings.Contains(got, audit.CodeSandboxExit+"  the sandboxed server was killed") {
		t.Errorf("audit events:\n%s", got)
	}
}

// A read_write directory that does not exist yet is made before the server starts, and
// the server can write there.
func TestReadWriteMadeWhenMissing(t *testing.T) {
	requireSandbox(t)
	rw := filepath.Join(t.TempDir(), "data", "npm")
	out, err := run(t, Options{Name: "t", ReadWrite: []string{rw}}, "echo hi > "+rw+"/f && cat "+rw+"/f")
	if err != nil || strings.TrimSpace(out) != "hi" {
		t.Fatalf("writing into a declared directory that did not exist: %v\n%s", err, out)
	}
}

// dialAll connects to each address, sends "hello" and prints "ADDR ok" or "ADDR failed".
func dialAll(addrs []string) {
	for _, a := range addrs {
		c, err := net.DialTimeout("tcp", a, 2*time.Second)
		if err == nil {
			_, err = io.WriteString(c, "hello")
			c.Close()
		}
		if err != nil {
			fmt.Println(a, "failed")
			continue
		}
		fmt.Println(a, "ok")
	}
}

// A forwarded port on the sandbox's loopback reaches the gateway's unix socket; a port of
// the host's loopback that is not forwarded stays unreachable.
func TestForward(t *testing.T) {
	requireSandbox(t)
	sock := filepath.Join(t.TempDir(), "f.sock")
	os.Chmod(filepath.Dir(sock), 0o755)
	ul, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	got := make(chan string, 4)
	go func() {
		for {
			c, err := ul.Accept()
			if err != nil {
				return
			}
			b, _ := io.ReadAll(c)
			c.Close()
			got <- string(b)
		}
	}()
	// Two host listeners: the port number forwarded (so that the URL is the same inside
	// and out), and one that is not.
	fwd, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer fwd.Close()
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	exe, _ := os.Executable()
	cmd := exec.Command(exe, "dial", fwd.Addr().String(), other.Addr().String())
	if err := Wrap(Options{Name: "t", Require: All, Forward: []Forward{{Port: fwd.Addr().(*net.TCPAddr).Port, Socket: sock}}})(cmd); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := fwd.Addr().String() + " ok\n" + other.Addr().String() + " failed\n"
	if string(out) != want {
		t.Errorf("from the sandbox:\n%s\nwant:\n%s", out, want)
	}
	select {
	case b := <-got:
		if b != "hello" {
			t.Errorf("the socket got %q", b)
		}
	case <-time.After(5 * time.Second):
		t.Error("nothing reached the forwarded socket")
	}
}
