// Package limits enforces per-token rates inside one process (local mode,
// and a first line on each Lambda execution environment, where the shared
// windows are DynamoDB's: see store.Holds). Requests per minute: a GCRA
// limiter per token (golang.org/x/time/rate), so a token with a limit of N
// may burst to N, then refills at N per minute. Model tokens per minute:
// Tokens, a bucket charged once a request's size is known.
package limits

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/keyvault-edge/kve/shared/kve"
)

// Memory is an in-process rate limiter, safe for concurrent use.
type Memory struct {
	mu       sync.Mutex
	limiters map[string]*entry
	sweepAt  time.Time
}

type entry struct {
	lim  *rate.Limiter
	rpm  int
	seen time.Time
}

// NewMemory returns an empty limiter.
func NewMemory() *Memory { return &Memory{limiters: map[string]*entry{}} }

// Allow takes one request from the token's allowance at now. When the
// allowance is spent it says how long until the next request would pass.
func (m *Memory) Allow(_ context.Context, t *kve.Token, now time.Time) (bool, time.Duration, error) {
	rpm := t.Policy.RPM
	if rpm <= 0 {
		return true, 0, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.limiters[t.ID]
	if e == nil || e.rpm != rpm { // a changed limit starts afresh
		e = &entry{lim: rate.NewLimiter(rate.Limit(float64(rpm)/60), rpm), rpm: rpm}
		m.limiters[t.ID] = e
	}
	e.seen = now
	m.sweep(now)
	r := e.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d, nil
	}
	return true, 0, nil
}

// sweep forgets limiters idle for ten minutes (they are full again by then),
// so memory stays bounded by the tokens in recent use.
func (m *Memory) sweep(now time.Time) {
	if now.Before(m.sweepAt) {
		return
	}
	m.sweepAt = now.Add(time.Minute)
	for id, e := range m.limiters {
		if now.Sub(e.seen) > 10*time.Minute {
			delete(m.limiters, id)
		}
	}
}
