// Command loadbench runs kve's load benchmark: local mode and a bare
// reverse proxy in front of the same upstream, same load, same CPU pinning.
// See shared/loadbench/README.md.
//
//	go run ./shared/loadbench/cmd/loadbench [-conns 1,32] [-duration 10s] [-repeats 3]
package main

import (
	"os"

	"github.com/keyvault-edge/kve/shared/loadbench"
)

func main() {
	os.Exit(loadbench.Main(os.Args[1:], os.Stdout, os.Stderr))
}
