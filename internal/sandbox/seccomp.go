package sandbox

import (
	"errors"
	"fmt"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"golang.org/x/sys/unix"
)

// denied are the system calls a server never needs: debugging other processes, changing
// mounts and namespaces, loading kernel code, keyrings, raw kernel interfaces. They fail
// with EPERM.
var denied = []string{
	"ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
	"mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
	"unshare", "setns",
	"kexec_load", "kexec_file_load", "reboot",
	"bpf", "perf_event_open", "userfaultfd",
	"init_module", "finit_module", "delete_module",
	"add_key", "request_key", "keyctl",
	"acct", "swapon", "swapoff", "syslog", "quotactl", "vhangup",
	"settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
	"open_by_handle_at", "name_to_handle_at", "lookup_dcookie", "iopl", "ioperm",
	"io_uring_setup", "io_uring_enter", "io_uring_register",
	"fanotify_init", "uselib", "personality",
}

// errno is the action that fails a call with EPERM.
var errno = seccomp.ActionErrno | seccomp.Action(unix.EPERM)

// filter returns the seccomp policy of every sandboxed server.
func filter() seccomp.Filter {
	return seccomp.Filter{
		NoNewPrivs: true,
		Policy: seccomp.Policy{
			DefaultAction: seccomp.ActionAllow,
			Syscalls: []seccomp.SyscallGroup{
				{Action: errno, Names: denied},
				{Action: errno, NamesWithCondtions: []seccomp.NameWithConditions{
					// Raw and packet sockets.
					{Name: "socket", Conditions: []seccomp.Condition{{Argument: 0, Operation: seccomp.Equal, Value: unix.AF_PACKET}}},
					{Name: "socket", Conditions: []seccomp.Condition{{Argument: 1, Operation: seccomp.Equal, Value: unix.SOCK_RAW}}},
					{Name: "socket", Conditions: []seccomp.Condition{{Argument: 1, Operation: seccomp.Equal, Value: unix.SOCK_RAW | unix.SOCK_CLOEXEC}}},
					{Name: "socket", Conditions: []seccomp.Condition{{Argument: 1, Operation: seccomp.Equal, Value: unix.SOCK_RAW | unix.SOCK_NONBLOCK}}},
					{Name: "socket", Conditions: []seccomp.Condition{{Argument: 1, Operation: seccomp.Equal, Value: unix.SOCK_RAW | unix.SOCK_CLOEXEC | unix.SOCK_NONBLOCK}}},
					// New namespaces through clone (clone3 is refused with ENOSYS below, so
					// C libraries fall back to clone, whose flags can be checked).
					{Name: "clone", Conditions: []seccomp.Condition{{Argument: 0, Operation: seccomp.BitsSet, Value: unix.CLONE_NEWUSER}}},
					{Name: "clone", Conditions: []seccomp.Condition{{Argument: 0, Operation: seccomp.BitsSet, Value: unix.CLONE_NEWNS}}},
					{Name: "clone", Conditions: []seccomp.Condition{{Argument: 0, Operation: seccomp.BitsSet, Value: unix.CLONE_NEWNET}}},
					// TIOCSTI pushes characters into a terminal's input.
					{Name: "ioctl", Conditions: []seccomp.Condition{{Argument: 1, Operation: seccomp.Equal, Value: unix.TIOCSTI}}},
				}},
				{Action: seccomp.ActionErrno | seccomp.Action(unix.ENOSYS), Names: []string{"clone3"}},
			},
		},
	}
}

// applySeccomp installs the filter on this thread (the one that executes the server).
func applySeccomp(spec *Spec) error {
	if spec.skips(Seccomp) || !seccomp.Supported() {
		if spec.requires(Seccomp) {
			return errors.New("seccomp is required but unavailable")
		}
		return nil
	}
	if err := seccomp.LoadFilter(filter()); err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	return nil
}
