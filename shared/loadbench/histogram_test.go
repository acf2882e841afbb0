package loadbench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestBucketBounds: every value falls in a bucket whose bounds hold it, and
// buckets are ordered and no wider than 1/64 of their lower bound.
func TestBucketBounds(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	values := []uint64{0, 1, 63, 64, 65, 127, 128, 129, 1 << 20, 1<<20 + 1, 1<<63 - 1}
	for range 10000 {
		values = append(values, r.Uint64N(1<<40))
	}
	for _, v := range values {
		i := bucket(v)
		lo, hi := bounds(i)
		if v < lo || v > hi {
			t.Fatalf("value %d in bucket %d = [%d, %d]", v, i, lo, hi)
		}
		if i >= len(Histogram{}.counts) {
			t.Fatalf("value %d: bucket %d out of range", v, i)
		}
		if lo >= subBuckets && float64(hi-lo+1) > float64(lo)/subBuckets {
			t.Fatalf("bucket %d = [%d, %d] wider than 1/64 of its start", i, lo, hi)
		}
	}
	for i := 1; i < 2000; i++ {
		_, prevHi := bounds(i - 1)
		if lo, _ := bounds(i); lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, previous ends at %d", i, lo, prevHi)
		}
	}
}

// TestQuantiles: the histogram's quantiles are within 1 % of the exact
// ones, on a merge of two halves as the load generator does it.
func TestQuantiles(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var a, b Histogram
	var all []time.Duration
	for i := range 100000 {
		// Log-normal around 400 µs, like proxied latencies.
		d := time.Duration(400e3 * math.Exp(r.NormFloat64()*0.8))
		all = append(all, d)
		if i%2 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	a.Merge(&b)
	slices.Sort(all)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := all[int(math.Ceil(q*float64(len(all))))-1]
		got := a.Quantile(q)
		if rel := math.Abs(float64(got-exact)) / float64(exact); rel > 0.01 {
			t.Errorf("q%.3f = %v, exact %v (%.2f %% off)", q, got, exact, 100*rel)
		}
	}
	if a.Count() != uint64(len(all)) || a.Quantile(1) != all[len(all)-1] {
		t.Errorf("count %d, max %v; want %d, %v", a.Count(), a.Quantile(1), len(all), all[len(all)-1])
	}
}

func TestSummary(t *testing.T) {
	var h Histogram
	if s := h.Summary(); s != (Summary{}) {
		t.Errorf("empty histogram: %+v", s)
	}
	for _, d := range []time.Duration{10 * time.Microsecond, 20 * time.Microsecond, 30 * time.Microsecond, -time.Second} {
		h.Record(d)
	}
	s := h.Summary()
	if s.N != 4 || s.Mean != 15 || s.Max != 30 || s.P50 < 9.9 || s.P50 > 10.1 {
		t.Errorf("summary %+v: want n 4, mean 15 µs, max 30 µs, p50 10 µs", s)
	}
}
