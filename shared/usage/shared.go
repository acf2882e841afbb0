package usage

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/proxy"
	"github.com/keyvault-edge/kve/shared/store"
)

// SharedStore is what Shared needs of the store.
type SharedStore interface {
	store.Metering
	store.Budgets
	store.Holds
}

// SharedConfig configures a Shared meter. Zero values take the defaults.
type SharedConfig struct {
	Prices    *Prices          // default DefaultPrices()
	Logger    *slog.Logger     // default slog.Default()
	Now       func() time.Time // default time.Now
	LimitsTTL time.Duration    // see LocalConfig; default 2 s
	// StaleAfter is how old a hold must be before it counts as left by a
	// dead execution environment. Default StaleAfter.
	StaleAfter time.Duration
	// Timeout bounds the settling of one record, retries included, once
	// its response is complete. Default 3 s; a record that still fails
	// leaves its hold, settled later at its reservation (Reconcile).
	Timeout time.Duration
}

// Shared is the meter and recorder of the proxy function on Lambda
// (proxy.Meter, proxy.Recorder): a request costs two DynamoDB writes for
// metering, a transaction before it is forwarded (its pending record, its
// rate window, its reservation against every budget: store.Holds) and one
// as it completes (its record, its cost in place of the reservation, its
// rollup: store.Metering.Settle). Both run while the invocation runs:
// nothing is left for after the response, when the environment may freeze.
type Shared struct {
	st         SharedStore
	base       *Prices
	log        *slog.Logger
	now        func() time.Time
	cache      *limitsCache
	staleAfter time.Duration
	timeout    time.Duration

	mu      sync.Mutex
	checked map[string]time.Time // organization → when its stale holds were last looked for
}

var (
	_ proxy.Meter    = (*Shared)(nil)
	_ proxy.Recorder = (*Shared)(nil)
)

// NewShared returns the meter of one execution environment.
func NewShared(st SharedStore, cfg SharedConfig) *Shared {
	if cfg.Prices == nil {
		cfg.Prices = DefaultPrices()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = StaleAfter
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 3 * time.Second
	}
	return &Shared{st: st, base: cfg.Prices, log: cfg.Logger, now: cfg.Now,
		cache: newLimitsCache(st, cfg.Prices, cfg.LimitsTTL, cfg.Now), staleAfter: cfg.StaleAfter,
		timeout: cfg.Timeout, checked: map[string]time.Time{}}
}

// sharedHold is a Grant's state in Shared.
type sharedHold struct {
	hold   store.Hold
	prices *Prices
}

// Admit implements proxy.Meter with one store.Holds.Hold.
func (s *Shared) Admit(ctx context.Context, t *kve.Token, u *kve.Usage, ask proxy.Ask) (proxy.Grant, error) {
	billing, prices, err := s.cache.org(ctx, t.OrgID)
	if err != nil {
		return proxy.Grant{}, err
	}
	lim, err := s.cache.token(ctx, t.OrgID, t.ID)
	if err != nil {
		return proxy.Grant{}, err
	}
	micro, tokens := prices.Estimate(u, ask.MaxOutputTokens)
	h := store.Hold{Usage: *u, TokenHash: t.Hash, Micro: micro, Tokens: tokens, LastUsed: t.LastUsed,
		Limits: store.HoldLimits{RPM: t.Policy.RPM, TPM: lim.TPM, DayMicro: t.Policy.BudgetMicro,
			MonthMicro: lim.MonthBudgetMicro, OrgMonthMicro: billing.MonthBudgetMicro}}
	if _, err := s.st.Hold(ctx, h); err != nil {
		if kve.KindOf(err) != kve.KindRateLimited {
			return proxy.Grant{}, err
		}
		switch code := kve.CodeOf(err); code {
		case store.LimitRPM, store.LimitTPM:
			next := u.At.UTC().Truncate(time.Minute).Add(time.Minute)
			l := &proxy.Limited{Reason: code, RetryAfter: next.Sub(u.At)}
			if code == store.LimitTPM {
				l.Message = "Tokens-per-minute limit of this token reached; retry later."
			}
			return proxy.Grant{}, l
		default:
			return proxy.Grant{}, overBudget(code, u.At)
		}
	}
	// The transaction returns no counters; the day's spend is known from
	// the lookup a moment ago, and is the budget reported.
	left := int64(-1)
	if b := t.Policy.BudgetMicro; b > 0 {
		left = max(b-t.Spend.Today(u.At)-micro, 0)
	}
	return proxy.Grant{Remaining: left, Hold: &sharedHold{hold: h, prices: prices}}, nil
}

// Record implements proxy.Recorder: one Settle, retried on throttling until
// the timeout. A record that cannot be stored leaves its hold for Reconcile
// (charged its reservation), or, refused before any hold, is logged as lost.
func (s *Shared) Record(ctx context.Context, u *kve.Usage) {
	var sh *sharedHold
	if g := proxy.GrantOf(ctx); g != nil {
		sh, _ = g.Hold.(*sharedHold)
	}
	prices := s.base
	if sh != nil {
		prices = sh.prices
	} else if _, p, err := s.cache.org(ctx, u.OrgID); err == nil {
		prices = p
	}
	u.CostMicro = prices.Cost(u)
	st := store.Settlement{Usage: *u}
	if sh != nil {
		st.Hold = &sh.hold
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	defer cancel()
	if err := writeRetrying(ctx, s.st, []store.Settlement{st}); err != nil {
		s.log.Error("usage_settle_failed", "request_id", u.RequestID, "token_id", u.TokenID,
			"held", sh != nil, "err", err)
	}
	s.reconcileSometimes(ctx, u.OrgID)
}

// StaleAfter is how old a hold must be before it counts as left by a dead
// execution environment: longer than a request can take (the proxy's total
// timeout, 30 minutes by default).
const StaleAfter = 35 * time.Minute

// staleCheckEvery bounds how often one environment looks for an
// organization's stale holds.
const staleCheckEvery = 5 * time.Minute

// reconcileSometimes settles the organization's stale holds, at most once
// per staleCheckEvery per environment and never on the first request it
// sees of an organization, so the common request stays at two writes.
func (s *Shared) reconcileSometimes(ctx context.Context, orgID string) {
	now := s.now()
	s.mu.Lock()
	last, seen := s.checked[orgID]
	due := seen && now.Sub(last) >= staleCheckEvery
	if !seen || due {
		s.checked[orgID] = now
	}
	s.mu.Unlock()
	if !due {
		return
	}
	if n, err := Reconcile(ctx, s.st, orgID, now.Add(-s.staleAfter)); err != nil {
		s.log.Warn("usage_reconcile_failed", "org_id", orgID, "err", err)
	} else if n > 0 {
		s.log.Info("usage_reconciled", "org_id", orgID, "records", n)
	}
}

// Reconcile settles an organization's holds taken before before and never
// settled: requests whose execution environment died or timed out
// mid-stream (SECURITY T50 read for Lambda). Each becomes its record,
// charged its reservation (what the hold counted already, so no counter
// moves) and marked estimated and interrupted. A request that completes
// after all finds its record stored and counts once. It returns how many
// it settled.
func Reconcile(ctx context.Context, st interface {
	store.Holds
	store.Metering
}, orgID string, before time.Time) (int, error) {
	n := 0
	for {
		holds, err := st.StaleHolds(ctx, orgID, before, 100)
		if err != nil || len(holds) == 0 {
			return n, err
		}
		batch := make([]store.Settlement, len(holds))
		for i := range holds {
			u := holds[i].Usage
			u.CostMicro, u.Estimated, u.Reason = holds[i].Micro, true, interrupted
			batch[i] = store.Settlement{Usage: u, Hold: &holds[i]}
		}
		if err := st.Settle(ctx, batch); err != nil {
			return n, err
		}
		n += len(batch)
		if len(holds) < 100 {
			return n, nil
		}
	}
}
