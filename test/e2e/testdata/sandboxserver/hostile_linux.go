package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func init() {
	tools["ps"] = tool{"lists the processes it can see; fails when process pid is not among them", func(a map[string]any) (string, error) {
		ents, err := os.ReadDir("/proc")
		if err != nil {
			return "", err
		}
		target := num(a, "pid", 0)
		found := false
		self := os.Getpid()
		var others []string
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == self {
				continue
			}
			comm, _ := os.ReadFile("/proc/" + e.Name() + "/comm")
			others = append(others, e.Name()+" "+strings.TrimSpace(string(comm)))
			found = found || pid == target
		}
		if !found {
			return "", fmt.Errorf("process %d is not visible (%d others are: %s)", target, len(others), strings.Join(others[:min(len(others), 10)], ", "))
		}
		return fmt.Sprintf("%d other processes: %s", len(others), strings.Join(others[:min(len(others), 10)], ", ")), nil
	}}
	tools["connect"] = tool{"opens a TCP connection", func(a map[string]any) (string, error) {
		c, err := net.DialTimeout("tcp", str(a, "address"), 3*time.Second)
		if err != nil {
			return "", err
		}
		c.Close()
		return "connected to " + str(a, "address"), nil
	}}
	tools["https_get"] = tool{"fetches an HTTPS URL (through HTTPS_PROXY when set)", func(a map[string]any) (string, error) {
		tr := &http.Transport{Proxy: http.ProxyFromEnvironment, TLSClientConfig: &tls.Config{InsecureSkipVerify: a["insecure"] == true}}
		c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		resp, err := c.Get(str(a, "url"))
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		if resp.StatusCode != 200 {
			return "", fmt.Errorf("%s: %s", resp.Status, b)
		}
		return string(b), nil
	}}
	tools["proxy_connect"] = tool{"asks the HTTPS_PROXY to CONNECT to target", func(a map[string]any) (string, error) {
		u, err := url.Parse(os.Getenv("HTTPS_PROXY"))
		if err != nil || u.Host == "" {
			return "", fmt.Errorf("no HTTPS_PROXY")
		}
		c, err := net.DialTimeout("tcp", u.Host, 3*time.Second)
		if err != nil {
			return "", err
		}
		defer c.Close()
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", str(a, "target"), str(a, "target"))
		c.SetReadDeadline(time.Now().Add(15 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return "", err
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if resp.StatusCode != 200 {
			return "", fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
		}
		return resp.Status, nil
	}}
	tools["fork_bomb"] = tool{"starts processes until it cannot, up to n", func(a map[string]any) (string, error) {
		n := num(a, "n", 200)
		var procs []*exec.Cmd
		defer func() {
			for _, p := range procs {
				p.Process.Kill()
				p.Wait()
			}
		}()
		for i := 0; i < n; i++ {
			c := exec.Command("/proc/self/exe", "sleep")
			if err := c.Start(); err != nil {
				return "", fmt.Errorf("process %d of %d: %w", i+1, n, err)
			}
			procs = append(procs, c)
		}
		return fmt.Sprintf("started %d processes", n), nil
	}}
	tools["alloc"] = tool{"allocates and touches mb MiB (in a child process)", func(a map[string]any) (string, error) {
		mb := num(a, "mb", 1024)
		out, err := exec.Command("/proc/self/exe", "alloc", strconv.Itoa(mb)).CombinedOutput()
		if err != nil {
			s := string(out)
			if i := strings.Index(s, "\n"); i > 0 {
				s = s[:i]
			}
			return "", fmt.Errorf("allocating %d MiB: %v: %s", mb, err, s)
		}
		return fmt.Sprintf("allocated %d MiB", mb), nil
	}}
	tools["ptrace"] = tool{"attaches to a child process with ptrace", func(a map[string]any) (string, error) {
		c := exec.Command("/proc/self/exe", "sleep")
		if err := c.Start(); err != nil {
			return "", err
		}
		defer func() { c.Process.Kill(); c.Wait() }()
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := syscall.PtraceAttach(c.Process.Pid); err != nil {
			return "", fmt.Errorf("ptrace attach: %w", err)
		}
		var ws syscall.WaitStatus
		syscall.Wait4(c.Process.Pid, &ws, syscall.WALL, nil)
		syscall.PtraceDetach(c.Process.Pid)
		return "attached to " + strconv.Itoa(c.Process.Pid), nil
	}}
	tools["mount"] = tool{"mounts a tmpfs on dir", func(a map[string]any) (string, error) {
		dir := str(a, "dir")
		if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
			return "", fmt.Errorf("mount: %w", err)
		}
		syscall.Unmount(dir, 0)
		return "mounted a tmpfs on " + dir, nil
	}}
}

// helper runs the child processes of the hostile tools.
func helper(args []string) bool {
	switch args[0] {
	case "sleep":
		time.Sleep(60 * time.Second)
	case "alloc":
		mb, _ := strconv.Atoi(args[1])
		var keep [][]byte
		for i := 0; i < mb; i++ {
			b := make([]byte, 1<<20)
			for j := range b {
				if j%4096 == 0 {
					b[j] = 1
				}
			}
			keep = append(keep, b)
		}
		fmt.Println(len(keep))
	default:
		return false
	}
	return true
}
