package manage

import (
	"errors"
	"fmt"
	"math"
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

// wait returns how long key must wait before its next attempt; 0 means now.
func (t *throttle) wait(key string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	l, ok := t.m[key]
	if !ok {
		return 0
	}
	tokens := l.TokensAt(now)
	if tokens >= 1 {
		return 0
	}
	return time.Duration(math.Ceil((1 - tokens) / float64(t.limit) * float64(time.Second)))
}

// fail records a failed attempt by key.
func (t *throttle) fail(key string, now time.Time) {
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
	l.AllowN(now, 1)
}

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
