package usage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/limits"
	"github.com/keyvault-edge/kve/shared/proxy"
	"github.com/keyvault-edge/kve/shared/store"
)

// LocalStore is what Local needs of the store.
type LocalStore interface {
	store.Metering
	store.Budgets
}

// LocalConfig configures a Local meter. Zero values take the defaults.
type LocalConfig struct {
	Spool  string           // the spool directory (required): <data>/usage-spool
	Prices *Prices          // default DefaultPrices()
	Logger *slog.Logger     // default slog.Default()
	Now    func() time.Time // default time.Now
	// LimitsTTL bounds how long a changed token limit, monthly budget or
	// price takes to apply (default 2 s).
	LimitsTTL time.Duration
	// SpoolFailOpen lets requests on tokens without any budget through
	// while the spool cannot be written (unmetered, and logged); tokens
	// with a budget fail closed either way (SECURITY T55). Default false:
	// every request fails closed.
	SpoolFailOpen bool
}

// Local is local mode's meter and recorder (proxy.Meter, proxy.Recorder):
// one process holds budgets in memory, takes tokens per minute from
// in-memory buckets, copies each hold and record into the spool's mapped
// segment, and stores records in batches.
type Local struct {
	st       LocalStore
	base     *Prices
	log      *slog.Logger
	now      func() time.Time
	cache    *limitsCache
	ledger   *ledger
	tpm      *limits.Tokens
	spool    *spool
	batch    *Batcher
	failOpen bool
}

var (
	_ proxy.Meter    = (*Local)(nil)
	_ proxy.Recorder = (*Local)(nil)
)

// OpenLocal opens the spool, stores what it holds from a previous run
// (records, and holds without one as records of interrupted requests), and
// starts the batcher.
func OpenLocal(ctx context.Context, st LocalStore, cfg LocalConfig) (*Local, error) {
	if cfg.Spool == "" {
		return nil, errors.New("open usage meter: no spool directory")
	}
	if cfg.Prices == nil {
		cfg.Prices = DefaultPrices()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	sp, recovered, old, err := openSpool(cfg.Spool, segmentSize, false)
	if err != nil {
		return nil, err
	}
	if len(recovered) > 0 {
		if err := writeRetrying(ctx, st, recovered); err != nil {
			sp.close()
			return nil, fmt.Errorf("store spooled usage: %w", err)
		}
		cfg.Logger.Info("usage_recovered", "records", len(recovered))
	}
	if err := sp.dropRecovered(old); err != nil {
		cfg.Logger.Warn("usage_spool_cleanup", "err", err)
	}
	l := &Local{
		st:       st,
		base:     cfg.Prices,
		log:      cfg.Logger,
		now:      cfg.Now,
		cache:    newLimitsCache(st, cfg.Prices, cfg.LimitsTTL, cfg.Now),
		ledger:   newLedger(st.Spend),
		tpm:      limits.NewTokens(),
		spool:    sp,
		failOpen: cfg.SpoolFailOpen,
	}
	l.batch = newBatcher(st, cfg.Logger, sp.stored)
	return l, nil
}

// localHold is a Grant's state in Local.
type localHold struct {
	hold    *hold
	prices  *Prices
	tpm     int
	spooled bool // the hold line is in the spool
}

// Admit implements proxy.Meter: tokens per minute, then the day, month and
// organization budgets, then the hold on the spool.
func (l *Local) Admit(ctx context.Context, t *kve.Token, u *kve.Usage, ask proxy.Ask) (proxy.Grant, error) {
	billing, prices, err := l.cache.org(ctx, t.OrgID)
	if err != nil {
		return proxy.Grant{}, err
	}
	lim, err := l.cache.token(ctx, t.OrgID, t.ID)
	if err != nil {
		return proxy.Grant{}, err
	}
	if ok, wait := l.tpm.Allow(t.ID, lim.TPM, l.now()); !ok {
		return proxy.Grant{}, &proxy.Limited{Reason: store.LimitTPM, RetryAfter: wait,
			Message: "Tokens-per-minute limit of this token reached; retry later."}
	}
	micro, _ := prices.Estimate(u, ask.MaxOutputTokens)
	b := budgets{day: t.Policy.BudgetMicro, month: lim.MonthBudgetMicro, orgMonth: billing.MonthBudgetMicro}
	h, left, err := l.ledger.take(ctx, t.OrgID, t.ID, u.At, b, micro)
	if err != nil {
		if kve.KindOf(err) == kve.KindRateLimited {
			return proxy.Grant{}, overBudget(kve.CodeOf(err), u.At)
		}
		return proxy.Grant{}, err
	}
	spooled := true
	if err := l.spool.hold(u, micro); err != nil {
		// An unwritable spool means spend that no budget would see after a
		// restart: tokens with a budget fail closed (SECURITY T55).
		if b != (budgets{}) || !l.failOpen {
			l.ledger.settle(h, 0)
			return proxy.Grant{}, fmt.Errorf("spool hold: %w", err)
		}
		l.log.Error("usage_spool_failed", "request_id", u.RequestID, "token_id", t.ID, "err", err)
		spooled = false
	}
	return proxy.Grant{Remaining: left, Hold: &localHold{hold: h, prices: prices, tpm: lim.TPM, spooled: spooled}}, nil
}

// overBudget is the refusal of a spent budget, retried when its period ends.
func overBudget(code string, at time.Time) *proxy.Limited {
	t := at.UTC()
	l := &proxy.Limited{Budget: true, Reason: code}
	switch code {
	case store.LimitDay:
		l.RetryAfter = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, time.UTC).Sub(t)
	case store.LimitMonth:
		l.RetryAfter = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, time.UTC).Sub(t)
		l.Message = "Monthly budget of this token is spent."
	case store.LimitOrgMonth:
		l.RetryAfter = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, time.UTC).Sub(t)
		l.Message = "Monthly budget of this organization is spent."
	}
	return l
}

// Record implements proxy.Recorder: it prices the record, settles the
// request's hold with its cost, appends the record to the spool and queues
// it for the store. It never blocks on the store.
func (l *Local) Record(ctx context.Context, u *kve.Usage) {
	var lh *localHold
	if g := proxy.GrantOf(ctx); g != nil {
		lh, _ = g.Hold.(*localHold)
	}
	prices := l.base
	if lh != nil {
		prices = lh.prices
	} else if _, p, err := l.cache.org(ctx, u.OrgID); err == nil {
		prices = p
	}
	u.CostMicro = prices.Cost(u)
	if lh != nil {
		l.ledger.settle(lh.hold, u.CostMicro)
		l.tpm.Spend(u.TokenID, lh.tpm, u.PromptTokens+u.CompletionTokens, l.now())
	}
	seg, err := l.spool.done(u, lh != nil && lh.spooled)
	if err != nil {
		l.log.Error("usage_spool_failed", "request_id", u.RequestID, "token_id", u.TokenID, "err", err)
	}
	l.batch.add(batchItem{s: store.Settlement{Usage: *u}, seg: seg})
}

// Dropped returns how many records were dropped from memory because the
// store refused them for long (the spool keeps them for the next start).
func (l *Local) Dropped() int64 { return l.batch.Dropped() }

// Close stores what is queued and closes the spool; call it once the
// server stopped serving.
func (l *Local) Close() error {
	l.batch.Close()
	return l.spool.close()
}
