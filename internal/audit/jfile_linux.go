package audit

import "syscall"

// mapChunk is the least the journal allocates ahead of its events.
const mapChunk = 4 << 20

// grow allocates at least need bytes in the file and maps them. It reports whether the
// journal is mapped; false leaves the mapping as it was.
func (j *jfile) grow(need int64) bool {
	n := max(j.cap, mapChunk)
	for n < need {
		n *= 2
	}
	// The blocks are allocated now: a full disk is an error of this append (the call is
	// refused), never a SIGBUS on a later copy.
	if err := syscall.Fallocate(int(j.f.Fd()), 0, 0, n); err != nil {
		return false
	}
	m, err := syscall.Mmap(int(j.f.Fd()), 0, int(n), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return false
	}
	j.unmap()
	j.m, j.cap = m, n
	return true
}

func (j *jfile) unmap() {
	if j.m != nil {
		syscall.Munmap(j.m)
		j.m = nil
	}
	j.cap = 0
}
