// Command local runs kve's local mode (make dev): proxy, management API and
// dashboard on 127.0.0.1:8080 with embedded backends in .kve-local/.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/keyvault-edge/kve/shared/local"
)

func main() {
	cfg, err := local.ParseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kve:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := &local.Main{Config: cfg}
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "kve:", err)
		os.Exit(1)
	}
}
