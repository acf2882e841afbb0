package limits

import (
	"sync"
	"time"
)

// Tokens keeps, inside one process, each kve token's allowance of model
// tokens per minute: a bucket that holds at most a minute's worth and
// refills at that rate. A request's size is known only once it completed,
// so a request is admitted while the bucket is not in debt and its tokens
// are taken afterwards, which may put the bucket into debt: concurrent
// requests can overshoot the limit by their own sizes, after which the
// token waits until the debt is paid back.
type Tokens struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	sweepAt time.Time
}

type bucket struct {
	level float64 // tokens available; negative: debt
	at    time.Time
	tpm   int
}

// NewTokens returns empty allowances.
func NewTokens() *Tokens { return &Tokens{buckets: map[string]*bucket{}} }

// Allow reports whether the token id, limited to tpm tokens per minute,
// may make a request at now, and if not, how long until it may.
func (t *Tokens) Allow(id string, tpm int, now time.Time) (bool, time.Duration) {
	if tpm <= 0 {
		return true, 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.refill(id, tpm, now)
	if b.level > 0 {
		return true, 0
	}
	perSecond := float64(tpm) / 60
	return false, time.Duration((-b.level+1)/perSecond*float64(time.Second)) + time.Millisecond
}

// Spend takes n tokens of a completed request from the allowance.
func (t *Tokens) Spend(id string, tpm int, n int64, now time.Time) {
	if tpm <= 0 || n <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.refill(id, tpm, now)
	b.level -= float64(n)
}

// refill brings the bucket of id up to now; a changed limit starts afresh.
func (t *Tokens) refill(id string, tpm int, now time.Time) *bucket {
	t.sweep(now)
	b := t.buckets[id]
	if b == nil || b.tpm != tpm {
		b = &bucket{level: float64(tpm), at: now, tpm: tpm}
		t.buckets[id] = b
		return b
	}
	if d := now.Sub(b.at); d > 0 {
		b.level = min(float64(tpm), b.level+d.Seconds()*float64(tpm)/60)
		b.at = now
	}
	return b
}

// sweep forgets buckets that would be full again, so memory stays bounded
// by the tokens in recent use.
func (t *Tokens) sweep(now time.Time) {
	if now.Before(t.sweepAt) {
		return
	}
	t.sweepAt = now.Add(time.Minute)
	for id, b := range t.buckets {
		debt := max(0, -b.level)
		full := time.Duration((debt + float64(b.tpm)) / float64(b.tpm) * float64(time.Minute))
		if now.Sub(b.at) > full {
			delete(t.buckets, id)
		}
	}
}
