package deploy

import (
	"context"
	"fmt"
	"net/http"

	"github.com/keyvault-edge/kve/shared/console"
)

// Console builds the dashboard function's handler: the same management
// operations as the api function, rendered as HTML pages.
func Console(ctx context.Context, getenv func(string) string) (http.Handler, error) {
	b, err := open(ctx, "console", getenv)
	if err != nil {
		return nil, err
	}
	svc, err := b.service(ctx)
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	return console.New(svc, console.Config{Logger: b.log, PublicURL: b.cfg.PublicURL}), nil
}
