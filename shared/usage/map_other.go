//go:build !unix

package usage

import "os"

// mapFile maps nothing where there is no mmap(2): lines are written with
// write(2).
func mapFile(*os.File, int) ([]byte, error) { return nil, nil }

func unmapFile([]byte) error { return nil }
