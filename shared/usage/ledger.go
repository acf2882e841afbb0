package usage

import (
	"context"
	"sync"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// ledger is local mode's budgets: one process is the only writer of its
// data directory's spend, so the counters live in memory, seeded from the
// store the first time a period is used, and a hold is a mutex away. Each
// counter is the spend settled (stored or queued) plus the open holds.
//
// A hold is admitted while every limited counter is under its limit before
// the hold, so concurrent holds against a nearly spent budget overshoot it
// by at most one reservation (SECURITY T17, G7).
type ledger struct {
	seed func(ctx context.Context, orgID, tokenID string, at time.Time) (store.Spend, error)

	mu       sync.Mutex
	counters map[counterKey]*counter
	sweepAt  time.Time
}

// counterKey names a counter: a token's day or month, an organization's
// month (token empty).
type counterKey struct {
	org, token string
	month      int32 // UTC year×12 + month−1
	day        int32 // UTC year×372 + (month−1)×31 + day for a day's counter (never 0); 0 for a month's
}

// periods returns the UTC month and day of at as counterKey has them.
func periods(at time.Time) (month, day int32) {
	y, m, d := at.UTC().Date()
	return int32(y*12 + int(m) - 1), int32(y*372 + (int(m)-1)*31 + d)
}

type counter struct {
	micro int64
	holds int // open holds on it, which keep it in memory
}

// hold is one request's reservation on its three counters.
type hold struct {
	day, month, org *counter
	micro           int64
}

func newLedger(seed func(ctx context.Context, orgID, tokenID string, at time.Time) (store.Spend, error)) *ledger {
	return &ledger{seed: seed, counters: map[counterKey]*counter{}}
}

// budgets are what a hold is checked against, in micro-USD; 0 means none.
type budgets struct {
	day, month, orgMonth int64
}

// take holds micro for a request of tokenID at at, or refuses with the
// code of the first budget (day, month, organization's month) that is
// spent. It returns the least left of the budgets that apply after the
// hold (-1 when none does).
func (l *ledger) take(ctx context.Context, orgID, tokenID string, at time.Time, b budgets, micro int64) (*hold, int64, error) {
	month, day := periods(at)
	keys := [3]counterKey{{orgID, tokenID, month, day}, {orgID, tokenID, month, 0}, {orgID, "", month, 0}}
	l.mu.Lock()
	l.sweep(at)
	cs := [3]*counter{l.counters[keys[0]], l.counters[keys[1]], l.counters[keys[2]]}
	if cs[0] == nil || cs[1] == nil || cs[2] == nil {
		// Seeded from the store, outside the lock; a counter seeded
		// meanwhile by another request is kept.
		l.mu.Unlock()
		sp, err := l.seed(ctx, orgID, tokenID, at)
		if err != nil {
			return nil, 0, err
		}
		l.mu.Lock()
		for i, v := range [3]int64{sp.Day, sp.Month, sp.OrgMonth} {
			if cs[i] = l.counters[keys[i]]; cs[i] == nil {
				cs[i] = &counter{micro: v}
				l.counters[keys[i]] = cs[i]
			}
		}
	}
	defer l.mu.Unlock()
	limits := [3]int64{b.day, b.month, b.orgMonth}
	codes := [3]string{store.LimitDay, store.LimitMonth, store.LimitOrgMonth}
	for i, c := range cs {
		if limits[i] > 0 && c.micro >= limits[i] {
			return nil, 0, kve.Errorf(kve.KindRateLimited, codes[i], "budget spent")
		}
	}
	left := int64(-1)
	for i, c := range cs {
		c.micro += micro
		c.holds++
		if limits[i] > 0 && (left < 0 || limits[i]-c.micro < left) {
			left = max(limits[i]-c.micro, 0)
		}
	}
	return &hold{day: cs[0], month: cs[1], org: cs[2], micro: micro}, left, nil
}

// settle replaces a hold's reservation with what the request cost.
func (l *ledger) settle(h *hold, cost int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range [...]*counter{h.day, h.month, h.org} {
		c.micro += cost - h.micro
		c.holds--
	}
	h.micro = cost
}

// sweep forgets counters of past periods that no hold uses; a request of a
// past period is not admitted any more, and one settling later holds its
// counter itself. Run under l.mu.
func (l *ledger) sweep(now time.Time) {
	if now.Before(l.sweepAt) {
		return
	}
	l.sweepAt = now.Add(time.Hour)
	month, day := periods(now)
	for k, c := range l.counters {
		if c.holds == 0 && (k.month != month || k.day != 0 && k.day != day) {
			delete(l.counters, k)
		}
	}
}
