package manage

import (
	"context"
	"fmt"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// Events lists an organization's audit log, newest first (Owner, Admin).
func (s *Service) Events(ctx context.Context, orgRef string, p Principal, f store.EventFilter) (store.Page[kve.Event], error) {
	m, err := s.Authorize(ctx, orgRef, p, managers...)
	if err != nil {
		return store.Page[kve.Event]{}, err
	}
	page, err := s.store.Events(ctx, m.Org.ID, f)
	if err != nil {
		return store.Page[kve.Event]{}, fmt.Errorf("list events: %w", err)
	}
	return page, nil
}
