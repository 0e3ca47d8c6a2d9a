package sandbox

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// keptCaps are what a server keeps when the gateway runs as root and the server runs as
// an unprivileged uid: reading and writing files regardless of their mode bits, within its
// own user namespace (so only files owned by root or by that uid) and within landlock's
// rules. Everything else is dropped.
const keptCaps = 1<<unix.CAP_DAC_OVERRIDE | 1<<unix.CAP_DAC_READ_SEARCH

// dropPrivileges leaves this thread without capabilities (or with keptCaps only, as uid 1
// of the namespace, when asUser), so that executing the server gains none.
func dropPrivileges(asUser bool) error {
	last := 40
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			last = n
		}
	}
	var keep uint64
	if asUser {
		keep = keptCaps
	} else if noCapabilities() {
		return nil // nothing to drop (an unprivileged gateway without namespaces)
	}
	for c := 0; c <= last; c++ {
		if keep&(1<<c) != 0 {
			continue
		}
		if err := prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0); err != nil && err != syscall.EINVAL {
			return fmt.Errorf("dropping capability %d: %w", c, err)
		}
	}
	if asUser {
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETGROUPS, 0, 0, 0); e != 0 {
			return fmt.Errorf("setgroups: %w", e)
		}
		if err := prctl(unix.PR_SET_KEEPCAPS, 1, 0); err != nil {
			return fmt.Errorf("keepcaps: %w", err)
		}
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESGID, 1, 1, 1); e != 0 {
			return fmt.Errorf("setresgid: %w", e)
		}
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, 1, 1, 1); e != 0 {
			return fmt.Errorf("setresuid: %w", e)
		}
	} else {
		// noroot, no_setuid_fixup, keep_caps (off) and no_cap_ambient_raise, each locked.
		const bits = 1<<0 | 1<<1 | 1<<2 | 1<<3 | 1<<5 | 1<<6 | 1<<7
		if err := prctl(unix.PR_SET_SECUREBITS, uintptr(bits), 0); err != nil {
			return fmt.Errorf("securebits: %w", err)
		}
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{{Effective: uint32(keep), Permitted: uint32(keep), Inheritable: uint32(keep)}}
	if _, _, e := syscall.RawSyscall(syscall.SYS_CAPSET, uintptr(unsafePointer(&hdr)), uintptr(unsafePointer(&data[0])), 0); e != 0 {
		return fmt.Errorf("capset: %w", e)
	}
	if err := prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0); err != nil && err != syscall.EINVAL {
		return fmt.Errorf("ambient capabilities: %w", err)
	}
	for c := 0; c < 64; c++ {
		if keep&(1<<c) != 0 {
			if err := prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(c)); err != nil {
				return fmt.Errorf("ambient capability %d: %w", c, err)
			}
		}
	}
	return nil
}

func prctl(op int, a, b uintptr) error {
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRCTL, uintptr(op), a, b, 0, 0, 0); e != 0 {
		return e
	}
	return nil
}

// noCapabilities reports whether this process has no effective, permitted or bounding
// capability left.
func noCapabilities() bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		for _, k := range []string{"CapEff:", "CapPrm:", "CapAmb:"} {
			if v, ok := strings.CutPrefix(l, k); ok && strings.Trim(strings.TrimSpace(v), "0") != "" {
				return false
			}
		}
	}
	return true
}
