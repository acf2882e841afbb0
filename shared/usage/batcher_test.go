package usage

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// flakyMetering is a store.Metering that refuses Settle as unavailable
// while down, and keeps what it is given otherwise.
type flakyMetering struct {
	store.Metering
	mu      sync.Mutex
	down    bool
	calls   int
	largest int            // the most records in one call
	settled map[string]int // times each request id was stored
}

func (f *flakyMetering) Settle(_ context.Context, s []store.Settlement) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	f.largest = max(f.largest, len(s))
	if f.down {
		return kve.Errorf(kve.KindUnavailable, "store_unavailable", "the store is down")
	}
	for _, st := range s {
		f.settled[st.Usage.RequestID]++
	}
	return nil
}

func (f *flakyMetering) state() (calls, stored int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, len(f.settled)
}

// TestBatcher: records reach the store in batches without a goroutine
// woken per record, batchSize at most a call; while the store is down they
// are kept and retried, and each stored once when it is back; segments
// hear of their stored records; a full queue drops and counts.
func TestBatcher(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &flakyMetering{settled: map[string]int{}}
		var mu sync.Mutex
		segs := map[int]int{}
		b := newBatcher(st, slog.New(slog.NewTextHandler(io.Discard, nil)), func(seg, n int) {
			mu.Lock()
			segs[seg] += n
			mu.Unlock()
		})
		add := func(n, seg int) {
			for range n {
				b.add(batchItem{s: store.Settlement{Usage: kve.Usage{RequestID: kve.NewID(kve.PrefixRequest, time.Now())}}, seg: seg})
			}
		}

		add(100, 1)
		synctest.Wait()
		if calls, _ := st.state(); calls != 0 {
			t.Errorf("the store was called %d times before a batch was due", calls)
		}
		time.Sleep(batchEvery)
		synctest.Wait()
		if calls, stored := st.state(); calls != 1 || stored != 100 {
			t.Errorf("after one period: %d calls, %d stored; want 1 call with the 100", calls, stored)
		}

		add(batchSize, 2) // a full batch goes at once
		synctest.Wait()
		if _, stored := st.state(); stored != 100+batchSize {
			t.Errorf("a full batch was not stored at once: %d stored", stored)
		}

		st.mu.Lock()
		st.down = true
		st.mu.Unlock()
		add(50, 3)
		time.Sleep(3 * batchEvery)
		add(50, 3)
		st.mu.Lock()
		st.down = false
		st.mu.Unlock()
		time.Sleep(5 * time.Second) // the retries' backoff ends
		synctest.Wait()
		_, stored := st.state()
		if stored != 200+batchSize {
			t.Errorf("after the store came back: %d stored, want %d", stored, 200+batchSize)
		}
		for id, n := range st.settled {
			if n != 1 {
				t.Errorf("record %s stored %d times", id, n)
			}
		}
		mu.Lock()
		if segs[1] != 100 || segs[2] != batchSize || segs[3] != 100 {
			t.Errorf("segments told of %v stored records", segs)
		}
		mu.Unlock()

		// The store down for long: the batcher waits on its retries while
		// the queue fills; what does not fit is dropped from memory and
		// counted (the spool keeps it), the rest stored once it is back.
		st.mu.Lock()
		st.down = true
		st.mu.Unlock()
		const many = 2*queueSize + batchSize // the queue overfills, however much the batcher took first
		add(many, 0)
		if b.Dropped() == 0 {
			t.Errorf("nothing dropped with %d records queued on a store that is down", many)
		}
		st.mu.Lock()
		st.down = false
		st.mu.Unlock()
		b.Close()
		if _, stored := st.state(); int64(stored)+b.Dropped() != 200+batchSize+many {
			t.Errorf("after Close: %d stored, %d dropped, of %d", stored, b.Dropped(), 200+batchSize+many)
		}
		if st.largest > batchSize {
			t.Errorf("a store call of %d records, want at most %d", st.largest, batchSize)
		}
		dropped := b.Dropped()
		add(1, 0)
		if b.Dropped() != dropped+1 {
			t.Error("a record added after Close was not counted as dropped")
		}
	})
}
