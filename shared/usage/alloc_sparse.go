//go:build !linux

package usage

import "os"

// allocate sizes f sparse: on a full disk a mapped write then faults and a
// plain one fails, either an error of segment.append.
func allocate(f *os.File, size int) error { return f.Truncate(int64(size)) }
