package manage

import (
	"context"
	"fmt"
	"math"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
	"github.com/keyvault-edge/kve/shared/usage"
)

// Billing is an organization's billing as its Owner sees it.
type Billing struct {
	MonthBudgetMicro int64  // per UTC month; 0 = none
	Contact          string // billing contact email
	Month            string // the current UTC month, 2006-01
	MonthSpendMicro  int64  // spent in it so far
	UpdatedAt        time.Time
}

// BillingInput changes billing settings; nil fields stay as they are.
type BillingInput struct {
	MonthBudgetUSD *float64 `json:"month_budget_usd"` // 0: none
	ContactEmail   *string  `json:"contact_email"`    // "": none
}

// PriceInput is one override of the price list, in USD per million tokens.
type PriceInput struct {
	Provider string  `json:"provider"`
	Model    string  `json:"model"`
	Input    float64 `json:"input"`
	Cached   float64 `json:"cached"`
	Output   float64 `json:"output"`
}

// PriceList is the price list an organization's usage is priced with: the
// embedded dated list, the organization's overrides, and the two merged.
type PriceList struct {
	AsOf      string
	Embedded  []usage.Price
	Overrides []usage.Price
	InUse     []usage.Price
}

// maxPriceOverrides bounds an organization's overrides.
const maxPriceOverrides = 200

// defaultPrices is the embedded price list, parsed once: it is part of the
// build, not configuration.
var defaultPrices = sync.OnceValue(usage.DefaultPrices)

// Billing returns an organization's billing settings and this month's
// spend (Owner).
func (s *Service) Billing(ctx context.Context, orgRef string, p Principal) (Billing, error) {
	m, err := s.Authorize(ctx, orgRef, p, kve.RoleOwner)
	if err != nil {
		return Billing{}, err
	}
	return s.billing(ctx, m.Org.ID)
}

func (s *Service) billing(ctx context.Context, orgID string) (Billing, error) {
	b, err := s.store.Billing(ctx, orgID)
	if err != nil {
		return Billing{}, fmt.Errorf("read billing: %w", err)
	}
	s.reconcile(ctx, orgID)
	now := s.now()
	sp, err := s.store.Spend(ctx, orgID, "", now)
	if err != nil {
		return Billing{}, fmt.Errorf("read spend: %w", err)
	}
	return Billing{MonthBudgetMicro: b.MonthBudgetMicro, Contact: b.Contact, Month: now.UTC().Format("2006-01"),
		MonthSpendMicro: sp.OrgMonth, UpdatedAt: b.UpdatedAt}, nil
}

// UpdateBilling sets an organization's monthly budget and billing contact
// (Owner). The proxy applies a new budget within seconds.
func (s *Service) UpdateBilling(ctx context.Context, orgRef string, p Principal, in BillingInput) (Billing, error) {
	m, err := s.Authorize(ctx, orgRef, p, kve.RoleOwner)
	if err != nil {
		return Billing{}, err
	}
	if in.MonthBudgetUSD == nil && in.ContactEmail == nil {
		return Billing{}, kve.Errorf(kve.KindInvalid, "empty_patch", "nothing to change")
	}
	b, err := s.store.Billing(ctx, m.Org.ID)
	if err != nil {
		return Billing{}, fmt.Errorf("read billing: %w", err)
	}
	now := s.now()
	ev := p.Event(m.Org.ID, "billing.update", m.Org.ID, now)
	if in.MonthBudgetUSD != nil {
		if b.MonthBudgetMicro, err = usdToMicro("month_budget_usd", *in.MonthBudgetUSD); err != nil {
			return Billing{}, err
		}
		ev = ev.With("month_budget_usd", formatUSD(b.MonthBudgetMicro))
	}
	if in.ContactEmail != nil {
		b.Contact = ""
		if v := strings.TrimSpace(*in.ContactEmail); v != "" {
			a, err := mail.ParseAddress(v)
			if err != nil || a.Name != "" || len(a.Address) > 254 {
				return Billing{}, kve.Errorf(kve.KindInvalid, "invalid_email", "contact_email must be an email address")
			}
			b.Contact = kve.CanonicalEmail(a.Address)
		}
		ev = ev.With("contact_email", b.Contact)
	}
	b.OrgID, b.UpdatedAt = m.Org.ID, now.UTC()
	if err := s.store.SetBilling(ctx, b, ev); err != nil {
		return Billing{}, fmt.Errorf("set billing: %w", err)
	}
	return s.billing(ctx, m.Org.ID)
}

// Prices returns the price list an organization's usage is priced with
// (Owner).
func (s *Service) Prices(ctx context.Context, orgRef string, p Principal) (PriceList, error) {
	m, err := s.Authorize(ctx, orgRef, p, kve.RoleOwner)
	if err != nil {
		return PriceList{}, err
	}
	b, err := s.store.Billing(ctx, m.Org.ID)
	if err != nil {
		return PriceList{}, fmt.Errorf("read billing: %w", err)
	}
	return priceList(b.Prices), nil
}

func priceList(overrides []store.Price) PriceList {
	base := defaultPrices()
	inUse := base.With(overrides)
	l := PriceList{AsOf: base.AsOf, Embedded: base.Models, Overrides: []usage.Price{}, InUse: inUse.Models}
	for _, m := range inUse.Models {
		if m.Override {
			l.Overrides = append(l.Overrides, m)
		}
	}
	return l
}

// SetPrices replaces an organization's overrides of the price list (Owner):
// an override replaces the embedded entry of its provider and model, or
// adds one (models match by longest prefix). Usage is priced with them
// within seconds; records already stored keep their cost.
func (s *Service) SetPrices(ctx context.Context, orgRef string, p Principal, in []PriceInput) (PriceList, error) {
	m, err := s.Authorize(ctx, orgRef, p, kve.RoleOwner)
	if err != nil {
		return PriceList{}, err
	}
	if len(in) > maxPriceOverrides {
		return PriceList{}, kve.Errorf(kve.KindInvalid, "too_many", "at most %d price overrides", maxPriceOverrides)
	}
	overrides := make([]store.Price, 0, len(in))
	seen := map[[2]string]bool{}
	for _, pi := range in {
		model := strings.TrimSpace(pi.Model)
		if err := usage.CheckPrice(pi.Provider, model, pi.Input, pi.Cached, pi.Output); err != nil {
			return PriceList{}, err
		}
		k := [2]string{pi.Provider, model}
		if seen[k] {
			return PriceList{}, kve.Errorf(kve.KindInvalid, "invalid_price", "%s %q is listed twice", pi.Provider, kve.Truncate(model, 40))
		}
		seen[k] = true
		overrides = append(overrides, store.Price{Provider: pi.Provider, Model: model, Input: pi.Input, Cached: pi.Cached, Output: pi.Output})
	}
	b, err := s.store.Billing(ctx, m.Org.ID)
	if err != nil {
		return PriceList{}, fmt.Errorf("read billing: %w", err)
	}
	now := s.now()
	b.OrgID, b.Prices, b.UpdatedAt = m.Org.ID, overrides, now.UTC()
	ev := p.Event(m.Org.ID, "billing.prices", m.Org.ID, now).With("overrides", fmt.Sprint(len(overrides)))
	if err := s.store.SetBilling(ctx, b, ev); err != nil {
		return PriceList{}, fmt.Errorf("set prices: %w", err)
	}
	return priceList(overrides), nil
}

// ReportRow is one line of a monthly cost report: a token's use of a model.
type ReportRow struct {
	TokenID   string
	TokenName string
	Env       kve.Env
	Provider  string
	Model     string
	store.Rollup
}

// Report is an organization's cost in one UTC month, per token,
// environment and model.
type Report struct {
	Month    string // 2006-01
	From, To string // its first and last day (To is today for the current month)
	Rows     []ReportRow
	Total    store.Rollup
}

// BillingReport returns the cost report of a UTC month, 2006-01 (Owner).
func (s *Service) BillingReport(ctx context.Context, orgRef string, p Principal, month string) (Report, error) {
	m, err := s.Authorize(ctx, orgRef, p, kve.RoleOwner)
	if err != nil {
		return Report{}, err
	}
	first, err := time.Parse("2006-01", month)
	if err != nil {
		return Report{}, kve.Errorf(kve.KindInvalid, "invalid_month", "month must be a month like 2026-11")
	}
	now := s.now().UTC()
	if first.After(now) || now.Sub(first) > maxUsageDays*24*time.Hour {
		return Report{}, kve.Errorf(kve.KindInvalid, "invalid_month", "month must be one of the last %d days", maxUsageDays)
	}
	last := first.AddDate(0, 1, -1)
	if last.After(now) {
		last = now
	}
	s.reconcile(ctx, m.Org.ID)
	rep := Report{Month: month, From: first.Format(time.DateOnly), To: last.Format(time.DateOnly), Rows: []ReportRow{}}
	rows, err := s.store.Rollups(ctx, m.Org.ID, store.RollupFilter{From: rep.From, To: rep.To, By: store.ByToken | store.ByModel})
	if err != nil {
		return Report{}, fmt.Errorf("read usage: %w", err)
	}
	tokens, err := s.tokensByID(ctx, m.Org.ID)
	if err != nil {
		return Report{}, err
	}
	for _, r := range rows {
		t := tokens[r.TokenID]
		rep.Rows = append(rep.Rows, ReportRow{TokenID: r.TokenID, TokenName: t.Name, Env: r.Env, Provider: r.Provider,
			Model: r.Model, Rollup: r})
		addRow(&rep.Total, &r)
	}
	slices.SortStableFunc(rep.Rows, func(a, b ReportRow) int {
		if a.Env != b.Env {
			return strings.Compare(string(a.Env), string(b.Env))
		}
		return strings.Compare(a.TokenName+a.TokenID, b.TokenName+b.TokenID)
	})
	return rep, nil
}

// usdToMicro reads a USD amount from 0 to maxBudgetUSD.
func usdToMicro(field string, usd float64) (int64, error) {
	if !(usd >= 0 && usd <= maxBudgetUSD) {
		return 0, kve.Errorf(kve.KindInvalid, "invalid_budget", "%s must be 0 (none) to %d", field, maxBudgetUSD)
	}
	return int64(math.Round(usd * 1e6)), nil
}

// formatUSD writes micro-USD as USD for audit details.
func formatUSD(micro int64) string { return fmt.Sprintf("%.6f", float64(micro)/1e6) }
