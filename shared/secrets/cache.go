package secrets

import (
	"container/list"
	"context"
	"errors"
	"sync"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
)

// maxCacheEntries bounds a Cache. An execution environment serves a few
// organizations' keys; the bound only stops a flood of distinct names or
// versions from growing memory without limit.
const maxCacheEntries = 1024

// Cache is the proxy's per-execution-environment cache of real keys in front
// of a Store. Entries are keyed by (name, version): the proxy asks for the
// version stored on the token, so a rotation, which gives tokens a new
// version, misses the cache and takes effect on the very next request.
// Entries expire after the TTL; failures are never cached; concurrent misses
// for one key share one backend call; the oldest entries are dropped beyond
// 1024. A hit takes a read lock and does not allocate. Cache is safe for
// concurrent use.
type Cache struct {
	src Store
	ttl time.Duration
	now func() time.Time

	mu       sync.RWMutex
	entries  map[cacheKey]*cacheEntry
	order    list.List // of *cacheEntry, oldest fetch first, so also soonest expiry first
	inflight map[cacheKey]*flight
}

type cacheKey struct{ name, version string }

type cacheEntry struct {
	key     cacheKey
	value   kve.Secret
	expires time.Time
	elem    *list.Element
}

// flight is one backend call that concurrent misses wait for. Its fields are
// written before done is closed and read only after.
type flight struct {
	done      chan struct{}
	value     kve.Secret
	err       error
	abandoned bool // the caller that made the call gave up; its error is not the others'
}

// errFetchPanicked is what waiters see when the backend call panicked in the
// caller that made it.
var errFetchPanicked = errors.New("secret cache: backend call panicked")

// NewCache returns a cache over src whose entries live for ttl (0 disables
// caching but still merges concurrent misses). now is the clock; nil means
// time.Now.
func NewCache(src Store, ttl time.Duration, now func() time.Time) *Cache {
	if now == nil {
		now = time.Now
	}
	return &Cache{
		src:      src,
		ttl:      ttl,
		now:      now,
		entries:  map[cacheKey]*cacheEntry{},
		inflight: map[cacheKey]*flight{},
	}
}

// Value returns the given version of name ("" for the current one) from the
// cache, or from the store on a miss. A caller that gives up (ctx done) while
// waiting for another's call returns ctx's error; if the caller that made the
// call gives up, the others try again rather than inherit its cancellation.
func (c *Cache) Value(ctx context.Context, name, version string) (kve.Secret, error) {
	k := cacheKey{name, version}
	for {
		c.mu.RLock()
		e, ok := c.entries[k]
		if ok && c.now().Before(e.expires) {
			v := e.value
			c.mu.RUnlock()
			return v, nil
		}
		c.mu.RUnlock()

		c.mu.Lock()
		if e, ok := c.entries[k]; ok && c.now().Before(e.expires) {
			c.mu.Unlock()
			return e.value, nil // filled between the two locks
		}
		f, waiting := c.inflight[k]
		if !waiting {
			f = &flight{done: make(chan struct{})}
			c.inflight[k] = f
			c.mu.Unlock()
			c.fetch(ctx, k, f)
			return f.value, f.err
		}
		c.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		if !f.abandoned {
			return f.value, f.err
		}
	}
}

// fetch makes f's backend call and publishes its result, also when the call
// panics, so that no waiter blocks forever.
func (c *Cache) fetch(ctx context.Context, k cacheKey, f *flight) {
	f.err = errFetchPanicked
	defer func() {
		c.mu.Lock()
		delete(c.inflight, k)
		if f.err == nil {
			c.store(k, f.value)
		}
		c.mu.Unlock()
		close(f.done)
	}()
	f.value, f.err = c.src.Value(ctx, k.name, k.version)
	f.abandoned = f.err != nil && ctx.Err() != nil
}

// store adds or refreshes k and drops entries from the old end while they
// are expired or the cache is over its bound. Call with c.mu held.
func (c *Cache) store(k cacheKey, v kve.Secret) {
	if c.ttl <= 0 {
		return
	}
	now := c.now()
	if old, ok := c.entries[k]; ok {
		c.order.Remove(old.elem)
	}
	e := &cacheEntry{key: k, value: v, expires: now.Add(c.ttl)}
	e.elem = c.order.PushBack(e)
	c.entries[k] = e
	for front := c.order.Front(); front != nil; front = c.order.Front() {
		oldest := front.Value.(*cacheEntry)
		if len(c.entries) <= maxCacheEntries && now.Before(oldest.expires) {
			break
		}
		c.order.Remove(front)
		delete(c.entries, oldest.key)
	}
}
