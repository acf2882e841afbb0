// Package usage turns the proxy's usage records into stored records and
// spend: it prices each record and writes it, synchronously on Lambda (an
// execution environment freezes once the response ends) or through a
// batching queue in local mode.
package usage

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
)

// Writer stores records; store.Store satisfies it.
type Writer interface {
	RecordUsage(ctx context.Context, records []kve.Usage) error
}

// Sync prices and writes each record before returning, retrying a store
// that is briefly unavailable. It is the Lambda recorder: the proxy calls it
// after the response is complete, while the invocation is still running.
type Sync struct {
	w       Writer
	prices  *Prices
	log     *slog.Logger
	timeout time.Duration
}

// NewSync returns a synchronous recorder.
func NewSync(w Writer, prices *Prices, log *slog.Logger) *Sync {
	return &Sync{w: w, prices: prices, log: log, timeout: 3 * time.Second}
}

// Record implements proxy.Recorder.
func (s *Sync) Record(ctx context.Context, u *kve.Usage) {
	u.CostMicro = s.prices.Cost(u)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	defer cancel()
	if err := writeRetrying(ctx, s.w, []kve.Usage{*u}); err != nil {
		s.log.Error("usage lost", "request_id", u.RequestID, "token_id", u.TokenID, "err", err)
	}
}

// writeRetrying writes, retrying unavailable-kind failures with backoff
// until ctx ends. Records are idempotent by request id, so a retry after an
// ambiguous failure cannot count twice.
func writeRetrying(ctx context.Context, w Writer, recs []kve.Usage) error {
	backoff := 50 * time.Millisecond
	for {
		err := w.RecordUsage(ctx, recs)
		if err == nil || kve.KindOf(err) != kve.KindUnavailable {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, time.Second)
	}
}

// Batcher queues records and writes them in batches from one goroutine, so
// recording never waits on the store. Close flushes what is queued.
type Batcher struct {
	w      Writer
	prices *Prices
	log    *slog.Logger
	in     chan kve.Usage
	done   chan struct{}
	once   sync.Once

	mu      sync.Mutex
	dropped int64
}

// Batching bounds.
const (
	batchSize  = 256
	batchEvery = 100 * time.Millisecond
	queueSize  = 16384
)

// NewBatcher starts a batching recorder.
func NewBatcher(w Writer, prices *Prices, log *slog.Logger) *Batcher {
	b := &Batcher{w: w, prices: prices, log: log, in: make(chan kve.Usage, queueSize), done: make(chan struct{})}
	go b.run()
	return b
}

// Record implements proxy.Recorder. It never blocks: with the queue full
// (the store down for long) the record is dropped, counted and logged.
func (b *Batcher) Record(_ context.Context, u *kve.Usage) {
	u.CostMicro = b.prices.Cost(u)
	select {
	case b.in <- *u:
	default:
		b.mu.Lock()
		b.dropped++
		b.mu.Unlock()
		b.log.Error("usage dropped: queue full", "request_id", u.RequestID, "token_id", u.TokenID)
	}
}

// Dropped returns how many records were dropped.
func (b *Batcher) Dropped() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dropped
}

// Close stops accepting records and writes the queued ones.
func (b *Batcher) Close() {
	b.once.Do(func() { close(b.in) })
	<-b.done
}

func (b *Batcher) run() {
	defer close(b.done)
	batch := make([]kve.Usage, 0, batchSize)
	tick := time.NewTicker(batchEvery)
	defer tick.Stop()
	flush := func() {
		if len(batch) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := writeRetrying(ctx, b.w, batch); err != nil {
			b.log.Error("usage lost", "records", len(batch), "err", err)
		}
		cancel()
		batch = batch[:0]
	}
	for {
		select {
		case u, ok := <-b.in:
			if !ok {
				flush()
				return
			}
			if batch = append(batch, u); len(batch) == batchSize {
				flush()
			}
		case <-tick.C:
			flush()
		}
	}
}
