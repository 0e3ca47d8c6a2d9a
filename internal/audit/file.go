package audit

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// FileOptions parameterize a JSONL file sink.
type FileOptions struct {
	Path string
	// RotateBytes starts a new file once the current one holds at least this many bytes
	// (0: never). The full file is renamed to Path.NNNNNN (numbered from 000001); the chain
	// continues in the new file, so Verify walks Files(Path) in order.
	RotateBytes int64
	// NoSync skips fsync: a batch is acknowledged once the kernel has it, which survives a
	// crash of the gateway but not of the machine. By default every batch is synced
	// before it is acknowledged.
	NoSync bool
}

// FileSink writes one canonical event per line to a file.
type FileSink struct {
	o    FileOptions
	mu   sync.Mutex
	f    *os.File
	size int64
	last Position
	has  bool
	buf  []byte
}

var _ Resumer = (*FileSink)(nil)

// OpenFile opens (or creates) the trail at o.Path. A line cut short by a crash at the end
// of the file is removed (it was never acknowledged).
func OpenFile(o FileOptions) (*FileSink, error) {
	if o.Path == "" {
		return nil, errors.New("audit file: no path")
	}
	s := &FileSink{o: o}
	if err := os.MkdirAll(filepath.Dir(o.Path), 0o700); err != nil {
		return nil, fmt.Errorf("audit file: %w", err)
	}
	if err := s.open(); err != nil {
		return nil, err
	}
	if !s.has {
		// The live file is empty: the chain continues from the newest rotated file.
		files, err := Files(o.Path)
		if err == nil && len(files) > 1 {
			if p, ok, err := lastEvent(files[len(files)-2]); err == nil && ok {
				s.last, s.has = p, true
			}
		}
	}
	return s, nil
}

func (s *FileSink) open() error {
	f, err := os.OpenFile(s.o.Path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("audit file: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("audit file: %w", err)
	}
	size := st.Size()
	if st.Mode().IsRegular() && size > 0 {
		good, err := repairTail(s.o.Path, size)
		if err != nil {
			f.Close()
			return fmt.Errorf("audit file: %w", err)
		}
		if good != size {
			if err := f.Truncate(good); err != nil {
				f.Close()
				return fmt.Errorf("audit file: removing a torn last line: %w", err)
			}
			size = good
		}
		if p, ok, err := lastEvent(s.o.Path); err == nil && ok {
			s.last, s.has = p, true
		}
	}
	s.f, s.size = f, size
	return nil
}

// repairTail returns the length of the file up to and including its last newline.
func repairTail(path string, size int64) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	const chunk = 64 << 10
	end := size
	b := make([]byte, chunk)
	for end > 0 {
		start := max(0, end-chunk)
		n, err := f.ReadAt(b[:end-start], start)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if i := bytes.LastIndexByte(b[:n], '\n'); i >= 0 {
			return start + int64(i) + 1, nil
		}
		end = start
	}
	return 0, nil
}

// lastEvent reads the position of the last event in a file.
func lastEvent(path string) (Position, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return Position{}, false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Position{}, false, err
	}
	const chunk = 1 << 20
	start := max(0, st.Size()-chunk)
	b := make([]byte, st.Size()-start)
	if _, err := f.ReadAt(b, start); err != nil && !errors.Is(err, io.EOF) {
		return Position{}, false, err
	}
	b = bytes.TrimRight(b, "\n")
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	if len(b) == 0 {
		return Position{}, false, nil
	}
	e, err := ParseLine(b)
	if err != nil {
		return Position{}, false, err
	}
	return Position{Seq: e.Seq, Hash: e.Hash}, true, nil
}

// Name implements Sink.
func (s *FileSink) Name() string { return "file" }

// Last implements Resumer.
func (s *FileSink) Last() (Position, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, s.has
}

// Probe implements Sink: the file is open, still the file at its path, and syncs.
func (s *FileSink) Probe(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ensure(); err != nil {
		return err
	}
	if s.o.NoSync {
		return nil
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("audit file: %w", err)
	}
	return nil
}

// ensure (re)opens the file when it is closed or when the path no longer names it (it was
// moved away, deleted or replaced, for example by logrotate).
func (s *FileSink) ensure() error {
	if s.f != nil {
		cur, err1 := s.f.Stat()
		now, err2 := os.Stat(s.o.Path)
		if err1 == nil && err2 == nil && os.SameFile(cur, now) {
			return nil
		}
		s.f.Close()
		s.f = nil
	}
	return s.open()
}

// Write implements Sink: one line per event, then fsync; on a failure the file is cut
// back to where it was.
func (s *FileSink) Write(ctx context.Context, batch []*Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ensure(); err != nil {
		return err
	}
	buf := s.buf[:0]
	for _, e := range batch {
		buf = e.AppendCanonical(buf)
		buf = append(buf, '\n')
	}
	s.buf = buf
	n, err := s.f.Write(buf)
	if err == nil && !s.o.NoSync {
		err = s.f.Sync()
	}
	if err != nil {
		if n > 0 {
			s.f.Truncate(s.size)
		}
		s.f.Close()
		s.f = nil
		return fmt.Errorf("audit file: %w", err)
	}
	s.size += int64(n)
	if len(batch) > 0 {
		e := batch[len(batch)-1]
		s.last, s.has = Position{Seq: e.Seq, Hash: e.Hash}, true
	}
	if s.o.RotateBytes > 0 && s.size >= s.o.RotateBytes {
		// The events are written; a failed rotation only means the file grows on (or is
		// reopened by the next write).
		s.rotate()
	}
	return nil
}

func (s *FileSink) rotate() error {
	files, err := Files(s.o.Path)
	if err != nil {
		return err
	}
	n := 1
	if len(files) > 1 {
		n = rotatedIndex(s.o.Path, files[len(files)-2]) + 1
	}
	if err := os.Rename(s.o.Path, fmt.Sprintf("%s.%06d", s.o.Path, n)); err != nil {
		return err
	}
	s.f.Close()
	s.f = nil
	if d, err := os.Open(filepath.Dir(s.o.Path)); err == nil {
		d.Sync()
		d.Close()
	}
	return s.open()
}

// Close implements Sink.
func (s *FileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

func rotatedIndex(path, name string) int {
	suf, ok := strings.CutPrefix(name, path+".")
	if !ok || len(suf) < 6 {
		return -1
	}
	n, err := strconv.Atoi(suf)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// Files returns the files of the trail at path, oldest first: the rotated files
// (path.000001, path.000002, ...) and then path itself when it exists.
func Files(path string) ([]string, error) {
	matches, err := filepath.Glob(globEscape(path) + ".*")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range matches {
		if rotatedIndex(path, m) >= 0 {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return rotatedIndex(path, a) - rotatedIndex(path, b) })
	if _, err := os.Stat(path); err == nil {
		out = append(out, path)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no audit files at %s", path)
	}
	return out, nil
}

func globEscape(p string) string {
	var b strings.Builder
	for _, r := range p {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Walk calls fn for every line of the trail's files, in order. It stops at the first
// error fn returns.
func Walk(files []string, fn func(Entry) error) error {
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		r := bufio.NewReaderSize(f, 1<<16)
		line := 0
		for {
			b, err := r.ReadBytes('\n')
			if len(b) > 0 {
				line++
				if ferr := fn(Entry{File: name, Line: line, Raw: bytes.TrimRight(b, "\r\n")}); ferr != nil {
					f.Close()
					return ferr
				}
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					f.Close()
					return err
				}
				break
			}
		}
		f.Close()
	}
	return nil
}

// VerifyFiles checks the trail in files and returns the number of events and the first
// problem (nil when the trail verifies).
func VerifyFiles(files []string) (*Verifier, *Problem, error) {
	seqs := map[uint64]Entry{}
	err := Walk(files, func(en Entry) error {
		if e, err := ParseLine(en.Raw); err == nil {
			if _, dup := seqs[e.Seq]; !dup {
				seqs[e.Seq] = Entry{File: en.File, Line: en.Line}
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	v := NewVerifier(seqs)
	var prob *Problem
	err = Walk(files, func(en Entry) error {
		if len(bytes.TrimSpace(en.Raw)) == 0 {
			return nil
		}
		if p := v.Add(en); p != nil {
			prob = p
			return p
		}
		return nil
	})
	if prob != nil {
		return v, prob, nil
	}
	return v, nil, err
}
