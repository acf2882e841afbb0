//go:build unix && !linux

package usage

import "os"

// allocate sizes f sparse: a full disk shows as a fault while writing,
// which segment.append reports as an error.
func allocate(f *os.File, size int) error { return f.Truncate(int64(size)) }
