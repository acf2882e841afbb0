package usage

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/keyvault-edge/kve/shared/store"
)

// limitsCache keeps, per process, what Admit needs beyond the token itself:
// the token's limits beyond its policy (tokens per minute, monthly budget)
// and its organization's monthly budget and price list. They change rarely
// and only through the management API, so each is read from the store at
// most once per ttl; a change takes effect within ttl everywhere. (The
// token's own policy, with its rate and daily budget, comes fresh with
// every lookup.)
type limitsCache struct {
	st  store.Budgets
	ttl time.Duration
	now func() time.Time

	mu     sync.Mutex
	orgs   map[string]orgEntry
	tokens map[string]tokenEntry
}

type orgEntry struct {
	billing store.Billing
	prices  *Prices
	at      time.Time
}

type tokenEntry struct {
	limits store.Limits
	at     time.Time
}

// defaultLimitsTTL bounds how long a changed limit or price takes to apply.
const defaultLimitsTTL = 2 * time.Second

// maxCached bounds each map; past it, the cache starts over.
const maxCached = 100_000

func newLimitsCache(st store.Budgets, base *Prices, ttl time.Duration, now func() time.Time) *limitsCache {
	if ttl <= 0 {
		ttl = defaultLimitsTTL
	}
	c := &limitsCache{st: st, ttl: ttl, now: now, orgs: map[string]orgEntry{}, tokens: map[string]tokenEntry{}}
	c.orgs[""] = orgEntry{prices: base}
	return c
}

// org returns an organization's billing settings and the price list it
// uses (the embedded one with its overrides).
func (c *limitsCache) org(ctx context.Context, orgID string) (store.Billing, *Prices, error) {
	now := c.now()
	c.mu.Lock()
	e, ok := c.orgs[orgID]
	base := c.orgs[""].prices
	c.mu.Unlock()
	if ok && now.Sub(e.at) < c.ttl {
		return e.billing, e.prices, nil
	}
	b, err := c.st.Billing(ctx, orgID)
	if err != nil {
		return store.Billing{}, nil, fmt.Errorf("read billing: %w", err)
	}
	e = orgEntry{billing: b, prices: base.With(b.Prices), at: now}
	c.mu.Lock()
	if len(c.orgs) > maxCached {
		c.orgs = map[string]orgEntry{"": c.orgs[""]}
	}
	c.orgs[orgID] = e
	c.mu.Unlock()
	return e.billing, e.prices, nil
}

// token returns a token's limits beyond its policy.
func (c *limitsCache) token(ctx context.Context, orgID, tokenID string) (store.Limits, error) {
	now := c.now()
	c.mu.Lock()
	e, ok := c.tokens[tokenID]
	c.mu.Unlock()
	if ok && now.Sub(e.at) < c.ttl {
		return e.limits, nil
	}
	l, err := c.st.Limits(ctx, orgID, tokenID)
	if err != nil {
		return store.Limits{}, fmt.Errorf("read limits: %w", err)
	}
	c.mu.Lock()
	if len(c.tokens) > maxCached {
		c.tokens = map[string]tokenEntry{}
	}
	c.tokens[tokenID] = tokenEntry{limits: l, at: now}
	c.mu.Unlock()
	return l, nil
}
