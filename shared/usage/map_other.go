//go:build !unix

package usage

import (
	"errors"
	"os"
)

// mapFile maps nothing where there is no mmap(2): lines are written with
// write(2).
func mapFile(*os.File, int) ([]byte, error) { return nil, errors.New("no mmap here") }

func unmapFile([]byte) error { return nil }
