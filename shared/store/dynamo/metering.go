package dynamo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// Metering keeps, per request, one transaction before it is forwarded
// (Hold) and one as it completes (Settle), so that budgets and rate limits
// hold across concurrent execution environments and a request whose
// environment died is still found:
//
//	item                         pk                sk                        written by
//	hold (pending record)        holds#<org>       <time>#<request id>       Hold (Put); Settle deletes it
//	rate window of a token       tokenhash#<hex>   rate#<UTC minute>         Hold (ADD requests), Settle (ADD tokens); TTL 1 h
//	token's spend per day        tokenhash#<hex>   spend#<YYYY-MM-DD>        Hold (ADD reservation), Settle (ADD cost − reservation)
//	token's spend per month      tokenhash#<hex>   spend#<YYYY-MM>           as the day
//	org's spend per month        billing#<org>     spend#<YYYY-MM>           while the org has a monthly budget (see SetBilling)
//	rollup (day, token, model)   rollup#<org>      <day>#<token>#<model>     Settle (ADD counters); TTL 400 days
//	usage record                 usage#<org>       <time>#<request id>       Settle (Put if absent: the dedupe)
//
// A hold's conditions compare a counter with its limit before the hold
// ("spend < limit"), so of any number of concurrent holds against a nearly
// spent budget those admitted overshoot it by at most one reservation. The
// organization's month counter is the one item every token of an
// organization shares: it is only written while the organization has a
// monthly budget, so that other organizations never contend on it.

func holdsPK(orgID string) string   { return "holds#" + orgID }
func rollupPK(orgID string) string  { return "rollup#" + orgID }
func billingPK(orgID string) string { return "billing#" + orgID }

const (
	prefixRate   = "rate#"
	prefixLimits = "limits#"
	skBilling    = "settings"
)

func holdKey(u *kve.Usage) item { return primaryKey(holdsPK(u.OrgID), usageSK(u)) }

func monthOf(t time.Time) string { return t.UTC().Format("2006-01") }

// windowSK names the rate window of the UTC minute of t.
func windowSK(t time.Time) string { return prefixRate + t.UTC().Format("2006-01-02T15:04") }

// windowTTL keeps a rate window an hour past its minute.
const windowTTL = time.Hour

func limitError(code, what string) error {
	return kve.Errorf(kve.KindRateLimited, code, "%s", what)
}

var (
	errOverRPM      = limitError(store.LimitRPM, "the token's requests per minute are spent")
	errOverTPM      = limitError(store.LimitTPM, "the token's tokens per minute are spent")
	errOverDay      = limitError(store.LimitDay, "the token's daily budget is spent")
	errOverMonth    = limitError(store.LimitMonth, "the token's monthly budget is spent")
	errOverOrgMonth = limitError(store.LimitOrgMonth, "the organization's monthly budget is spent")
	errHoldExists   = kve.Errorf(kve.KindConflict, "hold_exists", "a hold with this request id exists")
)

// Hold implements store.Holds in one TransactWriteItems.
func (s *Store) Hold(ctx context.Context, h store.Hold) (store.Spend, error) {
	u := &h.Usage
	if u.RequestID == "" || u.OrgID == "" || u.TokenID == "" || u.At.IsZero() || len(h.TokenHash) == 0 || h.Micro < 0 {
		return store.Spend{}, kve.Errorf(kve.KindInvalid, "invalid_hold",
			"a hold needs a request id, an organization, a token and its hash, a time and a reservation of at least 0")
	}
	it, err := holdItem(&h)
	if err != nil {
		return store.Spend{}, fmt.Errorf("hold: %w", err)
	}
	ws := []write{s.create(it, errHoldExists)}
	if w, ok := s.holdWindow(&h); ok {
		ws = append(ws, w)
	}
	if h.Micro > 0 {
		lim := h.Limits
		day, dayStart := daySpend(tokenHashPK(h.TokenHash), u.At)
		month, monthStart := monthSpend(tokenHashPK(h.TokenHash), u.At)
		ws = append(ws, s.addSpend(day, dayStart, h.Micro, lim.DayMicro, errOverDay),
			s.addSpend(month, monthStart, h.Micro, lim.MonthMicro, errOverMonth))
		if lim.OrgMonthMicro > 0 {
			org, start := monthSpend(billingPK(u.OrgID), u.At)
			ws = append(ws, s.addSpend(org, start, h.Micro, lim.OrgMonthMicro, errOverOrgMonth))
		}
	}
	if err := s.transactMetering(ctx, ws); err != nil {
		return store.Spend{}, fmt.Errorf("hold: %w", err)
	}
	// A transaction returns no values: the counters after the hold are not
	// known here. The caller knows the day's spend from its token lookup.
	return store.Spend{Day: -1, Month: -1, OrgMonth: -1}, nil
}

// holdWindow counts the request in its token's rate window, on condition
// that the window is under its limits before it.
func (s *Store) holdWindow(h *store.Hold) (write, bool) {
	rpm, tpm := h.Limits.RPM, h.Limits.TPM
	if rpm <= 0 && tpm <= 0 {
		return write{}, false
	}
	var e expr
	n := e.name("requests")
	var cond string
	if rpm > 0 {
		cond = "(attribute_not_exists(" + n + ") OR " + n + " < " + e.value(num(int64(rpm))) + ")"
	}
	if tpm > 0 {
		if cond != "" {
			cond += " AND "
		}
		tk := e.name("tokens")
		cond += "(attribute_not_exists(" + tk + ") OR " + tk + " < " + e.value(num(int64(tpm))) + ")"
	}
	at := h.Usage.At
	upd := "ADD " + n + " " + e.value(num(1)) + " SET " + e.name(AttrTTL) + " = " + e.value(epoch(at.Add(windowTTL)))
	w := s.update(primaryKey(tokenHashPK(h.TokenHash), windowSK(at)), &e, upd, cond, nil)
	w.op.Update.ReturnValuesOnConditionCheckFailure = "ALL_OLD"
	w.failWith = func(old item) error {
		f := fields{it: old}
		if rpm > 0 && f.num("requests") >= int64(rpm) {
			return errOverRPM
		}
		return errOverTPM
	}
	return w, true
}

// Spend counters: of a day and of a month, each expiring usageTTL after
// the period's start.
func daySpend(pk string, at time.Time) (item, time.Time) {
	t := at.UTC()
	return primaryKey(pk, spendSK(t.Format(time.DateOnly))), time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

func monthSpend(pk string, at time.Time) (item, time.Time) {
	t := at.UTC()
	return primaryKey(pk, spendSK(monthOf(t))), time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// addSpend adds micro to the spend counter at k of the period that starts
// at start; with a limit above 0, only while the counter is under it before
// the addition.
func (s *Store) addSpend(k item, start time.Time, micro, limit int64, fail error) write {
	var e expr
	m := e.name("micro")
	upd := "ADD " + m + " " + e.value(num(micro)) + " SET " + e.name(AttrTTL) + " = " + e.value(epoch(start.Add(usageTTL)))
	var cond string
	if limit > 0 {
		cond = "attribute_not_exists(" + m + ") OR " + m + " < " + e.value(num(limit))
	}
	return s.update(k, &e, upd, cond, fail)
}

// holdItem is the pending record plus what settling it needs.
func holdItem(h *store.Hold) (item, error) {
	it := usageItem(&h.Usage)
	it.setBytes("token_hash", h.TokenHash)
	it.setNum("held_micro", h.Micro)
	it.setNum("held_tokens", h.Tokens)
	it.setTime("last_used", h.LastUsed)
	if err := it.setJSON("limits", holdLimits{RPM: h.Limits.RPM, TPM: h.Limits.TPM, Day: h.Limits.DayMicro,
		Month: h.Limits.MonthMicro, OrgMonth: h.Limits.OrgMonthMicro}); err != nil {
		return nil, err
	}
	return it.with(holdsPK(h.Usage.OrgID), usageSK(&h.Usage)), nil
}

// holdLimits is how a hold's limits are stored.
type holdLimits struct {
	RPM      int   `json:"rpm,omitempty"`
	TPM      int   `json:"tpm,omitempty"`
	Day      int64 `json:"day,omitempty"`
	Month    int64 `json:"month,omitempty"`
	OrgMonth int64 `json:"org_month,omitempty"`
}

func decodeHold(it item) (store.Hold, error) {
	u, err := decodeUsage(it)
	if err != nil {
		return store.Hold{}, err
	}
	f := fields{it: it}
	h := store.Hold{Usage: u, TokenHash: f.bytes("token_hash"), Micro: f.num("held_micro"),
		Tokens: f.num("held_tokens"), LastUsed: f.time("last_used")}
	var l holdLimits
	f.json("limits", &l)
	if f.err != nil {
		return store.Hold{}, fmt.Errorf("decode hold: %w", f.err)
	}
	h.Limits = store.HoldLimits{RPM: l.RPM, TPM: l.TPM, DayMicro: l.Day, MonthMicro: l.Month, OrgMonthMicro: l.OrgMonth}
	return h, nil
}

// StaleHolds implements store.Holds.
func (s *Store) StaleHolds(ctx context.Context, orgID string, before time.Time, limit int) ([]store.Hold, error) {
	q := newQuery(holdsPK(orgID))
	q.keyCond += " AND " + q.name(AttrSK) + " < " + q.value(str(formatTime(before)))
	items, _, err := s.page(ctx, q, "", store.Limit(limit))
	if err != nil {
		return nil, fmt.Errorf("list stale holds: %w", err)
	}
	out := make([]store.Hold, 0, len(items))
	for _, it := range items {
		h, err := decodeHold(it)
		if err != nil {
			return nil, fmt.Errorf("list stale holds: %w", err)
		}
		out = append(out, h)
	}
	return out, nil
}

// Settle implements store.Metering: one transaction per record. The token's
// HMAC, which keys its counters, comes from the hold; a record without one
// that changes spend reads its token once per call for it.
func (s *Store) Settle(ctx context.Context, batch []store.Settlement) error {
	tokens := map[string]*usedToken{} // by org id + token id
	var errs []error
	for i := range batch {
		st := &batch[i]
		u := &st.Usage
		if u.RequestID == "" || u.OrgID == "" || u.TokenID == "" || u.At.IsZero() || u.CostMicro < 0 {
			errs = append(errs, kve.Errorf(kve.KindInvalid, "invalid_usage",
				"a usage record needs a request id, an organization, a token, a time and a cost of at least 0"))
			continue
		}
		tok, err := s.settledToken(ctx, st, tokens)
		if err == nil {
			err = s.settle(ctx, st, tok)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("record usage %s: %w", u.RequestID, err))
		}
	}
	return errors.Join(errs...)
}

// settledToken returns what settling st needs to know of its token: its
// HMAC and last use, from st's hold, or read once per call.
func (s *Store) settledToken(ctx context.Context, st *store.Settlement, tokens map[string]*usedToken) (*usedToken, error) {
	u := &st.Usage
	key := u.OrgID + "/" + u.TokenID
	if tok, ok := tokens[key]; ok {
		return tok, nil
	}
	if h := st.Hold; h != nil && len(h.TokenHash) > 0 {
		tok := &usedToken{hash: h.TokenHash, lastUsed: h.LastUsed, fromHold: true}
		return tok, nil
	}
	it, err := s.get(ctx, orgPK(u.OrgID), prefixToken+u.TokenID)
	if err != nil {
		return nil, err
	}
	f := fields{it: it}
	tok := &usedToken{hash: f.bytes("hash"), lastUsed: f.time("last_used")}
	if f.err == nil && len(tok.hash) == 0 {
		f.err = errors.New("the token has no hash")
	}
	if f.err != nil {
		return nil, f.err
	}
	tokens[key] = tok
	return tok, nil
}

// lastUsedStep is how far behind a record a token's last use may be before
// settling moves it when the request came with a hold (see store.Hold).
const lastUsedStep = time.Minute

func (s *Store) settle(ctx context.Context, st *store.Settlement, tok *usedToken) error {
	u := &st.Usage
	h := st.Hold
	ws := []write{s.create(usageItem(u), errRecorded), s.addRollup(u)}
	var held, orgHeld int64
	if h != nil {
		var e expr
		ws = append(ws, s.remove(holdKey(u), &e, "", nil))
		held = h.Micro
		if h.Limits.OrgMonthMicro > 0 {
			orgHeld = h.Micro
			if d := u.CostMicro - orgHeld; d != 0 {
				org, start := monthSpend(billingPK(u.OrgID), u.At)
				ws = append(ws, s.addSpend(org, start, d, 0, nil))
			}
		}
		if h.Limits.TPM > 0 {
			ws = append(ws, s.addWindowTokens(tok.hash, u))
		}
	}
	if d := u.CostMicro - held; d != 0 {
		day, dayStart := daySpend(tokenHashPK(tok.hash), u.At)
		month, monthStart := monthSpend(tokenHashPK(tok.hash), u.At)
		ws = append(ws, s.addSpend(day, dayStart, d, 0, nil), s.addSpend(month, monthStart, d, 0, nil))
	}
	step := time.Duration(0)
	if tok.fromHold {
		step = lastUsedStep
	}
	later := u.Forwarded() && u.At.After(tok.lastUsed.Add(step))
	n := len(ws)
	if later {
		for _, k := range []item{primaryKey(tokenHashPK(tok.hash), skToken), primaryKey(orgPK(u.OrgID), prefixToken+u.TokenID)} {
			ws = append(ws, s.moveLastUsed(k, u.At))
		}
	}
	err := s.transactMetering(ctx, ws)
	if errors.Is(err, errLater) {
		later, err = false, s.transactMetering(ctx, ws[:n])
	}
	switch {
	case errors.Is(err, errRecorded):
		// Recorded before (a retry, or a stale hold settled meanwhile by
		// whoever found it, at its reservation): nothing more to count,
		// and no hold of it may linger.
		if h != nil {
			var e expr
			return s.transactMetering(ctx, []write{s.remove(holdKey(u), &e, "", nil)})
		}
		return nil
	case err != nil:
		return err
	case later:
		tok.lastUsed = u.At
	}
	return nil
}

// addWindowTokens counts a request's tokens in the rate window of its
// arrival, which its hold checked.
func (s *Store) addWindowTokens(hash []byte, u *kve.Usage) write {
	var e expr
	upd := "ADD " + e.name("tokens") + " " + e.value(num(u.PromptTokens+u.CompletionTokens)) +
		" SET " + e.name(AttrTTL) + " = " + e.value(epoch(u.At.Add(windowTTL)))
	return s.update(primaryKey(tokenHashPK(hash), windowSK(u.At)), &e, upd, "", nil)
}

// addRollup adds a record to the rollup of its (day, token, model).
func (s *Store) addRollup(u *kve.Usage) write {
	var e expr
	add := ""
	for _, c := range []struct {
		name string
		v    int64
	}{
		{"requests", 1}, {"errors", boolNum(u.Status >= 400)}, {"estimated", boolNum(u.Estimated)},
		{"prompt_tokens", u.PromptTokens}, {"completion_tokens", u.CompletionTokens},
		{"cached_tokens", u.CachedTokens}, {"reasoning_tokens", u.ReasoningTokens},
		{"bytes_in", u.BytesIn}, {"bytes_out", u.BytesOut}, {"cost_micro", u.CostMicro},
	} {
		add += sep(add) + e.name(c.name) + " " + e.value(num(c.v))
	}
	set := ""
	for _, a := range []struct{ name, v string }{
		{"day", u.Day()}, {"token_id", u.TokenID}, {"model", u.Model}, {"user_id", u.UserID},
		{"env", string(u.Env)}, {"provider", u.Provider},
	} {
		if a.v != "" {
			set += sep(set) + e.name(a.name) + " = " + e.value(str(a.v))
		}
	}
	set += sep(set) + e.name("last_at") + " = " + e.value(stamp(u.At))
	day, _ := time.Parse(time.DateOnly, u.Day())
	set += ", " + e.name(AttrTTL) + " = " + e.value(epoch(day.Add(usageTTL)))
	k := primaryKey(rollupPK(u.OrgID), u.Day()+"#"+u.TokenID+"#"+u.Model)
	return s.update(k, &e, "ADD "+add+" SET "+set, "", nil)
}

func boolNum(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// metering transactions meet concurrent ones on a hot token's counters more
// often than management writes meet each other: they get more attempts.
const meteringAttempts = 8

func (s *Store) transactMetering(ctx context.Context, ws []write) error {
	return s.transactAttempts(ctx, meteringAttempts, ws...)
}

// Spend implements store.Metering: the token's counters of the day and the
// month of at (a token of another organization has none), and the
// organization's: its counter while it has a monthly budget, else the sum
// of its rollups and its open holds.
func (s *Store) Spend(ctx context.Context, orgID, tokenID string, at time.Time) (store.Spend, error) {
	var sp store.Spend
	it, err := s.get(ctx, orgPK(orgID), prefixToken+tokenID)
	switch {
	case tokenID == "" || kve.KindOf(err) == kve.KindNotFound:
	case err != nil:
		return store.Spend{}, fmt.Errorf("read spend: %w", err)
	default:
		f := fields{it: it}
		hash := f.bytes("hash")
		if f.err != nil {
			return store.Spend{}, fmt.Errorf("read spend: %w", f.err)
		}
		daySK, monthSK := spendSK(at.UTC().Format(time.DateOnly)), spendSK(monthOf(at))
		items, err := s.all(ctx, newQuery(tokenHashPK(hash)).between(monthSK, daySK))
		if err != nil {
			return store.Spend{}, fmt.Errorf("read spend: %w", err)
		}
		for _, it := range items {
			f := fields{it: it}
			switch f.str(AttrSK) {
			case monthSK:
				sp.Month = f.num("micro")
			case daySK:
				sp.Day = f.num("micro")
			}
			if f.err != nil {
				return store.Spend{}, fmt.Errorf("read spend: %w", f.err)
			}
		}
	}
	b, err := s.Billing(ctx, orgID)
	if err != nil {
		return store.Spend{}, fmt.Errorf("read spend: %w", err)
	}
	if b.MonthBudgetMicro > 0 {
		it, err := s.get(ctx, billingPK(orgID), spendSK(monthOf(at)))
		if err != nil && kve.KindOf(err) != kve.KindNotFound {
			return store.Spend{}, fmt.Errorf("read spend: %w", err)
		}
		f := fields{it: it}
		sp.OrgMonth = f.num("micro")
		return sp, f.err
	}
	if sp.OrgMonth, err = s.monthCost(ctx, orgID, at); err != nil {
		return store.Spend{}, fmt.Errorf("read spend: %w", err)
	}
	open, err := s.all(ctx, newQuery(holdsPK(orgID)).prefix(monthOf(at)))
	if err != nil {
		return store.Spend{}, fmt.Errorf("read spend: %w", err)
	}
	for _, it := range open {
		f := fields{it: it}
		sp.OrgMonth += f.num("held_micro")
		if f.err != nil {
			return store.Spend{}, fmt.Errorf("read spend: %w", f.err)
		}
	}
	return sp, nil
}

// monthCost sums an organization's rollups over the UTC month of at.
func (s *Store) monthCost(ctx context.Context, orgID string, at time.Time) (int64, error) {
	first := time.Date(at.UTC().Year(), at.UTC().Month(), 1, 0, 0, 0, 0, time.UTC)
	rows, err := s.Rollups(ctx, orgID, store.RollupFilter{From: first.Format(time.DateOnly),
		To: first.AddDate(0, 1, -1).Format(time.DateOnly)})
	if err != nil || len(rows) == 0 {
		return 0, err
	}
	return rows[0].CostMicro, nil
}
