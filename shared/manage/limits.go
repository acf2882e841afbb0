package manage

import (
	"context"
	"fmt"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// A token's limits beyond its policy (model tokens per minute, a budget per
// UTC month) are kept beside it in the store (store.Budgets): the policy
// carries the rate and the daily budget.

// maxTPM bounds a token's tokens per minute.
const maxTPM = 1_000_000_000

// extraLimits applies the limits that are set to cur.
func extraLimits(cur store.Limits, tpm *int, monthUSD *float64) (store.Limits, error) {
	if tpm != nil {
		if *tpm < 0 || *tpm > maxTPM {
			return cur, kve.Errorf(kve.KindInvalid, "invalid_tpm", "tpm must be 0 (unlimited) to %d", maxTPM)
		}
		cur.TPM = *tpm
	}
	if monthUSD != nil {
		micro, err := usdToMicro("budget_month_usd", *monthUSD)
		if err != nil {
			return cur, err
		}
		cur.MonthBudgetMicro = micro
	}
	return cur, nil
}

// setExtraLimits writes limits with a token.limits event.
func (s *Service) setExtraLimits(ctx context.Context, orgID, tokenID string, p Principal, l store.Limits) error {
	ev := p.Event(orgID, "token.limits", tokenID, s.now()).
		With("tpm", fmt.Sprint(l.TPM)).With("budget_month_usd", formatUSD(l.MonthBudgetMicro))
	if err := s.store.SetLimits(ctx, orgID, tokenID, l, ev); err != nil {
		return fmt.Errorf("set token limits: %w", err)
	}
	return nil
}

// TokenLimits returns a token's limits beyond its policy (the visibility
// of Tokens).
func (s *Service) TokenLimits(ctx context.Context, orgRef string, p Principal, id string) (store.Limits, error) {
	m, t, err := s.visibleToken(ctx, orgRef, p, id)
	if err != nil {
		return store.Limits{}, err
	}
	l, err := s.store.Limits(ctx, m.Org.ID, t.ID)
	if err != nil {
		return store.Limits{}, fmt.Errorf("read token limits: %w", err)
	}
	return l, nil
}

// AllTokenLimits returns the limits beyond their policy of an
// organization's tokens that have any, by token id, for lists (every
// member: a Developer's list shows only what Tokens shows them).
func (s *Service) AllTokenLimits(ctx context.Context, orgRef string, p Principal) (map[string]store.Limits, error) {
	m, err := s.Authorize(ctx, orgRef, p, allMembers...)
	if err != nil {
		return nil, err
	}
	all, err := s.store.AllLimits(ctx, m.Org.ID)
	if err != nil {
		return nil, fmt.Errorf("list token limits: %w", err)
	}
	return all, nil
}

// updateExtraLimits is UpdateToken for a patch that changes the limits
// beyond the policy: the policy's fields first, as UpdateToken does, then
// the limits, which a revoked token cannot get.
func (s *Service) updateExtraLimits(ctx context.Context, orgID string, p Principal, id string, in TokenPatch) (kve.Token, error) {
	cur, err := s.store.Limits(ctx, orgID, id)
	if err != nil {
		return kve.Token{}, fmt.Errorf("read token limits: %w", err)
	}
	next, err := extraLimits(cur, in.TPM, in.BudgetMonthUSD)
	if err != nil {
		return kve.Token{}, err
	}
	policy := in
	policy.TPM, policy.BudgetMonthUSD = nil, nil
	var t kve.Token
	if policy != (TokenPatch{}) {
		if t, err = s.UpdateToken(ctx, orgID, p, id, policy); err != nil {
			return kve.Token{}, err
		}
	} else {
		if t, err = s.store.Token(ctx, orgID, id); err != nil {
			return kve.Token{}, tokenErr(err)
		}
		if t.Revoked() {
			return kve.Token{}, errRevoked
		}
	}
	if err := s.setExtraLimits(ctx, orgID, id, p, next); err != nil {
		return kve.Token{}, err
	}
	t.Sealed = nil
	return t, nil
}
