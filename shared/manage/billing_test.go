package manage_test

import (
	"testing"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
	"github.com/keyvault-edge/kve/shared/store"
)

func TestBillingSettings(t *testing.T) {
	ut := newUsageTeam(t)
	ctx := t.Context()
	owner := ut.Principal(t, ut.Owner, "192.0.2.1")
	b, err := ut.Service.Billing(ctx, ut.Org.Slug, owner)
	// This month (March 2026) so far: 1000 + 10 + 1 today, 100 yesterday.
	if err != nil || b.MonthBudgetMicro != 0 || b.Month != "2026-03" || b.MonthSpendMicro != 1111 {
		t.Fatalf("Billing = %+v (%v), want no budget and 1111 spent in 2026-03", b, err)
	}
	b, err = ut.Service.UpdateBilling(ctx, ut.Org.Slug, owner, manage.BillingInput{
		MonthBudgetUSD: ptr(250.5), ContactEmail: ptr(" Billing@Example.COM ")})
	if err != nil || b.MonthBudgetMicro != 250_500_000 || b.Contact != "billing@example.com" {
		t.Fatalf("UpdateBilling = %+v (%v)", b, err)
	}
	b, err = ut.Service.UpdateBilling(ctx, ut.Org.Slug, owner, manage.BillingInput{ContactEmail: ptr("")})
	if err != nil || b.MonthBudgetMicro != 250_500_000 || b.Contact != "" {
		t.Errorf("clearing the contact changed the budget, or kept the contact: %+v (%v)", b, err)
	}
	events, err := ut.Store.Events(ctx, ut.Org.ID, store.EventFilter{Action: "billing.update"})
	budgets := 0
	for _, ev := range events.Items {
		if ev.Detail["month_budget_usd"] == "250.500000" {
			budgets++
		}
	}
	if err != nil || len(events.Items) != 2 || budgets != 1 {
		t.Errorf("billing.update events %+v (%v), want two, one of them setting the budget", events.Items, err)
	}
	for _, tc := range []struct {
		name string
		p    manage.Principal
		in   manage.BillingInput
		want kve.Kind
	}{
		{"admin", ut.Principal(t, ut.Admin, "192.0.2.3"), manage.BillingInput{MonthBudgetUSD: ptr(1.0)}, kve.KindForbidden},
		{"developer", ut.Principal(t, ut.Dev, "192.0.2.2"), manage.BillingInput{MonthBudgetUSD: ptr(1.0)}, kve.KindForbidden},
		{"negative budget", owner, manage.BillingInput{MonthBudgetUSD: ptr(-1.0)}, kve.KindInvalid},
		{"not an email", owner, manage.BillingInput{ContactEmail: ptr("Billing <b@example.com>")}, kve.KindInvalid},
		{"nothing", owner, manage.BillingInput{}, kve.KindInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ut.Service.UpdateBilling(ctx, ut.Org.Slug, tc.p, tc.in); kve.KindOf(err) != tc.want {
				t.Errorf("UpdateBilling = %v, want kind %v", err, tc.want)
			}
		})
	}
}

func TestPriceOverrides(t *testing.T) {
	ut := newUsageTeam(t)
	ctx := t.Context()
	owner := ut.Principal(t, ut.Owner, "192.0.2.1")
	l, err := ut.Service.Prices(ctx, ut.Org.Slug, owner)
	if err != nil || l.AsOf == "" || len(l.Overrides) != 0 || len(l.InUse) != len(l.Embedded) {
		t.Fatalf("Prices = as of %q, %d overrides, %d in use of %d (%v)", l.AsOf, len(l.Overrides), len(l.InUse), len(l.Embedded), err)
	}
	l, err = ut.Service.SetPrices(ctx, ut.Org.Slug, owner, []manage.PriceInput{
		{Provider: "openai", Model: "gpt-4o", Input: 2, Cached: 1, Output: 8},
		{Provider: "anthropic", Model: "claude-custom", Input: 1, Cached: 0.1, Output: 2},
	})
	if err != nil || len(l.Overrides) != 2 || len(l.InUse) != len(l.Embedded)+1 {
		t.Fatalf("SetPrices: %d overrides, %d in use (%v)", len(l.Overrides), len(l.InUse), err)
	}
	again, err := ut.Service.Prices(ctx, ut.Org.Slug, owner)
	if err != nil || len(again.Overrides) != 2 {
		t.Errorf("Prices after setting: %d overrides (%v)", len(again.Overrides), err)
	}
	for _, tc := range []struct {
		name string
		in   []manage.PriceInput
	}{
		{"generic provider", []manage.PriceInput{{Provider: "stripe", Model: "x", Input: 1}}},
		{"negative", []manage.PriceInput{{Provider: "openai", Model: "gpt-4o", Input: -1}}},
		{"twice", []manage.PriceInput{{Provider: "openai", Model: "gpt-4o"}, {Provider: "openai", Model: "gpt-4o"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ut.Service.SetPrices(ctx, ut.Org.Slug, owner, tc.in); kve.KindOf(err) != kve.KindInvalid {
				t.Errorf("SetPrices = %v, want invalid", err)
			}
		})
	}
	if _, err := ut.Service.Prices(ctx, ut.Org.Slug, ut.Principal(t, ut.Admin, "192.0.2.3")); kve.KindOf(err) != kve.KindForbidden {
		t.Errorf("an admin reads prices: %v", err)
	}
}

func TestBillingReport(t *testing.T) {
	ut := newUsageTeam(t)
	ctx := t.Context()
	owner := ut.Principal(t, ut.Owner, "192.0.2.1")
	rep, err := ut.Service.BillingReport(ctx, ut.Org.Slug, owner, "2026-03")
	if err != nil {
		t.Fatal(err)
	}
	if rep.From != "2026-03-01" || rep.To != "2026-03-02" || rep.Total.CostMicro != 1111 || len(rep.Rows) != 4 {
		t.Fatalf("report %s..%s total %d, %d rows; want March so far, 1111, 4 rows", rep.From, rep.To, rep.Total.CostMicro, len(rep.Rows))
	}
	byLine := map[string]int64{}
	for _, r := range rep.Rows {
		byLine[r.TokenName+"/"+string(r.Env)+"/"+r.Model] = r.CostMicro
	}
	want := map[string]int64{"t-Olga Owner/dev/gpt-4o": 1000, "t-Olga Owner/dev/gpt-4o-mini": 100,
		"t-Dev One/dev/gpt-4o-mini": 10, "t-Dev Two/dev/gpt-4o-mini": 1}
	for k, v := range want {
		if byLine[k] != v {
			t.Errorf("line %s = %d, want %d (all %v)", k, byLine[k], v, byLine)
		}
	}
	january, err := ut.Service.BillingReport(ctx, ut.Org.Slug, owner, "2026-01")
	if err != nil || january.Total.CostMicro != 100_000 || january.To != "2026-01-31" {
		t.Errorf("January: %+v (%v), want the 100,000 of 40 days ago", january.Total, err)
	}
	for _, month := range []string{"", "2026-13", "2026-04", "2024-01"} {
		if _, err := ut.Service.BillingReport(ctx, ut.Org.Slug, owner, month); kve.KindOf(err) != kve.KindInvalid {
			t.Errorf("month %q: %v, want invalid", month, err)
		}
	}
	if _, err := ut.Service.BillingReport(ctx, ut.Org.Slug, ut.Principal(t, ut.Admin, "192.0.2.3"), "2026-03"); kve.KindOf(err) != kve.KindForbidden {
		t.Errorf("an admin reads the report: %v", err)
	}
}

// TestTokenLimits: tokens per minute and a monthly budget are set with the
// token and changed with its other limits.
func TestTokenLimits(t *testing.T) {
	tm := newUsageTeam(t)
	ctx := t.Context()
	owner := tm.Principal(t, tm.Owner, "192.0.2.1")
	it, err := tm.Service.CreateToken(ctx, tm.Org.ID, owner, manage.TokenInput{Name: "limited", Key: "main", Env: "prd",
		AllowServer: true, TPM: ptr(40_000), BudgetMonthUSD: ptr(30.0)})
	if err != nil {
		t.Fatal(err)
	}
	l, err := tm.Service.TokenLimits(ctx, tm.Org.Slug, owner, it.Token.ID)
	if err != nil || l != (store.Limits{TPM: 40_000, MonthBudgetMicro: 30_000_000}) {
		t.Fatalf("TokenLimits = %+v (%v)", l, err)
	}
	// Only the monthly budget changes; the policy is untouched.
	tok, err := tm.Service.UpdateToken(ctx, tm.Org.Slug, owner, it.Token.ID, manage.TokenPatch{BudgetMonthUSD: ptr(5.0)})
	if err != nil || tok.Policy.RPM != it.Token.Policy.RPM {
		t.Fatalf("UpdateToken = %v", err)
	}
	// Both kinds at once.
	if _, err := tm.Service.UpdateToken(ctx, tm.Org.Slug, owner, it.Token.ID, manage.TokenPatch{RPM: ptr(10), TPM: ptr(0)}); err != nil {
		t.Fatal(err)
	}
	all, err := tm.Service.AllTokenLimits(ctx, tm.Org.Slug, owner)
	if err != nil || all[it.Token.ID] != (store.Limits{MonthBudgetMicro: 5_000_000}) {
		t.Errorf("AllTokenLimits = %+v (%v)", all, err)
	}
	got, err := tm.Store.Token(ctx, tm.Org.ID, it.Token.ID)
	if err != nil || got.Policy.RPM != 10 {
		t.Errorf("rpm after the combined patch: %d (%v)", got.Policy.RPM, err)
	}
	if _, err := tm.Service.UpdateToken(ctx, tm.Org.Slug, owner, it.Token.ID, manage.TokenPatch{TPM: ptr(-5)}); kve.KindOf(err) != kve.KindInvalid {
		t.Errorf("negative tpm: %v", err)
	}
	if _, err := tm.Service.RevokeToken(ctx, tm.Org.Slug, owner, it.Token.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := tm.Service.UpdateToken(ctx, tm.Org.Slug, owner, it.Token.ID, manage.TokenPatch{TPM: ptr(5)}); kve.KindOf(err) != kve.KindGone {
		t.Errorf("limits of a revoked token: %v, want gone", err)
	}
	events, err := tm.Store.Events(ctx, tm.Org.ID, store.EventFilter{Action: "token.limits", Target: it.Token.ID})
	if err != nil || len(events.Items) != 3 {
		t.Errorf("%d token.limits events (%v), want 3", len(events.Items), err)
	}
}
