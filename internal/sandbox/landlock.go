package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Landlock access rights, by ABI version.
const (
	llRead     = unix.LANDLOCK_ACCESS_FS_EXECUTE | unix.LANDLOCK_ACCESS_FS_READ_FILE
	llReadDir  = unix.LANDLOCK_ACCESS_FS_READ_DIR
	llWriteF   = unix.LANDLOCK_ACCESS_FS_WRITE_FILE
	llMake     = unix.LANDLOCK_ACCESS_FS_REMOVE_DIR | unix.LANDLOCK_ACCESS_FS_REMOVE_FILE | unix.LANDLOCK_ACCESS_FS_MAKE_CHAR | unix.LANDLOCK_ACCESS_FS_MAKE_DIR | unix.LANDLOCK_ACCESS_FS_MAKE_REG | unix.LANDLOCK_ACCESS_FS_MAKE_SOCK | unix.LANDLOCK_ACCESS_FS_MAKE_FIFO | unix.LANDLOCK_ACCESS_FS_MAKE_BLOCK | unix.LANDLOCK_ACCESS_FS_MAKE_SYM
	llV1       = llRead | llReadDir | llWriteF | llMake
	llRefer    = unix.LANDLOCK_ACCESS_FS_REFER    // v2
	llTruncate = unix.LANDLOCK_ACCESS_FS_TRUNCATE // v3
	llIoctlDev = unix.LANDLOCK_ACCESS_FS_IOCTL_DEV
)

// secretEtc are the entries of /etc never readable in the sandbox.
var secretEtc = map[string]bool{
	"shadow": true, "shadow-": true, "gshadow": true, "gshadow-": true, "sudoers": true, "sudoers.d": true,
	"ssh": true, "security": true, "krb5.keytab": true, "subuid": true, "subgid": true,
	"libaudit.conf": true, "audit": true, "polkit-1": true, "NetworkManager": true, "wpa_supplicant": true, "docker": true,
	"containerd": true, "kubernetes": true, "credstore": true, "credstore.encrypted": true,
}

// partialEtc are directories of /etc readable but for some paths (private keys).
var partialEtc = map[string][]string{"ssl": {"private"}, "pki": {"private", "tls/private", "CA/private"}}

// systemRO are read-only everywhere: libraries, programs, configuration.
var systemRO = []string{"/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin", "/proc",
	"/sys/devices/system/cpu", "/sys/fs/cgroup", "/dev/random", "/dev/urandom"}

// systemRW are the device files every program may write.
var systemRW = []string{"/dev/null", "/dev/zero", "/dev/full"}

type pathBeneath struct {
	access uint64
	fd     int32
	_      [4]byte
}

type netPort struct {
	access uint64
	port   uint64
}

// applyLandlock restricts the filesystem to the spec's paths and the system's, and TCP to
// the egress port. It does nothing (and says so through the error when required) without
// kernel support.
func applyLandlock(spec *Spec) error {
	abi, err := landlockABI()
	if spec.skips(Landlock) {
		abi, err = 0, errors.New("disabled by "+DisableEnv)
	}
	if err != nil || abi < 1 {
		if spec.requires(Landlock) {
			return fmt.Errorf("landlock is required but unavailable (%v)", err)
		}
		return nil
	}
	handled := uint64(llV1)
	if abi >= 2 {
		handled |= llRefer
	}
	if abi >= 3 {
		handled |= llTruncate
	}
	if abi >= 5 {
		handled |= llIoctlDev
	}
	attr := unix.LandlockRulesetAttr{Handled_access_fs: handled}
	if abi >= 4 {
		attr.Handled_access_net = unix.LANDLOCK_ACCESS_NET_BIND_TCP | unix.LANDLOCK_ACCESS_NET_CONNECT_TCP
	}
	if abi >= 6 {
		attr.Scoped = unix.LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | unix.LANDLOCK_SCOPE_SIGNAL
	}
	size := unsafe.Sizeof(attr)
	fd, _, e := syscall.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptr(unsafe.Pointer(&attr)), size, 0)
	if e != 0 {
		return fmt.Errorf("landlock_create_ruleset: %w", e)
	}
	defer syscall.Close(int(fd))
	ro := uint64(llRead | llReadDir)
	rw := ro | llWriteF | llMake | (handled & (llRefer | llTruncate))
	add := func(p string, access uint64) error {
		pfd, err := unix.Open(p, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EACCES) {
				return nil // a path this system lacks
			}
			return fmt.Errorf("landlock: %s: %w", p, err)
		}
		defer unix.Close(pfd)
		var st unix.Stat_t
		if err := unix.Fstat(pfd, &st); err != nil {
			return fmt.Errorf("landlock: %s: %w", p, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			access &= llRead | llWriteF | (handled & llTruncate)
		}
		pb := pathBeneath{access: access & handled, fd: int32(pfd)}
		if _, _, e := syscall.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, fd, unix.LANDLOCK_RULE_PATH_BENEATH,
			uintptr(unsafe.Pointer(&pb)), 0, 0, 0); e != 0 {
			return fmt.Errorf("landlock_add_rule %s: %w", p, e)
		}
		return nil
	}
	var paths []struct {
		p string
		a uint64
	}
	for _, p := range systemRO {
		paths = append(paths, struct {
			p string
			a uint64
		}{p, ro})
	}
	for _, p := range etcPaths() {
		paths = append(paths, struct {
			p string
			a uint64
		}{p, ro})
	}
	for _, p := range spec.ReadOnly {
		paths = append(paths, struct {
			p string
			a uint64
		}{p, ro})
	}
	rwPaths := append(append([]string{}, systemRW...), spec.ReadWrite...)
	if spec.PrivateTmp {
		rwPaths = append(rwPaths, "/dev/shm")
	}
	for _, p := range rwPaths {
		paths = append(paths, struct {
			p string
			a uint64
		}{p, rw})
	}
	for _, p := range paths {
		if err := add(p.p, p.a); err != nil {
			return err
		}
	}
	if abi >= 4 {
		var ports []int
		if spec.Egress != "" {
			if port := egressPort(spec.Env); port > 0 {
				ports = append(ports, port)
			}
		}
		for _, f := range spec.Forward {
			ports = append(ports, f.Port)
		}
		for _, port := range ports {
			np := netPort{access: unix.LANDLOCK_ACCESS_NET_CONNECT_TCP, port: uint64(port)}
			if _, _, e := syscall.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, fd, 2, // LANDLOCK_RULE_NET_PORT
				uintptr(unsafe.Pointer(&np)), 0, 0, 0); e != 0 {
				return fmt.Errorf("landlock_add_rule port %d: %w", port, e)
			}
		}
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	if _, _, e := syscall.Syscall(unix.SYS_LANDLOCK_RESTRICT_SELF, fd, 0, 0); e != 0 {
		return fmt.Errorf("landlock_restrict_self: %w", e)
	}
	return nil
}

func egressPort(env []string) int {
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PORTCULLIS_EGRESS_PROXY=http://127.0.0.1:"); ok {
			var n int
			fmt.Sscanf(v, "%d", &n)
			return n
		}
	}
	return 0
}

// etcPaths lists what of /etc is readable: every entry but the secrets.
func etcPaths() []string {
	var out []string
	ents, _ := os.ReadDir("/etc")
	for _, e := range ents {
		n := e.Name()
		switch {
		case secretEtc[n]:
		case partialEtc[n] != nil:
			out = append(out, except(filepath.Join("/etc", n), partialEtc[n])...)
		default:
			out = append(out, filepath.Join("/etc", n))
		}
	}
	return out
}

// except lists the entries of dir, descending into those that hold an excluded path
// (relative to dir) and leaving the excluded paths out.
func except(dir string, excluded []string) []string {
	var out []string
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		n := e.Name()
		var inner []string
		skip := false
		for _, x := range excluded {
			if x == n {
				skip = true
			} else if rest, ok := strings.CutPrefix(x, n+"/"); ok {
				inner = append(inner, rest)
			}
		}
		switch {
		case skip:
		case len(inner) > 0 && e.IsDir():
			out = append(out, except(filepath.Join(dir, n), inner)...)
		default:
			out = append(out, filepath.Join(dir, n))
		}
	}
	return out
}
