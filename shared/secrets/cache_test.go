package secrets

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/kve"
)

// countingStore is the backend behind a Cache under test: a map of values by
// (name, version) that counts its calls and can hold them until released.
type countingStore struct {
	mu     sync.Mutex
	values map[cacheKey]kve.Secret
	calls  map[cacheKey]int
	gate   chan struct{} // when non-nil, Value waits for it (or ctx) first
}

func newCountingStore() *countingStore {
	return &countingStore{values: map[cacheKey]kve.Secret{}, calls: map[cacheKey]int{}}
}

func (s *countingStore) set(name, version string, v kve.Secret) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.values[cacheKey{name, version}] = v
}

func (s *countingStore) count(name, version string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[cacheKey{name, version}]
}

func (s *countingStore) Value(ctx context.Context, name, version string) (kve.Secret, error) {
	s.mu.Lock()
	s.calls[cacheKey{name, version}]++
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.values[cacheKey{name, version}]
	if !ok {
		return "", notFound(name, version)
	}
	return v, nil
}

func (s *countingStore) Put(context.Context, string, kve.Secret, map[string]string) (string, error) {
	return "", errors.New("countingStore: Put is not part of the cache's contract")
}

func (s *countingStore) Delete(context.Context, string) error {
	return errors.New("countingStore: Delete is not part of the cache's contract")
}

// clock is a settable now for caches under test.
type clock struct{ ns atomic.Int64 }

func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

const (
	cacheName = "kve/org_a/keys/key_a"
	ver1      = "11111111-1111-4111-8111-111111111111"
	ver2      = "22222222-2222-4222-8222-222222222222"
)

func wantCached(t *testing.T, c *Cache, name, version string, want kve.Secret) {
	t.Helper()
	got, err := c.Value(t.Context(), name, version)
	if err != nil {
		t.Fatalf("Value(%s, %q): %v", name, version, err)
	}
	if got.Reveal() != want.Reveal() {
		t.Fatalf("Value(%s, %q) = %q, want %q", name, version, got.Reveal(), want.Reveal())
	}
}

func TestCacheServesHitsWithoutTheStore(t *testing.T) {
	src := newCountingStore()
	src.set(cacheName, ver1, "sk-test-FAKE-v1")
	c := NewCache(src, 5*time.Minute, newClock().now)
	for range 3 {
		wantCached(t, c, cacheName, ver1, "sk-test-FAKE-v1")
	}
	if n := src.count(cacheName, ver1); n != 1 {
		t.Errorf("store called %d times, want 1", n)
	}
}

func TestCachePicksUpRotationAtOnce(t *testing.T) {
	src := newCountingStore()
	src.set(cacheName, ver1, "sk-test-FAKE-v1")
	c := NewCache(src, time.Hour, newClock().now)
	wantCached(t, c, cacheName, ver1, "sk-test-FAKE-v1")

	// Rotation: a new version, and tokens now name it. No time passes.
	src.set(cacheName, ver2, "sk-test-FAKE-v2")
	wantCached(t, c, cacheName, ver2, "sk-test-FAKE-v2")
	wantCached(t, c, cacheName, ver1, "sk-test-FAKE-v1") // a token not yet updated
	calls := map[string]int{ver1: src.count(cacheName, ver1), ver2: src.count(cacheName, ver2)}
	if diff := cmp.Diff(map[string]int{ver1: 1, ver2: 1}, calls); diff != "" {
		t.Errorf("store calls by version (-want +got):\n%s", diff)
	}
}

func TestCacheExpires(t *testing.T) {
	const ttl = 5 * time.Minute
	tests := []struct {
		name  string
		after time.Duration
		calls int
	}{
		{"just before the ttl", ttl - time.Nanosecond, 1},
		{"at the ttl", ttl, 2},
		{"long after", 10 * ttl, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newCountingStore()
			src.set(cacheName, ver1, "sk-test-FAKE-v1")
			clk := newClock()
			c := NewCache(src, ttl, clk.now)
			wantCached(t, c, cacheName, ver1, "sk-test-FAKE-v1")
			clk.advance(tt.after)
			wantCached(t, c, cacheName, ver1, "sk-test-FAKE-v1")
			if n := src.count(cacheName, ver1); n != tt.calls {
				t.Errorf("store called %d times, want %d", n, tt.calls)
			}
		})
	}
}

func TestCacheDoesNotCacheFailures(t *testing.T) {
	src := newCountingStore()
	c := NewCache(src, time.Hour, newClock().now)
	_, err := c.Value(t.Context(), cacheName, ver1)
	if kve.KindOf(err) != kve.KindNotFound {
		t.Fatalf("Value of a missing secret: got %v, want KindNotFound", err)
	}
	src.set(cacheName, ver1, "sk-test-FAKE-v1")
	wantCached(t, c, cacheName, ver1, "sk-test-FAKE-v1")
	if n := src.count(cacheName, ver1); n != 2 {
		t.Errorf("store called %d times, want 2 (the failure was not cached)", n)
	}
}

func TestCacheZeroTTLAlwaysAsks(t *testing.T) {
	src := newCountingStore()
	src.set(cacheName, "", "sk-test-FAKE-current")
	c := NewCache(src, 0, nil)
	for range 3 {
		wantCached(t, c, cacheName, "", "sk-test-FAKE-current")
	}
	if n := src.count(cacheName, ""); n != 3 {
		t.Errorf("store called %d times, want 3", n)
	}
}

func TestCacheIsBounded(t *testing.T) {
	src := newCountingStore()
	name := func(i int) string { return fmt.Sprintf("kve/org_a/keys/key_%04d", i) }
	for i := range maxCacheEntries + 1 {
		src.set(name(i), "", kve.Secret(fmt.Sprintf("sk-test-FAKE-%d", i)))
	}
	clk := newClock()
	c := NewCache(src, time.Hour, clk.now)
	for i := range maxCacheEntries + 1 {
		if _, err := c.Value(t.Context(), name(i), ""); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(c.entries); n != maxCacheEntries {
		t.Errorf("cache holds %d entries, want %d", n, maxCacheEntries)
	}
	wantCached(t, c, name(maxCacheEntries), "", kve.Secret(fmt.Sprintf("sk-test-FAKE-%d", maxCacheEntries)))
	wantCached(t, c, name(0), "", "sk-test-FAKE-0") // the oldest was evicted: a second call
	if got := []int{src.count(name(0), ""), src.count(name(maxCacheEntries), "")}; !cmp.Equal(got, []int{2, 1}) {
		t.Errorf("store calls for the oldest and newest = %v, want [2 1]", got)
	}

	// Once everything has expired, the next fill drops the dead entries.
	clk.advance(time.Hour)
	wantCached(t, c, name(1), "", "sk-test-FAKE-1")
	if n := len(c.entries); n != 1 {
		t.Errorf("after expiry the cache holds %d entries, want 1", n)
	}
}

func TestCacheMergesConcurrentMisses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newCountingStore()
		src.set(cacheName, ver1, "sk-test-FAKE-v1")
		src.gate = make(chan struct{})
		c := NewCache(src, time.Minute, nil)

		const n = 16
		got := make([]kve.Secret, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { got[i], errs[i] = c.Value(t.Context(), cacheName, ver1) })
		}
		synctest.Wait() // all n are blocked: one in the store, the rest on its flight
		if calls := src.count(cacheName, ver1); calls != 1 {
			t.Fatalf("%d store calls in flight, want 1", calls)
		}
		close(src.gate)
		wg.Wait()
		for i := range n {
			if errs[i] != nil || got[i].Reveal() != "sk-test-FAKE-v1" {
				t.Errorf("caller %d: %q, %v", i, got[i].Reveal(), errs[i])
			}
		}
		if calls := src.count(cacheName, ver1); calls != 1 {
			t.Errorf("store called %d times, want 1", calls)
		}
	})
}

func TestCacheWaiterMayGiveUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newCountingStore()
		src.set(cacheName, ver1, "sk-test-FAKE-v1")
		src.gate = make(chan struct{})
		c := NewCache(src, time.Minute, nil)

		var leaderErr error
		var wg sync.WaitGroup
		wg.Go(func() { _, leaderErr = c.Value(t.Context(), cacheName, ver1) })
		synctest.Wait()

		ctx, cancel := context.WithCancel(t.Context())
		var waiterErr error
		wg.Go(func() { _, waiterErr = c.Value(ctx, cacheName, ver1) })
		synctest.Wait()
		cancel()
		synctest.Wait()
		if !errors.Is(waiterErr, context.Canceled) {
			t.Errorf("waiter: got %v, want context.Canceled while the call is still in flight", waiterErr)
		}
		close(src.gate)
		wg.Wait()
		if leaderErr != nil {
			t.Errorf("leader: %v", leaderErr)
		}
	})
}

func TestCacheLeaderGivingUpDoesNotFailWaiters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newCountingStore()
		src.set(cacheName, ver1, "sk-test-FAKE-v1")
		src.gate = make(chan struct{})
		c := NewCache(src, time.Minute, nil)

		ctx, cancel := context.WithCancel(t.Context())
		var leaderErr, waiterErr error
		var got kve.Secret
		var wg sync.WaitGroup
		wg.Go(func() { _, leaderErr = c.Value(ctx, cacheName, ver1) })
		synctest.Wait()
		wg.Go(func() { got, waiterErr = c.Value(t.Context(), cacheName, ver1) })
		synctest.Wait()
		cancel() // the client behind the first request went away
		synctest.Wait()
		close(src.gate)
		wg.Wait()

		if !errors.Is(leaderErr, context.Canceled) {
			t.Errorf("leader: got %v, want context.Canceled", leaderErr)
		}
		if waiterErr != nil || got.Reveal() != "sk-test-FAKE-v1" {
			t.Errorf("waiter: %q, %v; want the value from its own call", got.Reveal(), waiterErr)
		}
		if calls := src.count(cacheName, ver1); calls != 2 {
			t.Errorf("store called %d times, want 2", calls)
		}
	})
}

func TestCacheHitDoesNotAllocate(t *testing.T) {
	src := newCountingStore()
	src.set(cacheName, ver1, "sk-test-FAKE-v1")
	c := NewCache(src, time.Hour, nil)
	ctx := t.Context()
	wantCached(t, c, cacheName, ver1, "sk-test-FAKE-v1")
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := c.Value(ctx, cacheName, ver1); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("a hit allocates %v times, want 0", allocs)
	}
}

// TestCacheConcurrentUse mixes hits, misses, expiry and eviction across
// goroutines; run it with -race.
func TestCacheConcurrentUse(t *testing.T) {
	src := newCountingStore()
	const names = 64
	for i := range names {
		for _, v := range []string{"", ver1} {
			src.set(fmt.Sprintf("kve/org_a/keys/key_%d", i), v, kve.Secret(fmt.Sprintf("sk-test-FAKE-%d-%s", i, v)))
		}
	}
	clk := newClock()
	c := NewCache(src, time.Second, clk.now)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for j := range 500 {
				i, v := (g*31+j)%names, []string{"", ver1}[j%2]
				if j%50 == 0 {
					clk.advance(300 * time.Millisecond)
				}
				got, err := c.Value(t.Context(), fmt.Sprintf("kve/org_a/keys/key_%d", i), v)
				if want := fmt.Sprintf("sk-test-FAKE-%d-%s", i, v); err != nil || got.Reveal() != want {
					t.Errorf("Value(%d, %q) = %q, %v; want %q", i, v, got.Reveal(), err, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkCacheHit(b *testing.B) {
	src := newCountingStore()
	src.set(cacheName, ver1, "sk-test-FAKE-v1")
	c := NewCache(src, time.Hour, nil)
	ctx := b.Context()
	if _, err := c.Value(ctx, cacheName, ver1); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Value(ctx, cacheName, ver1); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCacheHitParallel(b *testing.B) {
	src := newCountingStore()
	src.set(cacheName, ver1, "sk-test-FAKE-v1")
	c := NewCache(src, time.Hour, nil)
	ctx := b.Context()
	if _, err := c.Value(ctx, cacheName, ver1); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Value(ctx, cacheName, ver1); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
