package dynamo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// A usage record is usage#<org>/<time>#<request id>; the day's spend of a
// token is a counter on tokenhash#<hex>/spend#<day>, next to the proxy's
// token item so that TokenByHash reads both in one Query. Both expire after
// usageTTL.

func usageItem(u *kve.Usage) item {
	it := item{}
	it.setStr("request_id", u.RequestID)
	it.setTime("at", u.At)
	it.setStr("org_id", u.OrgID)
	it.setStr("token_id", u.TokenID)
	it.setStr("user_id", u.UserID)
	it.setStr("env", string(u.Env))
	it.setStr("provider", u.Provider)
	it.setStr("method", u.Method)
	it.setStr("path", u.Path)
	it.setStr("model", u.Model)
	it.setNum("status", int64(u.Status))
	it.setNum("duration_ns", int64(u.Duration))
	it.setNum("upstream_ns", int64(u.Upstream))
	it.setNum("bytes_in", u.BytesIn)
	it.setNum("bytes_out", u.BytesOut)
	it.setNum("prompt_tokens", u.PromptTokens)
	it.setNum("completion_tokens", u.CompletionTokens)
	it.setNum("cached_tokens", u.CachedTokens)
	it.setNum("reasoning_tokens", u.ReasoningTokens)
	it.setFlag("estimated", u.Estimated)
	it.setNum("cost_micro_usd", u.CostMicro)
	it.setStr("client_ip", u.ClientIP)
	it.setStr("origin", u.Origin)
	it.setFlag("client_aborted", u.ClientAborted)
	it.setStr("reason", u.Reason)
	it[AttrTTL] = epoch(u.At.Add(usageTTL))
	return it.with(usagePK(u.OrgID), usageSK(u))
}

func decodeUsage(it item) (kve.Usage, error) {
	f := fields{it: it}
	u := kve.Usage{
		RequestID:        f.str("request_id"),
		At:               f.time("at"),
		OrgID:            f.str("org_id"),
		TokenID:          f.str("token_id"),
		UserID:           f.str("user_id"),
		Env:              kve.Env(f.str("env")),
		Provider:         f.str("provider"),
		Method:           f.str("method"),
		Path:             f.str("path"),
		Model:            f.str("model"),
		Status:           int(f.num("status")),
		Duration:         time.Duration(f.num("duration_ns")),
		Upstream:         time.Duration(f.num("upstream_ns")),
		BytesIn:          f.num("bytes_in"),
		BytesOut:         f.num("bytes_out"),
		PromptTokens:     f.num("prompt_tokens"),
		CompletionTokens: f.num("completion_tokens"),
		CachedTokens:     f.num("cached_tokens"),
		ReasoningTokens:  f.num("reasoning_tokens"),
		Estimated:        f.flag("estimated"),
		CostMicro:        f.num("cost_micro_usd"),
		ClientIP:         f.str("client_ip"),
		Origin:           f.str("origin"),
		ClientAborted:    f.flag("client_aborted"),
		Reason:           f.str("reason"),
	}
	if f.err != nil {
		return kve.Usage{}, fmt.Errorf("decode usage: %w", f.err)
	}
	return u, nil
}

var (
	// errRecorded marks a record whose request id was recorded before.
	errRecorded = errors.New("usage already recorded")
	// errLater marks a token whose last_used is already later than a record.
	errLater   = errors.New("a later use is recorded")
	errNoToken = fmt.Errorf("the record's token: %w", kve.ErrNotFound)
)

// usedToken is what settling knows of a token during one call.
type usedToken struct {
	hash     []byte    // keys the spend counters
	lastUsed time.Time // as read, then as written
	fromHold bool      // known from the request's hold, not read
}

// RecordUsage implements store.Usage: Settle without holds. Each record is
// one transaction: the record itself (created only if absent, which makes
// a retry a no-op), its cost added to its token's spend for the day and the
// month and to its rollup, and, when the record is later than the token's
// last use, last_used on both token items. A token is read once per call,
// for its HMAC (which keys the spend counters) and last use: at most two
// calls per record, and a third only when another writer recorded a later
// use of the token meanwhile. Records that fail do not stop the others;
// their errors are returned together.
func (s *Store) RecordUsage(ctx context.Context, records []kve.Usage) error {
	batch := make([]store.Settlement, len(records))
	for i := range records {
		batch[i].Usage = records[i]
	}
	return s.Settle(ctx, batch)
}

// moveLastUsed sets a token item's last_used to at, unless it is later
// already: last use only moves forward, whatever order records come in.
func (s *Store) moveLastUsed(k item, at time.Time) write {
	var e expr
	lu := e.name("last_used")
	cond := e.exists() + " AND (attribute_not_exists(" + lu + ") OR " + lu + " < " + e.value(stamp(at)) + ")"
	w := s.update(k, &e, "SET "+lu+" = "+e.value(stamp(at)), cond, nil)
	w.op.Update.ReturnValuesOnConditionCheckFailure = "ALL_OLD"
	w.failWith = func(old item) error {
		if len(old) == 0 {
			return errNoToken
		}
		return errLater
	}
	return w
}

// UsageRecords implements store.Usage.
func (s *Store) UsageRecords(ctx context.Context, orgID string, f store.UsageFilter) (store.Page[kve.Usage], error) {
	q := newQuery(usagePK(orgID))
	q.backward = true
	if !f.Since.IsZero() {
		q.from(formatTime(f.Since))
	}
	if f.TokenID != "" {
		q.where(q.name("token_id") + " = " + q.value(str(f.TokenID)))
	}
	if f.UserID != "" {
		q.where(q.name("user_id") + " = " + q.value(str(f.UserID)))
	}
	items, next, err := s.page(ctx, q, f.Cursor, store.Limit(f.Limit))
	if err != nil {
		return store.Page[kve.Usage]{}, fmt.Errorf("list usage: %w", err)
	}
	page := store.Page[kve.Usage]{Items: make([]kve.Usage, 0, len(items)), Next: next}
	for _, it := range items {
		u, err := decodeUsage(it)
		if err != nil {
			return store.Page[kve.Usage]{}, fmt.Errorf("list usage: %w", err)
		}
		page.Items = append(page.Items, u)
	}
	return page, nil
}
