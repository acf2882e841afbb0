// Command local runs kve's local mode (make dev): proxy, management API and
// dashboard on 127.0.0.1:8080 with embedded backends in .kve-local/.
// `local invoke --event events/….json` runs an API Gateway fixture through
// the Lambda adapter instead (make invoke).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/keyvault-edge/kve/shared/local"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 && os.Args[1] == "invoke" {
		exit(local.Invoke(ctx, os.Args[2:], os.Getenv, os.Stdout, os.Stderr))
	}
	cfg, err := local.ParseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if err != nil {
		exit(err)
	}
	exit((&local.Main{Config: cfg}).Run(ctx))
}

func exit(err error) {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	default:
		fmt.Fprintln(os.Stderr, "kve:", err)
		os.Exit(1)
	}
}
