package dynamo

import (
	"context"
	"fmt"
	"strings"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// An organization's billing settings are billing#<org>/settings, the
// limits of its tokens beyond their policy billing#<org>/limits#<token id>,
// and its month spend billing#<org>/spend#<YYYY-MM> (see metering.go): one
// partition that no hot path but the organization's own budget touches.

// price is how a price override is stored (in the settings' JSON).
type price struct {
	Provider string  `json:"provider"`
	Model    string  `json:"model"`
	Input    float64 `json:"input"`
	Cached   float64 `json:"cached"`
	Output   float64 `json:"output"`
}

func billingItem(b *store.Billing) (item, error) {
	it := item{}
	it.setStr("org_id", b.OrgID)
	it.setNum("month_budget_micro", b.MonthBudgetMicro)
	it.setStr("contact", b.Contact)
	prices := make([]price, 0, len(b.Prices))
	for _, p := range b.Prices {
		prices = append(prices, price(p))
	}
	if err := it.setJSON("prices", prices); err != nil {
		return nil, err
	}
	it.setTime("updated_at", b.UpdatedAt)
	return it.with(billingPK(b.OrgID), skBilling), nil
}

func decodeBilling(it item) (store.Billing, error) {
	f := fields{it: it}
	b := store.Billing{OrgID: f.str("org_id"), MonthBudgetMicro: f.num("month_budget_micro"),
		Contact: f.str("contact"), UpdatedAt: f.time("updated_at")}
	var prices []price
	f.json("prices", &prices)
	if f.err != nil {
		return store.Billing{}, fmt.Errorf("decode billing: %w", f.err)
	}
	for _, p := range prices {
		b.Prices = append(b.Prices, store.Price(p))
	}
	return b, nil
}

// Billing implements store.Budgets.
func (s *Store) Billing(ctx context.Context, orgID string) (store.Billing, error) {
	it, err := s.get(ctx, billingPK(orgID), skBilling)
	switch {
	case kve.KindOf(err) == kve.KindNotFound:
		return store.Billing{OrgID: orgID}, nil
	case err != nil:
		return store.Billing{}, fmt.Errorf("read billing: %w", err)
	}
	return decodeBilling(it)
}

// SetBilling implements store.Budgets. The organization's month counter is
// only kept while it has a monthly budget (see metering.go): a budget set
// where there was none starts it at the month's spend so far, from the
// rollups. Requests in flight at that moment add to the counter only what
// their holds did not reserve against it, which is all of it but not before
// they settle.
func (s *Store) SetBilling(ctx context.Context, b store.Billing, ev kve.Event) error {
	if b.OrgID == "" || b.MonthBudgetMicro < 0 {
		return kve.Errorf(kve.KindInvalid, "invalid_billing", "billing settings need an organization and a budget of at least 0")
	}
	old, err := s.Billing(ctx, b.OrgID)
	if err != nil {
		return fmt.Errorf("set billing: %w", err)
	}
	it, err := billingItem(&b)
	if err != nil {
		return fmt.Errorf("set billing: %w", err)
	}
	audit, err := s.auditWrites(b.OrgID, ev)
	if err != nil {
		return fmt.Errorf("set billing: %w", err)
	}
	var e expr
	ws := append([]write{s.put(it, &e, "", nil), s.orgGuard(b.OrgID, false, 0)}, audit...)
	if old.MonthBudgetMicro == 0 && b.MonthBudgetMicro > 0 {
		at := b.UpdatedAt
		if at.IsZero() {
			at = s.now()
		}
		spent, err := s.monthCost(ctx, b.OrgID, at)
		if err != nil {
			return fmt.Errorf("set billing: %w", err)
		}
		_, start := monthSpend(billingPK(b.OrgID), at)
		counter := item{"micro": num(spent), AttrTTL: epoch(start.Add(usageTTL))}
		var ce expr
		ws = append(ws, s.put(counter.with(billingPK(b.OrgID), spendSK(monthOf(at))), &ce, "", nil))
	}
	if err := s.transact(ctx, ws...); err != nil {
		return fmt.Errorf("set billing: %w", err)
	}
	return nil
}

func limitsItem(orgID, tokenID string, l store.Limits) item {
	it := item{}
	it.setStr("token_id", tokenID)
	it.setNum("tpm", int64(l.TPM))
	it.setNum("month_budget_micro", l.MonthBudgetMicro)
	return it.with(billingPK(orgID), prefixLimits+tokenID)
}

func decodeLimits(it item) (string, store.Limits, error) {
	f := fields{it: it}
	l := store.Limits{TPM: int(f.num("tpm")), MonthBudgetMicro: f.num("month_budget_micro")}
	id := f.str("token_id")
	if f.err != nil {
		return "", store.Limits{}, fmt.Errorf("decode limits: %w", f.err)
	}
	return id, l, nil
}

// Limits implements store.Budgets.
func (s *Store) Limits(ctx context.Context, orgID, tokenID string) (store.Limits, error) {
	it, err := s.get(ctx, billingPK(orgID), prefixLimits+tokenID)
	switch {
	case kve.KindOf(err) == kve.KindNotFound:
		return store.Limits{}, nil
	case err != nil:
		return store.Limits{}, fmt.Errorf("read limits: %w", err)
	}
	_, l, err := decodeLimits(it)
	return l, err
}

// AllLimits implements store.Budgets.
func (s *Store) AllLimits(ctx context.Context, orgID string) (map[string]store.Limits, error) {
	items, err := s.all(ctx, newQuery(billingPK(orgID)).prefix(prefixLimits))
	if err != nil {
		return nil, fmt.Errorf("list limits: %w", err)
	}
	out := make(map[string]store.Limits, len(items))
	for _, it := range items {
		id, l, err := decodeLimits(it)
		if err != nil {
			return nil, fmt.Errorf("list limits: %w", err)
		}
		if l != (store.Limits{}) {
			out[id] = l
		}
	}
	return out, nil
}

// SetLimits implements store.Budgets.
func (s *Store) SetLimits(ctx context.Context, orgID, tokenID string, l store.Limits, ev kve.Event) error {
	if tokenID == "" || strings.Contains(tokenID, "#") || l.TPM < 0 || l.MonthBudgetMicro < 0 {
		return kve.Errorf(kve.KindInvalid, "invalid_limits", "limits need a token and values of at least 0")
	}
	audit, err := s.auditWrites(orgID, ev)
	if err != nil {
		return fmt.Errorf("set limits: %w", err)
	}
	var e expr
	ws := append([]write{s.put(limitsItem(orgID, tokenID, l), &e, "", nil), s.orgGuard(orgID, false, 0)}, audit...)
	if err := s.transact(ctx, ws...); err != nil {
		return fmt.Errorf("set limits: %w", err)
	}
	return nil
}
