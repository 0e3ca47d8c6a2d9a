package audit

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
)

// jfile is the open journal. Appends go through a shared mapping of the file where the
// system has one (jfile_linux.go): an append is then a copy into the page cache, which
// outlives the process just as a write(2) does, without a system call. Elsewhere, or
// when the file cannot be mapped, appends are positional writes.
//
// The file may be longer than its events: what follows them is zeros (blocks allocated
// ahead for the mapping). A journal's events end at its first NUL byte, which no
// canonical line holds.
type jfile struct {
	f    *os.File
	size int64  // bytes of events
	m    []byte // the mapping; nil: writes
	cap  int64  // bytes allocated in the file (the mapping's length)
	// noMap: the file could not be mapped (a file system without fallocate, a full
	// disk): appends are writes until the next journal file.
	noMap bool
}

// openJFile creates (or empties) the journal at path.
func openJFile(path string) (*jfile, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	return &jfile{f: f}, nil
}

// append adds b (whole lines) after the events. On an error nothing counts as written:
// the bytes after size are zeros again or are overwritten by the next append.
func (j *jfile) append(b []byte) error {
	if j.size+int64(len(b)) > j.cap && !j.noMap && !j.grow(j.size+int64(len(b))) {
		j.unmap()
		j.noMap = true
	}
	if j.m == nil {
		if _, err := j.f.WriteAt(b, j.size); err != nil {
			j.f.Truncate(j.size) // no torn line before the next batch
			return err
		}
		j.size += int64(len(b))
		return nil
	}
	copy(j.m[j.size:], b)
	j.size += int64(len(b))
	return nil
}

// reset empties the journal (every event in it is in the store).
func (j *jfile) reset() error {
	if j.m != nil {
		// The mapped blocks stay, as zeros: no system call, and the next appends find
		// their pages in place. Cleared from the end backwards, so that a process killed
		// meanwhile leaves events the store holds, then zeros (the end of the journal).
		for end := j.size; end > 0; {
			start := max(0, end-4096)
			clear(j.m[start:end])
			end = start
		}
		j.size = 0
		return nil
	}
	if err := j.f.Truncate(0); err != nil {
		return err
	}
	j.size = 0
	return nil
}

// close drops the blocks allocated ahead and closes the file.
func (j *jfile) close() error {
	j.unmap()
	return errors.Join(j.f.Truncate(j.size), j.f.Close())
}

// readJournal calls fn for each complete line of the journal file at path, in order, up
// to its end: a torn last line (no newline) or the first NUL byte.
func readJournal(path string, fn func(line []byte, n int) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<16)
	for n := 1; ; n++ {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: collect it.
			long := bytes.Clone(line)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if i := bytes.IndexByte(line, 0); i >= 0 {
			return nil // the end of the events: what follows was allocated ahead
		}
		if errors.Is(err, io.EOF) {
			return nil // a torn last line was never acknowledged
		}
		if err != nil {
			return err
		}
		if err := fn(line[:len(line)-1], n); err != nil {
			return err
		}
	}
}
