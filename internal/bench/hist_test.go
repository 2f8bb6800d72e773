package bench

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketsCoverRange(t *testing.T) {
	prevHi := int64(-1)
	for i := range numBuckets {
		lo, hi := bucketRange(i)
		if lo != prevHi+1 || hi < lo {
			t.Fatalf("bucket %d = [%d,%d], previous ended at %d", i, lo, hi, prevHi)
		}
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d = [%d,%d] but bucketOf gives %d, %d", i, lo, hi, bucketOf(lo), bucketOf(hi))
		}
		if lo >= subBuckets && float64(hi-lo+1)/float64(lo) > 1.0/32+1e-9 {
			t.Fatalf("bucket %d = [%d,%d] wider than 1/32 of its value", i, lo, hi)
		}
		prevHi = hi
	}
	if bucketOf(1<<62) != numBuckets-1 {
		t.Fatalf("huge value not clamped into the last bucket")
	}
}

func TestHistogramQuantiles(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	var h histogram
	var samples []int64
	for range 20000 {
		us := int64(r.ExpFloat64() * 5000) // exponential, mean 5 ms
		samples = append(samples, us)
		h.record(time.Duration(us) * time.Microsecond)
	}
	slices.Sort(samples)
	s := h.summary()
	if s.Count != int64(len(samples)) || s.Max != time.Duration(samples[len(samples)-1])*time.Microsecond {
		t.Fatalf("count/max = %d/%v; want %d/%dµs", s.Count, s.Max, len(samples), samples[len(samples)-1])
	}
	check := func(name string, got time.Duration, p float64) {
		want := samples[int(p*float64(len(samples)))-1]
		g := got.Microseconds()
		if d := float64(g-want) / float64(max(want, 1)); d > 0.04 || d < -0.04 {
			t.Errorf("%s = %dµs, exact %dµs (seed %d)", name, g, want, seed)
		}
	}
	check("p50", s.P50, 0.50)
	check("p90", s.P90, 0.90)
	check("p99", s.P99, 0.99)
	if !(s.P50 <= s.P90 && s.P90 <= s.P99 && s.P99 <= s.Max) {
		t.Errorf("quantiles out of order: %+v", s)
	}

	var merged histogram
	merged.mergeFrom(&h)
	merged.mergeFrom(&h)
	if m := merged.summary(); m.Count != 2*s.Count || m.P50 != s.P50 || m.Max != s.Max {
		t.Errorf("merged twice: %+v; single: %+v", m, s)
	}
}

func TestHistogramEmpty(t *testing.T) {
	var h histogram
	if s := h.summary(); s != (Latency{}) {
		t.Fatalf("empty summary = %+v", s)
	}
}
