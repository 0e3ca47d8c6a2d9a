package memtrim

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// ReleaseStartupPages drops the process's mappings of the executable's read-only pages
// (code, read-only data, function tables). They are clean copies of the file: the next
// access maps the same bytes again from the page cache, as it would after the kernel
// reclaimed them under memory pressure. Writable mappings are left alone, and so is a
// mapping with private copies of pages in it (a debugger's breakpoints, uprobes).
func ReleaseStartupPages() (Released, error) {
	var exe syscall.Stat_t
	if err := syscall.Stat("/proc/self/exe", &exe); err != nil {
		return Released{}, fmt.Errorf("memtrim: %w", err)
	}
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return Released{}, fmt.Errorf("memtrim: %w", err)
	}
	regions, err := executableRegions(smaps, uint64(exe.Dev), exe.Ino)
	if err != nil {
		return Released{}, err
	}
	return releaseRegions(regions, func(start, length uintptr) error {
		if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, start, length, syscall.MADV_DONTNEED); e != 0 {
			return e
		}
		return nil
	})
}

// releaseRegions drops the regions with drop, leaving alone those with private copies of
// pages in them: breakpoints of a debugger or uprobes, which dropping would remove.
func releaseRegions(regions []region, drop func(start, length uintptr) error) (Released, error) {
	var r Released
	for _, m := range regions {
		if m.anon > 0 {
			r.Skipped++
			continue
		}
		if err := drop(m.start, m.end-m.start); err != nil {
			return r, fmt.Errorf("memtrim: madvise %#x-%#x: %w", m.start, m.end, err)
		}
		r.Mappings++
		r.Bytes += m.rss
	}
	return r, nil
}

type region struct {
	start, end uintptr
	rss        int64 // resident bytes
	anon       int64 // bytes of private copies (pages written to since they were mapped)
}

// executableRegions returns the read-only, private mappings of the file dev:ino in an
// smaps listing, with their resident sizes.
func executableRegions(smaps []byte, dev, ino uint64) ([]region, error) {
	var out []region
	cur := -1
	sc := bufio.NewScanner(bytes.NewReader(smaps))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) >= 5 && strings.Contains(f[0], "-") && len(f[1]) == 4 {
			cur = -1
			m, ok, err := parseMapping(f, dev, ino)
			if err != nil {
				return nil, err
			}
			if ok {
				out = append(out, m)
				cur = len(out) - 1
			}
			continue
		}
		if cur >= 0 && len(f) == 3 && f[0] == "Rss:" && f[2] == "kB" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("memtrim: smaps line %q: %w", line, err)
			}
			out[cur].rss = kb << 10
		}
		if cur >= 0 && len(f) == 3 && f[0] == "Anonymous:" && f[2] == "kB" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("memtrim: smaps line %q: %w", line, err)
			}
			out[cur].anon = kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("memtrim: reading smaps: %w", err)
	}
	return out, nil
}

// parseMapping reads one mapping header ("start-end perms offset major:minor inode path")
// and reports whether it is a read-only private mapping of dev:ino.
func parseMapping(f []string, dev, ino uint64) (region, bool, error) {
	perms := f[1]
	if perms[1] == 'w' || perms[3] != 'p' {
		return region{}, false, nil
	}
	in, err := strconv.ParseUint(f[4], 10, 64)
	if err != nil || in != ino {
		return region{}, false, nil
	}
	maj, min, ok := strings.Cut(f[3], ":")
	if !ok {
		return region{}, false, nil
	}
	ma, err1 := strconv.ParseUint(maj, 16, 32)
	mi, err2 := strconv.ParseUint(min, 16, 32)
	if err1 != nil || err2 != nil || mkdev(ma, mi) != dev {
		return region{}, false, nil
	}
	lo, hi, _ := strings.Cut(f[0], "-")
	s, err1 := strconv.ParseUint(lo, 16, 64)
	e, err2 := strconv.ParseUint(hi, 16, 64)
	if err1 != nil || err2 != nil || e <= s {
		return region{}, false, fmt.Errorf("memtrim: bad mapping range %q", f[0])
	}
	return region{start: uintptr(s), end: uintptr(e)}, true, nil
}

// mkdev builds a device number as stat reports it from its major and minor numbers.
func mkdev(major, minor uint64) uint64 {
	return (major&0xfffff000)<<32 | (major&0xfff)<<8 | (minor&0xffffff00)<<12 | minor&0xff
}
