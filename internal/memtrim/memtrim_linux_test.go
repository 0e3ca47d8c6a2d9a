package memtrim

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestExecutableRegions(t *testing.T) {
	smaps, err := os.ReadFile("testdata/smaps")
	if err != nil {
		t.Fatal(err)
	}
	dev := mkdev(0xfe, 0x00)
	tests := []struct {
		name string
		dev  uint64
		ino  uint64
		want []region
	}{
		{"read-only private mappings of the file, also once deleted", dev, 1234, []region{
			{0x400000, 0x14f7000, 12956 << 10, 0},
			{0x14f7000, 0x27ad000, 14552 << 10, 0},
			{0x7fe86b800000, 0x7fe86b810000, 8 << 10, 0},
		}},
		{"another file, code with a breakpoint", dev, 99, []region{
			{0x7fe86b427000, 0x7fe86b44d000, 152 << 10, 0},
			{0x7fe86b44d000, 0x7fe86b5a3000, 844 << 10, 4 << 10},
		}},
		{"same inode on another device", mkdev(0xfe, 0x01), 1234, []region{
			{0x7fe86b700000, 0x7fe86b710000, 64 << 10, 0},
		}},
		{"no such file", dev, 7, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := executableRegions(smaps, tt.dev, tt.ino)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d regions %+v, want %+v", len(got), got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("region %d: got %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestReleaseRegionsSkipsPrivateCopies(t *testing.T) {
	regions := []region{
		{start: 0x1000, end: 0x3000, rss: 8 << 10},
		{start: 0x3000, end: 0x5000, rss: 8 << 10, anon: 4 << 10}, // a breakpoint
		{start: 0x5000, end: 0x6000, rss: 4 << 10},
	}
	var dropped []uintptr
	r, err := releaseRegions(regions, func(start, length uintptr) error {
		dropped = append(dropped, start, length)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []uintptr{0x1000, 0x2000, 0x5000, 0x1000}; fmt.Sprint(dropped) != fmt.Sprint(want) {
		t.Errorf("dropped %#x, want %#x", dropped, want)
	}
	if r != (Released{Mappings: 2, Bytes: 12 << 10, Skipped: 1}) {
		t.Errorf("got %+v", r)
	}
	_, err = releaseRegions(regions[:1], func(uintptr, uintptr) error { return syscall.EINVAL })
	if !errors.Is(err, syscall.EINVAL) {
		t.Errorf("a failed madvise: %v", err)
	}
}

func TestMkdevMatchesStat(t *testing.T) {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/exe", &st); err != nil {
		t.Fatal(err)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(maps), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[4] != strconv.FormatUint(st.Ino, 10) {
			continue
		}
		maj, min, _ := strings.Cut(f[3], ":")
		ma, _ := strconv.ParseUint(maj, 16, 32)
		mi, _ := strconv.ParseUint(min, 16, 32)
		if got := mkdev(ma, mi); got != uint64(st.Dev) {
			t.Fatalf("mkdev(%s) = %#x, stat says %#x", f[3], got, st.Dev)
		}
		return
	}
	t.Fatal("the executable is not in /proc/self/maps")
}

// executableRSS is the resident size of the test binary's read-only mappings.
func executableRSS(t *testing.T) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/exe", &st); err != nil {
		t.Fatal(err)
	}
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := executableRegions(smaps, uint64(st.Dev), st.Ino)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, r := range rs {
		n += r.rss
	}
	return n
}

func TestReleaseStartupPages(t *testing.T) {
	before := executableRSS(t)
	r, err := ReleaseStartupPages()
	if err != nil {
		t.Fatal(err)
	}
	after := executableRSS(t) // this code runs again: its pages come back, the rest stays out
	if r.Skipped != 0 {
		t.Errorf("skipped %d mappings: none has private copies of pages", r.Skipped)
	}
	if r.Mappings < 2 {
		t.Fatalf("released %d mappings, want the executable's code and read-only data", r.Mappings)
	}
	if r.Bytes < before/2 {
		t.Errorf("released %d bytes, but %d were resident", r.Bytes, before)
	}
	if after >= before {
		t.Errorf("resident executable pages: %d kB before, %d kB after the release", before>>10, after>>10)
	}
	// The process goes on working: code, type data and function tables come back.
	if s := strings.Repeat(strconv.Itoa(len(os.Args)), 3); len(s) != 3*len(strconv.Itoa(len(os.Args))) {
		t.Fatalf("got %q", s)
	}
}
