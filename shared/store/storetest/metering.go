package storetest

import (
	"cmp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

func meteringTests() []test {
	return []test{
		{"settle counts once", settleCountsOnce},
		{"rollups", rollupGroups},
		{"rollup filters", rollupFilters},
		{"spend of day, month and organization", spendPeriods},
		{"holds", holds},
		{"parallel holds against a nearly spent budget", parallelHolds},
		{"rate windows", rateWindows},
		{"stale holds", staleHolds},
	}
}

// day is the UTC day of t.
func day(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// settle stores records as settlements without holds.
func (f *fixture) settle(records ...kve.Usage) {
	f.t.Helper()
	batch := make([]store.Settlement, len(records))
	for i := range records {
		batch[i].Usage = records[i]
	}
	ok(f.t, f.s.Settle(f.ctx, batch))
}

func settleCountsOnce(t *testing.T, f *fixture) {
	o, _ := f.org("Acme")
	tok := f.token(f.key(o.ID, "main"))
	r1, r2 := f.usage(tok, f.at(time.Minute), 100), f.usage(tok, f.at(2*time.Minute), 250)
	f.settle(r1)
	f.settle(r1, r2, r2) // a retried batch, and a repeat within one

	sp := must(f.s.Spend(f.ctx, o.ID, tok.ID, f.now))(t)
	same(t, "Spend", sp, store.Spend{Day: 350, Month: 350, OrgMonth: 350})
	rows := must(f.s.Rollups(f.ctx, o.ID, store.RollupFilter{From: day(f.now), To: day(f.now)}))(t)
	if len(rows) != 1 || rows[0].Requests != 2 || rows[0].CostMicro != 350 {
		t.Errorf("Rollups = %+v, want 2 requests costing 350", rows)
	}
	p := must(f.s.UsageRecords(f.ctx, o.ID, store.UsageFilter{}))(t)
	same(t, "UsageRecords", p.Items, newestUsageFirst([]kve.Usage{r1, r2}))
	got := must(f.s.Token(f.ctx, o.ID, tok.ID))(t)
	if !got.LastUsed.Equal(r2.At) {
		t.Errorf("LastUsed = %v, want %v", got.LastUsed, r2.At)
	}
}

// rollupFixture records usage of three tokens over two days and two models
// and returns what it made.
type rollupFixture struct {
	org              kve.Org
	alice            string // a developer
	shared, personal kve.Token
	d1, d2           time.Time
}

func (f *fixture) rollupData() rollupFixture {
	f.t.Helper()
	o, _ := f.org("Acme")
	k := f.key(o.ID, "main")
	alice := f.member(o.ID, kve.RoleDeveloper).UserID
	rf := rollupFixture{org: o, alice: alice, shared: f.token(k), personal: f.token(k, personal(alice)),
		d1: f.now, d2: f.now.Add(24 * time.Hour)}
	rec := func(tok kve.Token, at time.Time, model string, cost int64, status int) kve.Usage {
		u := f.usage(tok, at, cost)
		u.Model, u.Status, u.Estimated = model, status, false
		return u
	}
	f.settle(
		rec(rf.shared, rf.d1, "gpt-a", 10, 200),
		rec(rf.shared, rf.d1.Add(time.Second), "gpt-a", 20, 200),
		rec(rf.shared, rf.d1.Add(2*time.Second), "gpt-b", 40, 429),
		rec(rf.personal, rf.d1.Add(3*time.Second), "gpt-a", 80, 200),
		rec(rf.personal, rf.d2, "gpt-b", 160, 200),
	)
	return rf
}

func rollupGroups(t *testing.T, f *fixture) {
	rf := f.rollupData()
	from, to := day(rf.d1), day(rf.d2)
	// Every record has 11 prompt, 22 completion, 3 cached and 4 reasoning
	// tokens, 321 bytes in and 4567 out (f.usage).
	sum := func(r store.Rollup, n, errs, cost int64) store.Rollup {
		r.Requests, r.Errors, r.CostMicro = n, errs, cost
		r.PromptTokens, r.CompletionTokens, r.CachedTokens, r.ReasoningTokens = 11*n, 22*n, 3*n, 4*n
		r.BytesIn, r.BytesOut = 321*n, 4567*n
		return r
	}
	ignoreLast := cmpopts.IgnoreFields(store.Rollup{}, "LastAt")
	for _, tc := range []struct {
		name string
		by   store.Group
		want []store.Rollup
	}{
		{"everything", 0, []store.Rollup{sum(store.Rollup{}, 5, 1, 310)}},
		{"by day", store.ByDay, []store.Rollup{
			sum(store.Rollup{Day: day(rf.d1)}, 4, 1, 150),
			sum(store.Rollup{Day: day(rf.d2)}, 1, 0, 160),
		}},
		{"by model", store.ByModel, []store.Rollup{
			sum(store.Rollup{Model: "gpt-a"}, 3, 0, 110),
			sum(store.Rollup{Model: "gpt-b"}, 2, 1, 200),
		}},
		{"by token", store.ByToken, sortedByToken(
			sum(store.Rollup{TokenID: rf.shared.ID, Env: kve.EnvDev, Provider: "example-api"}, 3, 1, 70),
			sum(store.Rollup{TokenID: rf.personal.ID, Env: kve.EnvDev, Provider: "example-api"}, 2, 0, 240),
		)},
		{"by member", store.ByUser, []store.Rollup{
			sum(store.Rollup{UserID: ""}, 3, 1, 70),
			sum(store.Rollup{UserID: rf.alice}, 2, 0, 240),
		}},
		{"by token and model", store.ByToken | store.ByModel, sortedByToken(
			sum(store.Rollup{TokenID: rf.shared.ID, Model: "gpt-a", Env: kve.EnvDev, Provider: "example-api"}, 2, 0, 30),
			sum(store.Rollup{TokenID: rf.shared.ID, Model: "gpt-b", Env: kve.EnvDev, Provider: "example-api"}, 1, 1, 40),
			sum(store.Rollup{TokenID: rf.personal.ID, Model: "gpt-a", Env: kve.EnvDev, Provider: "example-api"}, 1, 0, 80),
			sum(store.Rollup{TokenID: rf.personal.ID, Model: "gpt-b", Env: kve.EnvDev, Provider: "example-api"}, 1, 0, 160),
		)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := must(f.s.Rollups(f.ctx, rf.org.ID, store.RollupFilter{From: from, To: to, By: tc.by}))(t)
			same(t, "Rollups", got, tc.want, ignoreLast)
		})
	}
	t.Run("last use", func(t *testing.T) {
		got := must(f.s.Rollups(f.ctx, rf.org.ID, store.RollupFilter{From: from, To: to, By: store.ByToken}))(t)
		for _, r := range got {
			want := rf.d1.Add(2 * time.Second)
			if r.TokenID == rf.personal.ID {
				want = rf.d2
			}
			if !r.LastAt.Equal(want) {
				t.Errorf("LastAt of %s = %v, want %v", r.TokenID, r.LastAt, want)
			}
		}
	})
}

// sortedByToken orders rows as Rollups does: by day, token, model, user.
func sortedByToken(rows ...store.Rollup) []store.Rollup {
	return slices.SortedFunc(slices.Values(rows), func(a, b store.Rollup) int {
		return cmp.Or(cmp.Compare(a.Day, b.Day), cmp.Compare(a.TokenID, b.TokenID),
			cmp.Compare(a.Model, b.Model), cmp.Compare(a.UserID, b.UserID))
	})
}

func rollupFilters(t *testing.T, f *fixture) {
	rf := f.rollupData()
	other, _ := f.org("Bolt")
	f.settle(f.usage(f.token(f.key(other.ID, "main")), rf.d1, 1000))
	for _, tc := range []struct {
		name   string
		filter store.RollupFilter
		cost   int64
		rows   int
	}{
		{"both days", store.RollupFilter{From: day(rf.d1), To: day(rf.d2)}, 310, 1},
		{"first day only", store.RollupFilter{From: day(rf.d1), To: day(rf.d1)}, 150, 1},
		{"second day only", store.RollupFilter{From: day(rf.d2), To: day(rf.d2)}, 160, 1},
		{"a day before", store.RollupFilter{From: day(rf.d1.Add(-48 * time.Hour)), To: day(rf.d1.Add(-24 * time.Hour))}, 0, 0},
		{"token", store.RollupFilter{From: day(rf.d1), To: day(rf.d2), TokenID: rf.shared.ID}, 70, 1},
		{"member", store.RollupFilter{From: day(rf.d1), To: day(rf.d2), UserID: rf.alice}, 240, 1},
		{"member by day", store.RollupFilter{From: day(rf.d1), To: day(rf.d2), UserID: rf.alice, By: store.ByDay}, 240, 2},
		{"another org's token", store.RollupFilter{From: day(rf.d1), To: day(rf.d2), TokenID: "tok_other"}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows := must(f.s.Rollups(f.ctx, rf.org.ID, tc.filter))(t)
			notNil(t, "Rollups", rows)
			var cost int64
			for _, r := range rows {
				cost += r.CostMicro
			}
			if len(rows) != tc.rows || cost != tc.cost {
				t.Errorf("Rollups = %d rows costing %d, want %d costing %d", len(rows), cost, tc.rows, tc.cost)
			}
		})
	}
	_, err := f.s.Rollups(f.ctx, rf.org.ID, store.RollupFilter{From: "yesterday", To: day(rf.d1)})
	wantKind(t, "Rollups with a bad day", err, kve.KindInvalid)
}

func spendPeriods(t *testing.T, f *fixture) {
	o, _ := f.org("Acme")
	k := f.key(o.ID, "main")
	tok, other := f.token(k), f.token(k)
	june1 := time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC)
	f.settle(
		f.usage(tok, june1, 1),
		f.usage(tok, june1.Add(24*time.Hour), 10),     // June 2
		f.usage(tok, june1.Add(-24*time.Hour), 100),   // May 31
		f.usage(other, june1.Add(48*time.Hour), 1000), // June 3, another token
	)
	for _, tc := range []struct {
		name string
		at   time.Time
		want store.Spend
	}{
		{"June 2", june1.Add(24 * time.Hour), store.Spend{Day: 10, Month: 11, OrgMonth: 1011}},
		{"June 1", june1, store.Spend{Day: 1, Month: 11, OrgMonth: 1011}},
		{"May 31", june1.Add(-24 * time.Hour), store.Spend{Day: 100, Month: 100, OrgMonth: 100}},
		{"July", june1.Add(31 * 24 * time.Hour), store.Spend{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			same(t, "Spend", must(f.s.Spend(f.ctx, o.ID, tok.ID, tc.at))(t), tc.want)
		})
	}
	other2, _ := f.org("Bolt")
	same(t, "Spend of the token in another org", must(f.s.Spend(f.ctx, other2.ID, tok.ID, june1))(t), store.Spend{})
}

// holder is a store that holds (DynamoDB); the suite skips hold tests on
// the others.
func holder(t *testing.T, f *fixture) store.Holds {
	t.Helper()
	h, ok := f.s.(store.Holds)
	if !ok {
		t.Skip("this store holds in the process that uses it (package usage), not in the store")
	}
	return h
}

// hold is a hold of a request of tok at at.
func (f *fixture) hold(tok kve.Token, at time.Time, micro int64, lim store.HoldLimits) store.Hold {
	u := f.usage(tok, at, 0)
	u.Status, u.PromptTokens, u.CompletionTokens, u.CachedTokens, u.ReasoningTokens = 0, 0, 0, 0, 0
	u.Estimated, u.ClientAborted, u.Reason, u.BytesOut = false, false, "", 0
	return store.Hold{Usage: u, TokenHash: tok.Hash, Micro: micro, Tokens: 100, Limits: lim, LastUsed: tok.LastUsed}
}

func holds(t *testing.T, f *fixture) {
	hs := holder(t, f)
	o, _ := f.org("Acme")
	tok := f.token(f.key(o.ID, "main"))
	lim := store.HoldLimits{DayMicro: 1000, MonthMicro: 5000}

	h := f.hold(tok, f.now, 600, lim)
	must(hs.Hold(f.ctx, h))(t)
	same(t, "Spend with a hold open", must(f.s.Spend(f.ctx, o.ID, tok.ID, f.now))(t), store.Spend{Day: 600, Month: 600, OrgMonth: 600})

	// The day's 600 are under 1000: one more hold is admitted, and takes
	// the day over its budget; the next is refused and writes nothing.
	h2 := f.hold(tok, f.at(time.Second), 600, lim)
	must(hs.Hold(f.ctx, h2))(t)
	_, err := hs.Hold(f.ctx, f.hold(tok, f.at(2*time.Second), 1, lim))
	wantKind(t, "Hold over the day budget", err, kve.KindRateLimited)
	if code := kve.CodeOf(err); code != store.LimitDay {
		t.Errorf("code = %q, want %q", code, store.LimitDay)
	}

	// Settling replaces each reservation with the cost.
	u := h.Usage
	u.Status, u.CostMicro = 200, 150
	ok(t, f.s.Settle(f.ctx, []store.Settlement{{Usage: u, Hold: &h}}))
	same(t, "Spend after one settles", must(f.s.Spend(f.ctx, o.ID, tok.ID, f.now))(t), store.Spend{Day: 750, Month: 750, OrgMonth: 750})
	// Settling again (a retry) changes nothing.
	ok(t, f.s.Settle(f.ctx, []store.Settlement{{Usage: u, Hold: &h}}))
	same(t, "Spend after a repeated settle", must(f.s.Spend(f.ctx, o.ID, tok.ID, f.now))(t), store.Spend{Day: 750, Month: 750, OrgMonth: 750})
	stale := must(hs.StaleHolds(f.ctx, o.ID, f.at(time.Hour), 10))(t)
	if len(stale) != 1 || stale[0].Usage.RequestID != h2.Usage.RequestID {
		t.Errorf("StaleHolds = %v, want only the unsettled %s", ids(stale, func(h store.Hold) string { return h.Usage.RequestID }), h2.Usage.RequestID)
	}

	// The organization's month budget holds across its tokens.
	orgLim := store.HoldLimits{OrgMonthMicro: 100}
	other := f.token(f.key(o.ID, "second"))
	must(hs.Hold(f.ctx, f.hold(other, f.now, 100, orgLim)))(t)
	_, err = hs.Hold(f.ctx, f.hold(tok, f.now, 1, orgLim))
	if kve.CodeOf(err) != store.LimitOrgMonth {
		t.Errorf("Hold over the organization's budget: %v, want code %q", err, store.LimitOrgMonth)
	}
}

// parallelHolds (SECURITY T17, G7): 50 concurrent holds with $0.01 left
// under the day budget: exactly one is admitted.
func parallelHolds(t *testing.T, f *fixture) {
	hs := holder(t, f)
	o, _ := f.org("Acme")
	tok := f.token(f.key(o.ID, "main"))
	lim := store.HoldLimits{DayMicro: 2_000_000}
	must(hs.Hold(f.ctx, f.hold(tok, f.now, 1_990_000, lim)))(t) // $0.01 left
	const n = 50
	const reservation = 500_000
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = hs.Hold(f.ctx, f.hold(tok, f.at(time.Duration(i+1)*time.Millisecond), reservation, lim))
		})
	}
	wg.Wait()
	admitted := 0
	for _, err := range errs {
		switch {
		case err == nil:
			admitted++
		case kve.CodeOf(err) != store.LimitDay:
			t.Errorf("a refused hold failed with %v, want code %s", err, store.LimitDay)
		}
	}
	if admitted != 1 {
		t.Errorf("%d of %d holds admitted with $0.01 left, want exactly 1", admitted, n)
	}
	sp := must(f.s.Spend(f.ctx, o.ID, tok.ID, f.now))(t)
	if over := sp.Day - lim.DayMicro; over > reservation {
		t.Errorf("the day's spend overshoots the budget by %d, more than one reservation (%d)", over, reservation)
	}
}

func rateWindows(t *testing.T, f *fixture) {
	hs := holder(t, f)
	o, _ := f.org("Acme")
	tok := f.token(f.key(o.ID, "main"))
	minute := f.now.Truncate(time.Minute)
	lim := store.HoldLimits{RPM: 3}
	for i := range 3 {
		must(hs.Hold(f.ctx, f.hold(tok, minute.Add(time.Duration(i)*time.Second), 0, lim)))(t)
	}
	_, err := hs.Hold(f.ctx, f.hold(tok, minute.Add(59*time.Second), 0, lim))
	if kve.CodeOf(err) != store.LimitRPM {
		t.Errorf("4th request in a minute with rpm 3: %v, want code %q", err, store.LimitRPM)
	}
	must(hs.Hold(f.ctx, f.hold(tok, minute.Add(time.Minute), 0, lim)))(t) // the next minute

	// Tokens per minute count what settled requests used.
	tpm := store.HoldLimits{TPM: 100}
	next := minute.Add(2 * time.Minute)
	h := f.hold(tok, next, 0, tpm)
	must(hs.Hold(f.ctx, h))(t)
	u := h.Usage
	u.Status, u.PromptTokens, u.CompletionTokens = 200, 60, 40
	ok(t, f.s.Settle(f.ctx, []store.Settlement{{Usage: u, Hold: &h}}))
	_, err = hs.Hold(f.ctx, f.hold(tok, next.Add(time.Second), 0, tpm))
	if kve.CodeOf(err) != store.LimitTPM {
		t.Errorf("a request after 100 tokens in a minute with tpm 100: %v, want code %q", err, store.LimitTPM)
	}
}

func staleHolds(t *testing.T, f *fixture) {
	hs := holder(t, f)
	o, _ := f.org("Acme")
	other, _ := f.org("Bolt")
	tok := f.token(f.key(o.ID, "main"))
	var want []string
	for i := range 3 {
		h := f.hold(tok, f.at(time.Duration(i)*time.Minute), int64(i), store.HoldLimits{})
		must(hs.Hold(f.ctx, h))(t)
		want = append(want, h.Usage.RequestID)
	}
	got := must(hs.StaleHolds(f.ctx, o.ID, f.at(90*time.Second), 10))(t)
	same(t, "StaleHolds before 90 s", ids(got, func(h store.Hold) string { return h.Usage.RequestID }), want[:2])
	if len(got) > 0 && (got[0].Micro != 0 || !bytesEqual(got[0].TokenHash, tok.Hash)) {
		t.Errorf("a stale hold lost its reservation or token: %+v", got[0])
	}
	if n := len(must(hs.StaleHolds(f.ctx, other.ID, f.at(time.Hour), 10))(t)); n != 0 {
		t.Errorf("another organization has %d stale holds, want 0", n)
	}
	_, err := hs.Hold(f.ctx, store.Hold{Usage: kve.Usage{RequestID: "req_x"}})
	wantKind(t, "Hold without a token", err, kve.KindInvalid)
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

func budgetTests() []test {
	return []test{
		{"billing", func(t *testing.T, f *fixture) {
			o, _ := f.org("Acme")
			same(t, "Billing never set", must(f.s.Billing(f.ctx, o.ID))(t), store.Billing{OrgID: o.ID})
			b := store.Billing{OrgID: o.ID, MonthBudgetMicro: 250_000_000, Contact: "billing@example.test",
				Prices: []store.Price{{Provider: "openai", Model: "gpt-4o", Input: 2, Cached: 1, Output: 8}}, UpdatedAt: f.now}
			ok(t, f.s.SetBilling(f.ctx, b, f.event(o.ID, "billing.update", o.ID)))
			same(t, "Billing", must(f.s.Billing(f.ctx, o.ID))(t), b)
			b.Prices, b.MonthBudgetMicro = nil, 0
			ok(t, f.s.SetBilling(f.ctx, b, f.event(o.ID, "billing.update", o.ID)))
			same(t, "Billing replaced", must(f.s.Billing(f.ctx, o.ID))(t), b)
			events := must(f.s.Events(f.ctx, o.ID, store.EventFilter{Action: "billing.update"}))(t)
			if len(events.Items) != 2 {
				t.Errorf("%d billing.update events, want 2", len(events.Items))
			}
			other, _ := f.org("Bolt")
			same(t, "another org's billing", must(f.s.Billing(f.ctx, other.ID))(t), store.Billing{OrgID: other.ID})
			err := f.s.SetBilling(f.ctx, store.Billing{OrgID: "org_missing00000000000000000"}, f.event("org_missing00000000000000000", "billing.update", "x"))
			wantKind(t, "SetBilling of a missing org", err, kve.KindNotFound)
		}},
		{"token limits", func(t *testing.T, f *fixture) {
			o, _ := f.org("Acme")
			other, _ := f.org("Bolt")
			k := f.key(o.ID, "main")
			tok := f.newToken(k)
			same(t, "Limits never set", must(f.s.Limits(f.ctx, o.ID, tok.ID))(t), store.Limits{})
			// Set before the token exists, as manage does.
			l := store.Limits{TPM: 40_000, MonthBudgetMicro: 30_000_000}
			ok(t, f.s.SetLimits(f.ctx, o.ID, tok.ID, l, f.event(o.ID, "token.limits", tok.ID)))
			ok(t, f.s.CreateToken(f.ctx, tok, f.event(o.ID, "token.create", tok.ID)))
			same(t, "Limits", must(f.s.Limits(f.ctx, o.ID, tok.ID))(t), l)
			same(t, "Limits through another org", must(f.s.Limits(f.ctx, other.ID, tok.ID))(t), store.Limits{})
			second := f.token(k)
			ok(t, f.s.SetLimits(f.ctx, o.ID, second.ID, store.Limits{TPM: 5}, f.event(o.ID, "token.limits", second.ID)))
			cleared := f.token(k)
			ok(t, f.s.SetLimits(f.ctx, o.ID, cleared.ID, store.Limits{TPM: 5}, f.event(o.ID, "token.limits", cleared.ID)))
			ok(t, f.s.SetLimits(f.ctx, o.ID, cleared.ID, store.Limits{}, f.event(o.ID, "token.limits", cleared.ID)))
			same(t, "AllLimits", must(f.s.AllLimits(f.ctx, o.ID))(t), map[string]store.Limits{tok.ID: l, second.ID: {TPM: 5}})
			same(t, "AllLimits of another org", must(f.s.AllLimits(f.ctx, other.ID))(t), map[string]store.Limits{})
			err := f.s.SetLimits(f.ctx, o.ID, tok.ID, store.Limits{TPM: -1}, f.event(o.ID, "token.limits", tok.ID))
			wantKind(t, "SetLimits with a negative limit", err, kve.KindInvalid)
		}},
	}
}
