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
// states: one store, every request atomic. Histories it answers are
// linearizable by construction.
type refStore struct {
	buckets map[string]*refBucket
	nextID  int
}

type refBucket struct {
	versioning string
	keys       map[string][]version // newest first; id "" for null versions
}

func (r *refStore) apply(in Input) Output {
	b := r.buckets[in.Bucket]
	switch in.Op {
	case CreateBucket:
		if b != nil {
			return fail(BucketExists)
		}
		r.buckets[in.Bucket] = &refBucket{keys: map[string][]version{}}
		return ok
	case DeleteBucket:
		if b == nil {
			return fail(NoSuchBucket)
		}
		for _, vs := range b.keys {
			if len(vs) > 0 {
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
	nullID := ""
	if b.versioning != Unversioned {
		nullID = NullID
	}
	idOf := func(v version) string {
		if v.null {
			return nullID
		}
		return v.id
	}
	find := func(id string) int {
		return slices.IndexFunc(vs, func(v version) bool { return (id == NullID && v.null) || (!v.null && v.id == id) })
	}
	current := len(vs) > 0 && vs[0].value != ""
	write := func(value string) Output {
		v := version{value: value, null: b.versioning != Enabled}
		if !v.null {
			r.nextID++
			v.id = fmt.Sprintf("%012d", r.nextID)
		}
		nvs := []version{v}
		for _, o := range vs {
			if !(v.null && o.null) {
				nvs = append(nvs, o)
			}
		}
		b.keys[in.Key] = nvs
		return Output{VersionID: idOf(v), DeleteMarker: value == ""}
	}
	switch in.Op {
	case HeadBucket:
		return ok
	case GetVersioning:
		return versioning(b.versioning)
	case SetVersioning:
		b.versioning = in.Versioning
		return ok
	case Get:
		if in.VersionID == "" {
			if !current {
				return fail(NoSuchKey)
			}
			return got(vs[0].value, idOf(vs[0]))
		}
		i := find(in.VersionID)
		switch {
		case i < 0:
			return fail(NoSuchVersion)
		case vs[i].value == "":
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
		return write(in.Value)
	case Delete:
		if in.VersionID == "" && b.versioning != Unversioned {
			return write("")
		}
		id := in.VersionID
		if id == "" {
			id = NullID
		}
		i := find(id)
		if i < 0 {
			return ok
		}
		marker := vs[i].value == ""
		b.keys[in.Key] = slices.Delete(slices.Clone(vs), i, i+1)
		if in.VersionID == "" {
			return ok
		}
		return Output{DeleteMarker: marker}
	case List:
		out := Output{Objects: []Object{}}
		for _, k := range sortedKeys(b.keys) {
			if v := b.keys[k]; strings.HasPrefix(k, in.Prefix) && len(v) > 0 && v[0].value != "" {
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
				id := v.id
				if v.null {
					id = NullID
				}
				out.Versions = append(out.Versions, Version{Key: k, VersionID: id, Value: v.value, DeleteMarker: v.value == ""})
			}
		}
		return out
	}
	panic("unknown op " + in.Op)
}

func sortedKeys(m map[string][]version) []string {
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
// now and then, having taken effect or not.
func randomHistory(rng *rand.Rand, n, clients int) []porcupine.Operation {
	mix := &Mix{Buckets: []string{"b", "c"}, Churned: []string{"c"}, Keys: []string{"x/1", "x/2", "y/3"}, Prefixes: []string{"", "x/", "y/"}}
	store := &refStore{buckets: map[string]*refBucket{"b": {keys: map[string][]version{}}, "c": {keys: map[string][]version{}}}}
	busy := make([]int64, clients) // when each client is free again
	var history []porcupine.Operation
	for i := 0; len(history) < n; i++ {
		at := int64(10 * i) // the effect's point
		cl := rng.IntN(clients)
		if busy[cl] >= at {
			continue
		}
		in := mix.Next(rng, fmt.Sprintf("v%d", len(history)))
		in.Node = cl
		o := porcupine.Operation{ClientId: cl, Input: in, Call: max(busy[cl]+1, at-rng.Int64N(60)), Return: at + rng.Int64N(60)}
		busy[cl] = o.Return
		write := in.Op != Get && in.Op != List && in.Op != ListVersions && in.Op != HeadBucket && in.Op != GetVersioning
		var out Output
		if write && rng.IntN(50) == 0 {
			if rng.IntN(2) == 0 {
				store.apply(in)
			}
			out, o.Return = Output{Unknown: true}, Pending
		} else {
			out = store.apply(in)
		}
		mix.Learn(in, out)
		o.Output = out
		history = append(history, o)
	}
	return history
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
	model := Model.ToModel()
	for round := range 20 {
		h := randomHistory(rng, 300, 1+rng.IntN(8))
		if res, _ := porcupine.CheckOperationsVerbose(model, h, time.Minute); res != porcupine.Ok {
			t.Fatalf("round %d: a history of the reference store checks %s (seed %d)", round, res, seed)
		}
		var reads []int
		for i, o := range h {
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
		if res, _ := porcupine.CheckOperationsVerbose(model, h, time.Minute); res != porcupine.Illegal {
			t.Fatalf("round %d: a read of a value never written checks %s (seed %d)", round, res, seed)
		}
	}

	const long = 4000
	h := randomHistory(rng, long, 8)
	start := time.Now()
	res, _ := porcupine.CheckOperationsVerbose(model, h, time.Minute)
	t.Logf("%d operations of 8 clients checked in %v", long, time.Since(start).Round(time.Millisecond))
	if res != porcupine.Ok {
		t.Fatalf("a long history of the reference store checks %s (seed %d)", res, seed)
	}
}
