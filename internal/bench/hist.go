package bench

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// The latency histogram is log-linear, in the manner of HDR histograms:
// values (microseconds) below subBuckets are counted exactly; above, each
// power of two is split into subBuckets/2 equal buckets, so a reported
// quantile is within 1/32 (about 3%) of the true value. Memory is fixed
// (about 9 KiB) whatever the run length or concurrency, and recording is
// one atomic add, so all workers share one histogram per operation.
const (
	subBucketBits = 6
	subBuckets    = 1 << subBucketBits // 64
	// maxExp bounds the tracked range at 2^40 µs (about 12 days); longer
	// values land in the last bucket.
	maxExp     = 40
	numBuckets = (maxExp - subBucketBits + 2) * (subBuckets / 2)
)

type histogram struct {
	counts [numBuckets]atomic.Int64
	n      atomic.Int64
	sumUS  atomic.Int64
	maxUS  atomic.Int64
}

func bucketOf(us int64) int {
	if us < subBuckets {
		return int(us)
	}
	// shift so that us>>shift falls in [subBuckets/2, subBuckets).
	shift := bits.Len64(uint64(us)) - subBucketBits
	i := subBuckets + (shift-1)*(subBuckets/2) + int(us>>shift) - subBuckets/2
	if i >= numBuckets {
		return numBuckets - 1
	}
	return i
}

// bucketRange returns the smallest and largest values counted in bucket i.
func bucketRange(i int) (lo, hi int64) {
	if i < subBuckets {
		return int64(i), int64(i)
	}
	j := i - subBuckets
	shift := j/(subBuckets/2) + 1
	lo = int64(j%(subBuckets/2)+subBuckets/2) << shift
	return lo, lo + 1<<shift - 1
}

func (h *histogram) record(d time.Duration) {
	us := d.Microseconds()
	if us < 0 {
		us = 0
	}
	h.counts[bucketOf(us)].Add(1)
	h.n.Add(1)
	h.sumUS.Add(us)
	for {
		m := h.maxUS.Load()
		if us <= m || h.maxUS.CompareAndSwap(m, us) {
			break
		}
	}
}

// Latency summarises a latency distribution.
type Latency struct {
	Count int64
	Mean  time.Duration
	P50   time.Duration
	P90   time.Duration
	P99   time.Duration
	Max   time.Duration
}

// summary must not race with record calls that should be included; it is
// exact about Count and Max and within a bucket's width about quantiles.
func (h *histogram) summary() Latency {
	var counts [numBuckets]int64
	var n int64
	for i := range counts {
		counts[i] = h.counts[i].Load()
		n += counts[i]
	}
	if n == 0 {
		return Latency{}
	}
	maxUS := h.maxUS.Load()
	q := func(p float64) time.Duration {
		rank := int64(p*float64(n) + 0.5)
		rank = max(1, min(rank, n))
		var seen int64
		for i, c := range counts {
			seen += c
			if seen >= rank {
				lo, hi := bucketRange(i)
				return time.Duration(min((lo+hi)/2, maxUS)) * time.Microsecond
			}
		}
		return time.Duration(maxUS) * time.Microsecond
	}
	return Latency{
		Count: n,
		Mean:  time.Duration(h.sumUS.Load()/n) * time.Microsecond,
		P50:   q(0.50),
		P90:   q(0.90),
		P99:   q(0.99),
		Max:   time.Duration(maxUS) * time.Microsecond,
	}
}

// mergeFrom adds o's counts into h. Neither may be recorded into meanwhile.
func (h *histogram) mergeFrom(o *histogram) {
	for i := range h.counts {
		h.counts[i].Add(o.counts[i].Load())
	}
	h.n.Add(o.n.Load())
	h.sumUS.Add(o.sumUS.Load())
	if m := o.maxUS.Load(); m > h.maxUS.Load() {
		h.maxUS.Store(m)
	}
}
