package usage

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
)

// segment is one file of the spool, allocated at its full size. Where the
// platform and filesystem can, it is mapped into memory (MAP_SHARED):
// writing a line is a copy into the page cache, which the kernel keeps, and
// writes out, even if the process is killed the next instant: as durable
// against a SIGKILL as a write(2), for a fraction of its cost. Elsewhere
// (no mmap, or a mapping refused) a line is one write(2).
type segment struct {
	f    *os.File
	data []byte // the mapping, or nil: lines are written with WriteAt
	size int    // bytes the segment holds
	off  int    // bytes written
	// broken: a copy into the mapping faulted (the file was cut short
	// under it, or a filesystem without preallocation ran out of space),
	// or a write failed. Nothing more is written to it.
	broken bool
}

// createSegment creates the file at path, size bytes long (its blocks
// allocated where the filesystem can, so that a full disk fails here, not
// as a fault while writing), and maps it unless plain or refused.
func createSegment(path string, size int, plain bool) (*segment, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if err := allocate(f, size); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("allocate %s: %w", path, err)
	}
	g := &segment{f: f, size: size}
	if !plain {
		g.data, _ = mapFile(f, size) // nil: written with write(2)
	}
	return g, nil
}

// fits says whether a line of n bytes can be appended.
func (g *segment) fits(n int) bool { return !g.broken && g.off+n <= g.size }

// append writes line after the last one; the caller checked that it fits.
func (g *segment) append(line []byte) error {
	var err error
	if g.data != nil {
		err = copyMapped(g.data[g.off:], line)
	} else {
		_, err = g.f.WriteAt(line, int64(g.off))
	}
	if err != nil {
		g.broken = true
		return err
	}
	g.off += len(line)
	return nil
}

// copyMapped copies src into mapped memory, answering a fault (SIGBUS)
// with an error rather than a crash.
func copyMapped(dst, src []byte) (err error) {
	if len(dst) < len(src) {
		return errors.New("a line past the end of the segment")
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("memory fault writing the mapped segment: %v", r)
		}
	}()
	copy(dst, src)
	return nil
}

// close unmaps the segment and cuts the file to what was written.
func (g *segment) close() error {
	var errs []error
	if g.data != nil {
		errs = append(errs, unmapFile(g.data))
		g.data = nil
	}
	if !g.broken {
		errs = append(errs, g.f.Truncate(int64(g.off)))
	}
	errs = append(errs, g.f.Close())
	return errors.Join(errs...)
}
