package loadbench

import (
	"math/bits"
	"time"
)

// Histogram counts durations in log-linear buckets: exact below 64 ns, then
// 64 buckets per power of two, so a quantile it reports is within 1/128
// (0.8 %) of the true one. Recording does not allocate; the zero value is
// ready. It is not safe for concurrent use: each connection of the load
// generator keeps its own and they are merged at the end.
type Histogram struct {
	counts [subBuckets * 58]uint64 // up to 2^63 ns
	n      uint64
	sum    time.Duration
	max    time.Duration
}

const (
	subBits    = 6
	subBuckets = 1 << subBits
)

// bucket returns the index of the bucket holding v (ns, v ≥ 0).
func bucket(v uint64) int {
	if v < subBuckets {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1 // v>>shift is in [64, 128)
	return (shift+1)*subBuckets + int(v>>shift) - subBuckets
}

// bounds returns the smallest and largest value bucket i holds.
func bounds(i int) (lo, hi uint64) {
	if i < subBuckets {
		return uint64(i), uint64(i)
	}
	shift := i/subBuckets - 1
	lo = uint64(i%subBuckets+subBuckets) << shift
	return lo, lo + 1<<shift - 1
}

// Record counts one duration; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	d = max(d, 0)
	h.counts[bucket(uint64(d))]++
	h.n++
	h.sum += d
	h.max = max(h.max, d)
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// Count returns how many durations were recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Quantile returns the q-quantile (0 ≤ q ≤ 1): the midpoint of the bucket
// that holds the ⌈q·n⌉-th smallest duration, never above the maximum.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		if seen += c; seen >= rank {
			lo, hi := bounds(i)
			return min(time.Duration(lo+(hi-lo)/2), h.max)
		}
	}
	return h.max
}

// Summary is a histogram's figures in microseconds, for reports.
type Summary struct {
	N    uint64  `json:"n"`
	Mean float64 `json:"mean_us"`
	P50  float64 `json:"p50_us"`
	P90  float64 `json:"p90_us"`
	P99  float64 `json:"p99_us"`
	P999 float64 `json:"p999_us"`
	Max  float64 `json:"max_us"`
}

// Summary returns h's figures.
func (h *Histogram) Summary() Summary {
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	s := Summary{N: h.n, P50: us(h.Quantile(0.5)), P90: us(h.Quantile(0.9)), P99: us(h.Quantile(0.99)),
		P999: us(h.Quantile(0.999)), Max: us(h.max)}
	if h.n > 0 {
		s.Mean = us(h.sum / time.Duration(h.n))
	}
	return s
}
