package limits

import (
	"testing"
	"time"
)

func TestTokens(t *testing.T) {
	start := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	type step struct {
		at       time.Duration // after start
		spend    int64         // taken after the check
		ok       bool
		retryMin time.Duration // when refused
	}
	for _, tc := range []struct {
		name  string
		tpm   int
		steps []step
	}{
		{"unlimited", 0, []step{{0, 1 << 40, true, 0}, {0, 0, true, 0}}},
		{"a minute's worth at once", 6000, []step{{0, 6000, true, 0}, {0, 0, false, time.Millisecond}}},
		{"refills at the rate", 6000, []step{{0, 6000, true, 0}, {time.Second, 0, true, 0}}},
		// 3,000 in debt at 100 a second: 30 s to get back above zero.
		{"debt of one large request", 6000, []step{{0, 9000, true, 0}, {10 * time.Second, 0, false, 20 * time.Second}, {30*time.Second + time.Millisecond, 0, true, 0}}},
		{"never above a minute's worth", 60, []step{{0, 0, true, 0}, {time.Hour, 61, true, 0}, {time.Hour, 0, false, time.Second}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := NewTokens()
			for i, s := range tc.steps {
				now := start.Add(s.at)
				ok, wait := b.Allow("tok_1", tc.tpm, now)
				if ok != s.ok || !ok && (wait < s.retryMin || wait > s.retryMin+2*time.Second) {
					t.Fatalf("step %d: Allow = %v, retry after %v; want %v, about %v", i, ok, wait, s.ok, s.retryMin)
				}
				b.Spend("tok_1", tc.tpm, s.spend, now)
			}
		})
	}
}

func TestTokensForgetsIdle(t *testing.T) {
	start := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	b := NewTokens()
	b.Spend("tok_1", 60, 600, start) // 540 in debt: 9 minutes and a minute to refill
	b.Allow("tok_2", 60, start.Add(5*time.Minute))
	if _, ok := b.buckets["tok_1"]; !ok {
		t.Fatal("a bucket in debt was forgotten")
	}
	b.Allow("tok_2", 60, start.Add(11*time.Minute))
	if _, ok := b.buckets["tok_1"]; ok {
		t.Error("a full bucket is still kept")
	}
	if ok, _ := b.Allow("tok_1", 60, start.Add(11*time.Minute)); !ok {
		t.Error("a forgotten bucket starts full")
	}
}
