package sandbox

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// setRlimits applies the spec's limits; core dumps are always off.
func setRlimits(l Limits) error {
	set := func(name string, res int, v int64) error {
		if v <= 0 {
			return nil
		}
		lim := unix.Rlimit{Cur: uint64(v), Max: uint64(v)}
		if err := unix.Setrlimit(res, &lim); err != nil {
			return fmt.Errorf("rlimit %s=%d: %w", name, v, err)
		}
		return nil
	}
	for _, r := range []struct {
		name string
		res  int
		v    int64
	}{
		{"memory", unix.RLIMIT_DATA, l.Memory},
		{"cpu", unix.RLIMIT_CPU, l.CPU},
		{"processes", unix.RLIMIT_NPROC, l.Processes},
		{"files", unix.RLIMIT_NOFILE, l.Files},
	} {
		if err := set(r.name, r.res, r.v); err != nil {
			return err
		}
	}
	return unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{})
}
