package sandbox

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// DisableEnv names protections to treat as unavailable, comma-separated. It exists to see
// (and test) how the gateway behaves on a kernel without them.
const DisableEnv = "PORTCULLIS_SANDBOX_DISABLE"

// Status is whether one protection works on this machine.
type Status struct {
	Name      string
	Available bool
	Detail    string // what was found, or why it is missing
}

// Support is what this kernel offers.
type Support struct {
	Statuses    []Status
	LandlockABI int
}

// Has reports whether protection p is available.
func (s *Support) Has(p string) bool {
	for _, st := range s.Statuses {
		if st.Name == p {
			return st.Available
		}
	}
	return false
}

// Missing returns the protections of want that are unavailable.
func (s *Support) Missing(want []string) []Status {
	var out []Status
	for _, w := range want {
		for _, st := range s.Statuses {
			if st.Name == w && !st.Available {
				out = append(out, st)
			}
		}
	}
	return out
}

var (
	probeOnce sync.Once
	probed    *Support
)

// Probe checks, once per process, which protections this kernel supports.
func Probe() *Support {
	probeOnce.Do(func() { probed = probe(disabled()) })
	return probed
}

func disabled() map[string]bool {
	out := map[string]bool{}
	for _, p := range strings.Split(os.Getenv(DisableEnv), ",") {
		if p = strings.TrimSpace(p); p != "" {
			out[p] = true
		}
	}
	return out
}

func probe(off map[string]bool) *Support {
	s := &Support{}
	add := func(name string, ok bool, detail string) {
		if off[name] {
			ok, detail = false, "disabled by "+DisableEnv
		}
		s.Statuses = append(s.Statuses, Status{Name: name, Available: ok, Detail: detail})
	}
	if err := probeNamespaces(); err != nil {
		add(Namespaces, false, err.Error())
	} else {
		add(Namespaces, true, "user, mount, pid, ipc, uts and network namespaces")
	}
	abi, err := landlockABI()
	switch {
	case err != nil:
		add(Landlock, false, "landlock_create_ruleset: "+err.Error()+" (needs Linux 5.13+ with landlock in the lsm= boot list)")
	case abi < 1:
		add(Landlock, false, "landlock ABI 0")
	default:
		s.LandlockABI = abi
		if off[Landlock] {
			s.LandlockABI = 0
		}
		add(Landlock, true, fmt.Sprintf("landlock ABI v%d", abi))
	}
	if err := probeSeccomp(); err != nil {
		add(Seccomp, false, err.Error())
	} else {
		add(Seccomp, true, "seccomp-bpf filters")
	}
	add(Rlimits, true, "memory (RLIMIT_DATA), CPU time, processes, open files")
	return s
}

func landlockABI() (int, error) {
	v, _, e := syscall.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, 1) // LANDLOCK_CREATE_RULESET_VERSION
	if e != 0 {
		return 0, e
	}
	return int(v), nil
}

func probeSeccomp() error {
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, unix.PR_GET_SECCOMP, 0, 0); e != 0 {
		return fmt.Errorf("prctl(PR_GET_SECCOMP): %v (kernel without CONFIG_SECCOMP)", e)
	}
	return nil
}

// probeNamespaces starts the launcher in every namespace it uses, doing nothing.
func probeNamespaces() error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe, LauncherArg, "probe")
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	setNamespaces(cmd.SysProcAttr, 0)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("cannot create user namespaces (%v %s); check /proc/sys/user/max_user_namespaces and, on Debian and Ubuntu, kernel.unprivileged_userns_clone or AppArmor's restrict_unprivileged_userns", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// setNamespaces asks for new namespaces, mapping root inside to the gateway's user, and,
// when uid is not zero (the gateway runs as root), uid and gid 1 inside to uid outside.
func setNamespaces(a *syscall.SysProcAttr, uid int) {
	a.Cloneflags |= syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWIPC |
		syscall.CLONE_NEWUTS | syscall.CLONE_NEWNET
	a.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}}
	a.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}}
	if uid != 0 && os.Getuid() == 0 {
		a.UidMappings = append(a.UidMappings, syscall.SysProcIDMap{ContainerID: 1, HostID: uid, Size: 1})
		a.GidMappings = append(a.GidMappings, syscall.SysProcIDMap{ContainerID: 1, HostID: uid, Size: 1})
		a.GidMappingsEnableSetgroups = true
	}
}
