package alerts

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
)

// counting is the next recorder: it counts what it is passed and sets the
// cost, as usage's recorders do.
type counting struct{ n atomic.Int64 }

func (c *counting) Record(_ context.Context, u *kve.Usage) {
	c.n.Add(1)
	u.CostMicro = 42
}

// TestQueuedFlood (SECURITY T18): 10,000 refused requests on one token,
// recorded from many goroutines, become one incident counting all of
// them and one notification; every record reaches the next recorder.
func TestQueuedFlood(t *testing.T) {
	e := newEnv(t)
	pub := &published{}
	next := &counting{}
	r := Queued(next, e.detector(func(c *DetectorConfig) { c.FlushEvery = 10 }), e.responder(pub), e.log)
	tok := e.token(kve.EnvPrd)
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			for range 1000 {
				u := e.usage(tok, "origin", func(u *kve.Usage) { u.Origin = "https://evil.example" })
				r.Record(e.ctx, &u)
			}
		})
	}
	wg.Wait()
	r.Close()
	if next.n.Load() != 10_000 || r.Dropped() != 0 {
		t.Errorf("next recorder got %d records, %d dropped; want 10000, 0", next.n.Load(), r.Dropped())
	}
	if inc := e.incident(tok, OriginNotAllowed); inc.Count != 10_000 {
		t.Errorf("incident count %d, want 10000", inc.Count)
	}
	// The flood is also a usage spike: one notification of each type.
	byType := map[Type]int{}
	for _, n := range pub.all() {
		byType[n.Type]++
	}
	if byType[OriginNotAllowed] != 1 || byType[UsageSpike] != 1 || len(byType) != 2 {
		t.Errorf("notifications by type %v, want one origin_not_allowed and one usage_spike", byType)
	}
}

// blocking is a publisher that holds every call until released.
type blocking struct {
	release chan struct{}
	calls   atomic.Int64
}

func (b *blocking) Publish(ctx context.Context, _ Notification) error {
	b.calls.Add(1)
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	return nil
}

// TestQueuedNeverBlocks: with the channel stuck, Record still returns at
// once: detection never delays a response. Past the queue's capacity,
// records are passed on and counted as not examined.
func TestQueuedNeverBlocks(t *testing.T) {
	e := newEnv(t)
	pub := &blocking{release: make(chan struct{})}
	next := &counting{}
	r := Queued(next, e.detector(), e.responder(pub), e.log)
	tok := e.token(kve.EnvPrd)
	total := 2*queueSize + 100 // whatever the first batch took, the rest overfills the queue
	for range total {
		u := e.usage(tok, "revoked")
		r.Record(e.ctx, &u)
	}
	if next.n.Load() != int64(total) {
		t.Errorf("next recorder got %d of %d records", next.n.Load(), total)
	}
	if r.Dropped() == 0 {
		t.Error("no record dropped with the responder stuck and the queue over full")
	}
	close(pub.release)
	r.Close()
	if pub.calls.Load() != 1 {
		t.Errorf("%d publishes, want 1", pub.calls.Load())
	}
}

// TestInline: the Lambda recorder has answered the record (incident
// written) when Record returns, and the next recorder still set the cost
// on the caller's record.
func TestInline(t *testing.T) {
	e := newEnv(t)
	pub := &published{}
	next := &counting{}
	r := Inline(next, e.detector(), e.responder(pub), 5*time.Second, e.log)
	tok := e.token(kve.EnvPrd)
	u := e.usage(tok, "revoked")
	r.Record(e.ctx, &u)
	if u.CostMicro != 42 || next.n.Load() != 1 {
		t.Errorf("next recorder: cost %d, %d records", u.CostMicro, next.n.Load())
	}
	if inc := e.incident(tok, RevokedTokenUsed); inc.Count != 1 || len(pub.all()) != 1 {
		t.Errorf("incident count %d, %d notifications", inc.Count, len(pub.all()))
	}
	r.Close() // nothing to stop
}
