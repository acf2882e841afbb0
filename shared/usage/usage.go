// Package usage meters what kve's tokens cost: it prices usage records
// (an embedded, dated price list with per-organization overrides), admits
// requests against rate limits and budgets before the proxy forwards them
// (proxy.Meter), and settles their records in the store with the counters
// and daily rollups budgets and reports read.
//
// Two meters, one per deployment shape:
//   - Local, for local mode: one process, so budgets and tokens per minute
//     live in memory, records go to the store in batches, and a spool
//     (a line is a copy into a memory-mapped file) keeps every hold and
//     record across a kill.
//   - Shared, for Lambda: every hold and settlement is one DynamoDB
//     transaction (store.Holds), so limits hold across concurrent
//     execution environments, and holds a dead environment left behind are
//     settled by whoever finds them stale (Reconcile).
//
// See README.md for how each guarantee is kept and measured.
package usage

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// writeRetrying settles, retrying unavailable-kind failures with backoff
// until ctx ends. Records are idempotent by request id, so a retry after an
// ambiguous failure cannot count twice.
func writeRetrying(ctx context.Context, st store.Metering, batch []store.Settlement) error {
	backoff := 50 * time.Millisecond
	for {
		err := st.Settle(ctx, batch)
		if err == nil || kve.KindOf(err) != kve.KindUnavailable {
			return err
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		backoff = min(backoff*2, time.Second)
	}
}

// Batcher settles records in the store in batches from one goroutine, so
// recording never waits on the store. Records wait in a queue under a
// mutex: adding one wakes no goroutine (the batcher wakes every batchEvery,
// or when a batch is full). A batch the store refuses is kept and tried
// again (the spool has it in any case); Close flushes what is queued.
type Batcher struct {
	st       store.Metering
	log      *slog.Logger
	onStored func(seg, n int) // records of a spool segment are in the store
	wake     chan struct{}    // a batch is full, or Close was called
	done     chan struct{}
	dropped  atomic.Int64

	mu     sync.Mutex
	queue  []batchItem
	closed bool
}

// batchItem is a record and the spool segment it is in (0: none).
type batchItem struct {
	s   store.Settlement
	seg int
}

// Batching bounds. The spool keeps every record across a kill, so batches
// can be large: the embedded store pays per commit as much as per record.
const (
	batchSize   = 4096
	batchEvery  = 250 * time.Millisecond
	queueSize   = 16384
	maxBacklog  = 4 * batchSize // records kept while the store refuses them
	maxAttempts = 20            // a batch failing otherwise than unavailable is dropped after these
)

func newBatcher(st store.Metering, log *slog.Logger, onStored func(seg, n int)) *Batcher {
	b := &Batcher{st: st, log: log, onStored: onStored, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go b.run()
	return b
}

// add queues a record without blocking: with the queue full (the store
// down for long) the record is dropped from memory, counted and logged; its
// spool line stores it on the next start.
func (b *Batcher) add(it batchItem) {
	b.mu.Lock()
	closed, full := b.closed, len(b.queue) >= queueSize
	if !closed && !full {
		b.queue = append(b.queue, it)
		if len(b.queue) == batchSize {
			b.signal()
		}
	}
	b.mu.Unlock()
	switch {
	case closed:
		b.dropped.Add(1) // counted like a full queue
	case full:
		b.dropped.Add(1)
		b.log.Error("usage_queue_full", "request_id", it.s.Usage.RequestID, "token_id", it.s.Usage.TokenID)
	}
}

func (b *Batcher) signal() {
	select {
	case b.wake <- struct{}{}:
	default: // a wake is pending already
	}
}

// Dropped returns how many records were dropped from memory.
func (b *Batcher) Dropped() int64 { return b.dropped.Load() }

// Close stops accepting records and stores the queued ones.
func (b *Batcher) Close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.signal()
	<-b.done
}

func (b *Batcher) run() {
	defer close(b.done)
	var batch, spare []batchItem       // spare: the queue's next backing array
	var settlements []store.Settlement // the store's copy of batch, kept between batches
	tick := time.NewTicker(batchEvery)
	defer tick.Stop()
	failures := 0
	// flush stores batch batchSize records at a time, a store call each
	// within timeout. A part the store refuses stays, with what follows,
	// for the next flush (maxBacklog records at most, the oldest dropped
	// past it); one refused otherwise than unavailable maxAttempts times is
	// dropped.
	flush := func(timeout time.Duration) {
		done := 0 // records of batch stored or dropped
		defer func() {
			n := copy(batch, batch[done:])
			clear(batch[n:]) // let the records' strings go
			batch = batch[:n]
		}()
		for done < len(batch) {
			part := batch[done:min(done+batchSize, len(batch))]
			settlements = settlements[:0]
			for i := range part {
				settlements = append(settlements, part[i].s)
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			err := writeRetrying(ctx, b.st, settlements)
			cancel()
			clear(settlements)
			switch {
			case err != nil:
				failures++
				b.log.Error("usage_store_failed", "records", len(part), "attempt", failures, "err", err)
				if kve.KindOf(err) == kve.KindUnavailable || failures < maxAttempts {
					if over := len(batch) - done - maxBacklog; over > 0 {
						b.dropped.Add(int64(over))
						done += over
					}
					return
				}
				b.dropped.Add(int64(len(part)))
			case b.onStored != nil:
				segs := map[int]int{}
				for _, it := range part {
					if it.seg != 0 {
						segs[it.seg]++
					}
				}
				for seg, n := range segs {
					b.onStored(seg, n)
				}
			}
			failures = 0
			done += len(part)
		}
	}
	for {
		select {
		case <-b.wake:
		case <-tick.C:
		}
		b.mu.Lock()
		taken, closed := b.queue, b.closed
		b.queue = spare[:0]
		b.mu.Unlock()
		if len(batch) == 0 {
			batch, spare = taken, batch // the usual case: no backlog, no copy
		} else {
			batch = append(batch, taken...)
			clear(taken)
			spare = taken
		}
		if closed {
			flush(30 * time.Second)
			return
		}
		flush(5 * time.Second)
	}
}
