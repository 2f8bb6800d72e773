package lincheck

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

var randomSeed = flag.Uint64("lincheck.seed", 0, "seed of TestRandomHistories (0: from the clock)")

// refStore is a second, direct implementation of the semantics the model
// states: one store, every request atomic, and, like Redoubt, a write that
// straddled configuration changes ordered by the configuration it was
// issued under. Histories it answers are linearizable by construction.
type refStore struct {
	buckets map[string]*refBucket
	clock   int64 // version timestamps; IDs are their decimal digits
	made    int   // bucket incarnations
	below   int   // writes ordered below newer ones
}

type refBucket struct {
	incarnation int
	versioning  string
	epoch       int // configuration changes so far
	keys        map[string][]refVersion
}

// refVersion is a version as Redoubt keeps it: every one, null or not, has
// a timestamp, and the epoch of the configuration it was written under.
type refVersion struct {
	ts     int64
	value  string // "" for a delete marker
	null   bool
	epoch  int
	marker bool
}

// issued is where a request stood when it was issued: the incarnation of
// its bucket and that bucket's epoch.
type issued struct{ incarnation, epoch int }

func (r *refStore) at(bucket string) issued {
	if b := r.buckets[bucket]; b != nil {
		return issued{b.incarnation, b.epoch}
	}
	return issued{-1, 0}
}

func (r *refStore) apply(in Input, from issued) Output {
	b := r.buckets[in.Bucket]
	switch in.Op {
	case CreateBucket:
		if b != nil {
			return fail(BucketExists)
		}
		r.made++
		r.buckets[in.Bucket] = &refBucket{incarnation: r.made, keys: map[string][]refVersion{}}
		return ok
	case DeleteBucket:
		if b == nil {
			return fail(NoSuchBucket)
		}
		for _, vs := range b.keys {
			if len(vs) > 0 {
				b.epoch++ // refused, but frozen and released all the same
				return fail(BucketNotEmpty)
			}
		}
		delete(r.buckets, in.Bucket)
		return ok
	}
	if b == nil {
		return fail(NoSuchBucket)
	}
	vs := b.keys[in.Key]
	idOf := func(v refVersion, listed bool) string {
		switch {
		case v.null && (listed || b.versioning != Unversioned):
			return NullID
		case v.null:
			return ""
		}
		return fmt.Sprintf("%012d", v.ts)
	}
	find := func(id string) int {
		return slices.IndexFunc(vs, func(v refVersion) bool { return (id == NullID && v.null) || (!v.null && idOf(v, false) == id) })
	}
	current := len(vs) > 0 && !vs[0].marker
	write := func(value string, unconditional bool) Output {
		v := refVersion{value: value, marker: value == "", null: b.versioning != Enabled, epoch: b.epoch}
		r.clock += 1000
		v.ts = r.clock
		at := 0
		if unconditional && from.incarnation == b.incarnation && from.epoch < b.epoch && len(vs) > 0 {
			// Straddled: right below the versions of later epochs, if a
			// timestamp lies between, and for a null version if the
			// null version is not newer (Redoubt's placeBelow).
			hi := -1
			for hi+1 < len(vs) && vs[hi+1].epoch > from.epoch {
				hi++
			}
			nullNewer := false
			for _, o := range vs {
				if o.null && hi >= 0 && o.ts > vs[hi].ts-1 {
					nullNewer = true
				}
			}
			if hi >= 0 && (hi+1 == len(vs) || vs[hi+1].ts < vs[hi].ts-1) && !(v.null && nullNewer) {
				v.ts, at = vs[hi].ts-1, hi+1
				r.below++
			}
		}
		var nvs []refVersion
		for i, o := range vs {
			if i == at {
				nvs = append(nvs, v)
			}
			if !(v.null && o.null) {
				nvs = append(nvs, o)
			}
		}
		if at == len(vs) {
			nvs = append(nvs, v)
		}
		b.keys[in.Key] = nvs
		return Output{VersionID: idOf(v, false), DeleteMarker: v.marker}
	}
	switch in.Op {
	case HeadBucket:
		return ok
	case GetVersioning:
		return versioning(b.versioning)
	case SetVersioning:
		if b.versioning != in.Versioning {
			b.versioning = in.Versioning
			b.epoch++
		}
		return ok
	case Get:
		if in.VersionID == "" {
			if !current {
				return fail(NoSuchKey)
			}
			return got(vs[0].value, idOf(vs[0], false))
		}
		i := find(in.VersionID)
		switch {
		case i < 0:
			return fail(NoSuchVersion)
		case vs[i].marker:
			return fail(MethodNotAllowed)
		}
		return got(vs[i].value, in.VersionID)
	case Put, Create:
		switch {
		case in.Op == Create && current:
			return fail(PreconditionFailed)
		case in.IfMatch != "" && !current:
			return fail(NoSuchKey)
		case in.IfMatch != "" && vs[0].value != in.IfMatch:
			return fail(PreconditionFailed)
		}
		return write(in.Value, in.Op == Put && in.IfMatch == "")
	case Delete:
		if in.VersionID == "" && b.versioning != Unversioned {
			return write("", true)
		}
		id := in.VersionID
		if id == "" {
			id = NullID
		}
		i := find(id)
		if i < 0 {
			return ok
		}
		marker := vs[i].marker
		b.keys[in.Key] = slices.Delete(slices.Clone(vs), i, i+1)
		if in.VersionID == "" {
			return ok
		}
		return Output{DeleteMarker: marker}
	case List:
		out := Output{Objects: []Object{}}
		for _, k := range sortedKeys(b.keys) {
			if v := b.keys[k]; strings.HasPrefix(k, in.Prefix) && len(v) > 0 && !v[0].marker {
				out.Objects = append(out.Objects, Object{Key: k, Value: v[0].value})
			}
		}
		return out
	case ListVersions:
		out := Output{Versions: []Version{}}
		for _, k := range sortedKeys(b.keys) {
			if !strings.HasPrefix(k, in.Prefix) {
				continue
			}
			for _, v := range b.keys[k] {
				out.Versions = append(out.Versions, Version{Key: k, VersionID: idOf(v, true), Value: v.value, DeleteMarker: v.marker})
			}
		}
		return out
	}
	panic("unknown op " + in.Op)
}

func sortedKeys(m map[string][]refVersion) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// randomHistory has clients send n requests of a Mix to a refStore, each
// taking effect at a point inside its interval, with intervals of
// different clients overlapping; a write fails with an unknown outcome
// one in lost times, having taken effect or not. below is how many writes
// the store ordered below newer ones.
func randomHistory(rng *rand.Rand, n, clients, lost int) (history []porcupine.Operation, below int) {
	mix := &Mix{Buckets: []string{"b", "c"}, Churned: []string{"c"}, Keys: []string{"x/1", "x/2", "y/3"}, Prefixes: []string{"", "x/", "y/"}}
	store := &refStore{made: 2, buckets: map[string]*refBucket{
		"b": {incarnation: 1, keys: map[string][]refVersion{}},
		"c": {incarnation: 2, keys: map[string][]refVersion{}},
	}}
	// Where each bucket stood from each time on, to tell what a request
	// was issued under.
	type mark struct {
		at int64
		is issued
	}
	marks := map[string][]mark{"b": {{-1 << 62, store.at("b")}}, "c": {{-1 << 62, store.at("c")}}}
	issuedAt := func(bucket string, t int64) issued {
		ms := marks[bucket]
		for i := len(ms) - 1; i > 0; i-- {
			if ms[i].at <= t {
				return ms[i].is
			}
		}
		return ms[0].is
	}
	busy := make([]int64, clients) // when each client is free again
	for i := 0; len(history) < n; i++ {
		at := int64(10 * i) // the effect's point
		cl := rng.IntN(clients)
		if busy[cl] >= at {
			continue
		}
		in := mix.Next(rng, fmt.Sprintf("v%d", len(history)))
		in.Node = cl
		// Writes take longer, as in Redoubt, so that some straddle
		// configuration changes.
		o := porcupine.Operation{ClientId: cl, Input: in, Call: max(busy[cl]+1, at-rng.Int64N(60)), Return: at + rng.Int64N(60)}
		write := in.Op != Get && in.Op != List && in.Op != ListVersions && in.Op != HeadBucket && in.Op != GetVersioning
		if write {
			o.Call = max(busy[cl]+1, at-rng.Int64N(200))
		}
		busy[cl] = o.Return
		from := issuedAt(in.Bucket, o.Call)
		var out Output
		if write && rng.IntN(lost) == 0 {
			if rng.IntN(2) == 0 {
				store.apply(in, from)
			}
			out, o.Return = Output{Unknown: true}, Pending
		} else {
			out = store.apply(in, from)
		}
		if ms := marks[in.Bucket]; ms[len(ms)-1].is != store.at(in.Bucket) {
			marks[in.Bucket] = append(ms, mark{at, store.at(in.Bucket)})
		}
		mix.Learn(in, out)
		o.Output = out
		history = append(history, o)
	}
	return history, store.below
}

// TestRandomHistories checks histories of the reference store, which must
// be linearizable, and the same histories with one read's answer
// corrupted, which must not; and how long a long one takes.
func TestRandomHistories(t *testing.T) {
	seed := *randomSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -lincheck.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x11ca))
	for round := range 20 {
		h, _ := randomHistory(rng, 300, 1+rng.IntN(8), 50)
		if res, _ := decide(Start{}, h, time.Minute); res != porcupine.Ok {
			t.Fatalf("round %d: a history of the reference store checks %s (seed %d)", round, res, seed)
		}
		// A read early in the history: proving that no linearization
		// exists explores every order of what comes before it.
		var reads []int
		for i, o := range h[:len(h)/3] {
			if in, out := o.Input.(Input), o.Output.(Output); in.Op == Get && out.Err == "" && !out.Unknown {
				reads = append(reads, i)
			}
		}
		if len(reads) == 0 {
			continue
		}
		i := reads[rng.IntN(len(reads))]
		out := h[i].Output.(Output)
		out.Value = "never-written"
		h[i].Output = out
		if res, _ := decide(Start{}, h, time.Minute); res != porcupine.Illegal {
			t.Fatalf("round %d: a read of a value never written checks %s (seed %d)", round, res, seed)
		}
	}

	const long = 4000
	h, below := randomHistory(rng, long, 8, 100)
	start := time.Now()
	res, _ := decide(Start{}, h, time.Minute)
	t.Logf("%d operations of 8 clients, %d of them writes ordered below newer ones, checked in %v",
		long, below, time.Since(start).Round(time.Millisecond))
	if res != porcupine.Ok {
		t.Fatalf("a long history of the reference store checks %s (seed %d)", res, seed)
	}
}
