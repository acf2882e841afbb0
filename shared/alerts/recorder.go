package alerts

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
)

// Next is the recorder a Recorder passes every record on to (usage.Shared on
// Lambda, usage.Local in local mode): proxy.Recorder.
type Next interface {
	Record(ctx context.Context, u *kve.Usage)
}

// Recorder is the proxy's recorder with breach detection: it passes every
// usage record on to Next, and looks at it for breach events, which a
// Responder answers. The proxy calls it once the response is complete, so
// detection never sits before a client's byte; Queued does not even hold
// the request's goroutine.
type Recorder struct {
	next    Next
	det     *Detector
	resp    *Responder
	log     *slog.Logger
	timeout time.Duration

	// Queued only: records wait in queue under mu, so that recording wakes
	// no goroutine but the first of a batch's.
	mu      sync.Mutex
	queue   []kve.Usage
	queued  bool          // a Queued recorder
	closed  bool          // Close was called
	wake    chan struct{} // the queue was empty, or Close
	cut     chan struct{} // a batch is full, or Close: stop waiting for more
	done    chan struct{}
	dropped atomic.Int64
}

// Inline returns the Lambda recorder: it detects and responds while Next
// records, and returns when both are done, within timeout for its own
// part (an execution environment freezes once the invocation ends, so
// nothing may be left running). Its store calls run alongside the usage
// write the function makes anyway, not after it.
func Inline(next Next, d *Detector, resp *Responder, timeout time.Duration, log *slog.Logger) *Recorder {
	return &Recorder{next: next, det: d, resp: resp, timeout: timeout, log: log}
}

// Queued returns the local-mode recorder: records are handed to one
// goroutine that detects and responds in batches (a flood's events of one
// token and type become one store write per batch). Record never blocks:
// with the queue full a record is passed on but not examined, and counted
// in Dropped. Close stops it.
func Queued(next Next, d *Detector, resp *Responder, log *slog.Logger) *Recorder {
	r := &Recorder{next: next, det: d, resp: resp, log: log, timeout: 30 * time.Second, queued: true,
		wake: make(chan struct{}, 1), cut: make(chan struct{}, 1), done: make(chan struct{})}
	go r.run()
	return r
}

// Queue bounds. batchEvery adds at most that to the time to a first
// notification, far within SECURITY G8's 5 s.
const (
	queueSize  = 16384
	batchSize  = 1024
	batchEvery = 100 * time.Millisecond
)

// Record implements proxy.Recorder.
func (r *Recorder) Record(ctx context.Context, u *kve.Usage) {
	if r.queued {
		r.next.Record(ctx, u)
		r.mu.Lock()
		closed, full := r.closed, len(r.queue) >= queueSize
		if !closed && !full {
			r.queue = append(r.queue, *u)
			switch len(r.queue) {
			case 1:
				signal(r.wake)
			case batchSize:
				signal(r.cut)
			}
		}
		r.mu.Unlock()
		switch {
		case closed: // a stream that outlived shutdown: counted, not examined
			r.dropped.Add(1)
		case full:
			if n := r.dropped.Add(1); n&(n-1) == 0 { // log at 1, 2, 4, 8, …
				r.log.Error("breach detection skipped: queue full", "dropped", n)
			}
		}
		return
	}
	rec := *u // Next may change u (its cost) while detection reads the copy
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.timeout)
		defer cancel()
		r.respond(ctx, []kve.Usage{rec})
	}()
	r.next.Record(ctx, u)
	<-done
}

// Dropped returns how many records a Queued recorder could not examine.
func (r *Recorder) Dropped() int64 { return r.dropped.Load() }

// Close stops a Queued recorder after examining what is queued; it does
// nothing for an Inline one.
func (r *Recorder) Close() {
	if !r.queued {
		return
	}
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	signal(r.wake)
	signal(r.cut)
	<-r.done
}

// signal wakes the goroutine waiting on c, or leaves a wake for it.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (r *Recorder) run() {
	defer close(r.done)
	var batch []kve.Usage
	timer := time.NewTimer(batchEvery)
	for {
		<-r.wake
		// Records arriving within batchEvery of the first are answered
		// together: a flood's events of one token and type cost one
		// incident write, its requests one counter write.
		timer.Reset(batchEvery)
		select {
		case <-timer.C:
		case <-r.cut:
			timer.Stop()
		}
		r.mu.Lock()
		batch, r.queue = r.queue, batch[:0]
		closed := r.closed
		r.mu.Unlock()
		for part := range slices.Chunk(batch, batchSize) {
			ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
			r.respond(ctx, part)
			cancel()
		}
		clear(batch)
		if closed {
			return
		}
	}
}

// groupKey is one incident's events within a batch.
type groupKey struct {
	org, token string
	typ        Type
}

// respond detects the breach events of records and answers them, one
// Responder call per (token, type).
func (r *Recorder) respond(ctx context.Context, recs []kve.Usage) {
	var order []groupKey
	groups := map[groupKey][]Event{}
	for _, ev := range r.det.DetectAll(ctx, recs) {
		k := groupKey{ev.OrgID, ev.TokenID, ev.Type}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], ev)
	}
	for _, k := range order {
		if err := r.resp.Handle(ctx, groups[k]); err != nil {
			r.log.ErrorContext(ctx, "breach alert failed", "org_id", k.org, "token_id", k.token,
				"type", string(k.typ), "events", len(groups[k]), "err", err)
		}
	}
}
