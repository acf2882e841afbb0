package manage

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/keyvault-edge/kve/shared/kve"
)

// throttle counts failures per key (an account, a client IP) in memory: n
// failures per window, refilled steadily. In Lambda each execution environment
// counts on its own, which still caps a single client's guessing rate per
// environment.
type throttle struct {
	limit rate.Limit
	burst int

	mu sync.Mutex
	m  map[string]*rate.Limiter
}

// pruneAt is the map size at which limiters that have refilled completely
// (and so hold no information) are dropped.
const pruneAt = 10_000

func newThrottle(n int, window time.Duration) *throttle {
	return &throttle{limit: rate.Limit(float64(n) / window.Seconds()), burst: n, m: map[string]*rate.Limiter{}}
}

// take reserves one attempt by key at now, counted as a failure unless it
// is given back (tries.forgive) when the attempt succeeds. Reserving before
// the attempt, not recording after it, is what holds under concurrency: 200
// parallel guesses cannot all pass a check made before any of them failed
// (SECURITY T34). When no attempt is left it reserves nothing and says how
// long to wait.
func (t *throttle) take(key string, now time.Time) (*rate.Reservation, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	l, ok := t.m[key]
	if !ok {
		if len(t.m) >= pruneAt {
			t.prune(now)
		}
		l = rate.NewLimiter(t.limit, t.burst)
		t.m[key] = l
	}
	r := l.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return nil, d
	}
	return r, 0
}

// tries are the attempts one request reserved.
type tries []*rate.Reservation

// forgive gives the attempts back: the request succeeded.
func (ts tries) forgive(now time.Time) {
	for _, r := range ts {
		r.CancelAt(now)
	}
}

// attempt reserves one attempt per (throttle, key) pair. If any pair has
// none left, the others are given back and the longest wait is returned.
func attempt(now time.Time, pairs ...keyed) (tries, time.Duration) {
	var ts tries
	var wait time.Duration
	for _, p := range pairs {
		r, d := p.t.take(p.key, now)
		if r != nil {
			ts = append(ts, r)
		}
		wait = max(wait, d)
	}
	if wait > 0 {
		ts.forgive(now)
		return nil, wait
	}
	return ts, 0
}

// keyed pairs a throttle with the key it counts.
type keyed struct {
	t   *throttle
	key string
}

func (t *throttle) of(key string) keyed { return keyed{t, key} }

func (t *throttle) prune(now time.Time) {
	for k, l := range t.m {
		if l.TokensAt(now) >= float64(t.burst) {
			delete(t.m, k)
		}
	}
}

// RetryError is the cause of a KindRateLimited error from the Service: how
// long the caller should wait, for a Retry-After header.
type RetryError struct{ After time.Duration }

func (e *RetryError) Error() string { return fmt.Sprintf("retry after %s", e.After) }

// RetryAfter returns how long a rate-limited caller should wait, if err says.
func RetryAfter(err error) (time.Duration, bool) {
	var r *RetryError
	if errors.As(err, &r) {
		return r.After, true
	}
	return 0, false
}

func rateLimited(after time.Duration) error {
	return kve.Wrap(kve.KindRateLimited, "rate_limited", "too many failed attempts, try again later", &RetryError{After: after})
}
