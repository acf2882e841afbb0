package dynamo

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// Rollups implements store.Metering with one Query of the organization's
// rollup partition over the days asked for (sort keys begin with the day),
// summed here: a 30-day report reads one item per (day, token, model) in
// use, never a usage record.
func (s *Store) Rollups(ctx context.Context, orgID string, f store.RollupFilter) ([]store.Rollup, error) {
	if _, err := time.Parse(time.DateOnly, f.From); err != nil {
		return nil, kve.Errorf(kve.KindInvalid, "invalid_range", "from must be a day like 2026-11-01")
	}
	if _, err := time.Parse(time.DateOnly, f.To); err != nil {
		return nil, kve.Errorf(kve.KindInvalid, "invalid_range", "to must be a day like 2026-11-30")
	}
	// "#" sorts before "$": every key of day To is below To+"$".
	q := newQuery(rollupPK(orgID)).between(f.From, f.To+"$")
	if f.TokenID != "" {
		q.where(q.name("token_id") + " = " + q.value(str(f.TokenID)))
	}
	if f.UserID != "" {
		q.where(q.name("user_id") + " = " + q.value(str(f.UserID)))
	}
	items, err := s.all(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("read rollups: %w", err)
	}
	sums := map[store.Rollup]*store.Rollup{} // by the grouped keys
	for _, it := range items {
		r, err := decodeRollup(it)
		if err != nil {
			return nil, fmt.Errorf("read rollups: %w", err)
		}
		k := groupKey(&r, f.By)
		sum, ok := sums[k]
		if !ok {
			sum = &store.Rollup{Day: k.Day, TokenID: k.TokenID, Model: k.Model, UserID: k.UserID}
			sums[k] = sum
		}
		addRollup(sum, &r, f.By)
	}
	out := make([]store.Rollup, 0, len(sums))
	for _, r := range sums {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b store.Rollup) int {
		return cmp.Or(cmp.Compare(a.Day, b.Day), cmp.Compare(a.TokenID, b.TokenID),
			cmp.Compare(a.Model, b.Model), cmp.Compare(a.UserID, b.UserID))
	})
	return out, nil
}

// groupKey is the part of r that by groups on.
func groupKey(r *store.Rollup, by store.Group) store.Rollup {
	var k store.Rollup
	if by&store.ByDay != 0 {
		k.Day = r.Day
	}
	if by&store.ByToken != 0 {
		k.TokenID = r.TokenID
	}
	if by&store.ByModel != 0 {
		k.Model = r.Model
	}
	if by&store.ByUser != 0 {
		k.UserID = r.UserID
	}
	return k
}

func addRollup(sum, r *store.Rollup, by store.Group) {
	if by&store.ByToken != 0 {
		sum.Env, sum.Provider = r.Env, r.Provider
	}
	sum.Requests += r.Requests
	sum.Errors += r.Errors
	sum.Estimated += r.Estimated
	sum.PromptTokens += r.PromptTokens
	sum.CompletionTokens += r.CompletionTokens
	sum.CachedTokens += r.CachedTokens
	sum.ReasoningTokens += r.ReasoningTokens
	sum.BytesIn += r.BytesIn
	sum.BytesOut += r.BytesOut
	sum.CostMicro += r.CostMicro
	if r.LastAt.After(sum.LastAt) {
		sum.LastAt = r.LastAt
	}
}

func decodeRollup(it item) (store.Rollup, error) {
	f := fields{it: it}
	r := store.Rollup{
		Day: f.str("day"), TokenID: f.str("token_id"), Model: f.str("model"), UserID: f.str("user_id"),
		Env: kve.Env(f.str("env")), Provider: f.str("provider"),
		Requests: f.num("requests"), Errors: f.num("errors"), Estimated: f.num("estimated"),
		PromptTokens: f.num("prompt_tokens"), CompletionTokens: f.num("completion_tokens"),
		CachedTokens: f.num("cached_tokens"), ReasoningTokens: f.num("reasoning_tokens"),
		BytesIn: f.num("bytes_in"), BytesOut: f.num("bytes_out"), CostMicro: f.num("cost_micro"),
		LastAt: f.time("last_at"),
	}
	if f.err != nil {
		return store.Rollup{}, fmt.Errorf("decode rollup: %w", f.err)
	}
	return r, nil
}
