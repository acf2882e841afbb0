//go:build unix

package usage

import (
	"os"

	"golang.org/x/sys/unix"
)

// mapFile sizes f to size bytes, its blocks allocated where the filesystem
// can (so that a full disk fails here, not as a fault while writing), and
// maps it shared, readable and writable.
func mapFile(f *os.File, size int) ([]byte, error) {
	if err := allocate(f, size); err != nil {
		return nil, err
	}
	return unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
}

func unmapFile(b []byte) error { return unix.Munmap(b) }
