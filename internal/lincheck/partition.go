package lincheck

import (
	"slices"
	"strings"

	"github.com/anishathalye/porcupine"
)

// bucketOp reports whether op is a bucket operation, which every
// partition of its bucket sees.
func bucketOp(op string) bool {
	switch op {
	case CreateBucket, DeleteBucket, HeadBucket, SetVersioning, GetVersioning:
		return true
	}
	return false
}

// partition splits a history into one partition per (bucket, key) and one
// per bucket alone (key ""). Bucket operations go into every partition of
// their bucket; a listing goes into the bucket's own, answering for no
// key, and into the partition of every key under its prefix, answering
// for that key alone. The keys of a bucket are those its object requests
// name and its listings answer with. Writes are marked Straddles here.
func partition(history []porcupine.Operation) [][]porcupine.Operation {
	history = markStraddles(history)
	keys := map[string]map[string]bool{} // bucket -> keys
	note := func(bucket, key string) {
		if keys[bucket] == nil {
			keys[bucket] = map[string]bool{}
		}
		if key != "" {
			keys[bucket][key] = true
		}
	}
	for _, op := range history {
		in, out := op.Input.(Input), op.Output.(Output)
		switch {
		case in.Op == List:
			note(in.Bucket, "")
			for _, o := range out.Objects {
				note(in.Bucket, o.Key)
			}
		case in.Op == ListVersions:
			note(in.Bucket, "")
			for _, v := range out.Versions {
				note(in.Bucket, v.Key)
			}
		case bucketOp(in.Op):
			note(in.Bucket, "")
		default:
			note(in.Bucket, in.Key)
		}
	}

	type part struct{ bucket, key string }
	parts := map[part][]porcupine.Operation{}
	add := func(bucket, key string, op porcupine.Operation, in Input, out Output) {
		in.Key = key
		op.Input, op.Output = in, out
		parts[part{bucket, key}] = append(parts[part{bucket, key}], op)
	}
	for _, op := range history {
		in, out := op.Input.(Input), op.Output.(Output)
		switch {
		case bucketOp(in.Op):
			add(in.Bucket, "", op, in, out)
			for k := range keys[in.Bucket] {
				add(in.Bucket, k, op, in, out)
			}
		case in.Op == List || in.Op == ListVersions:
			all := out
			out.Objects, out.Versions = nil, nil
			add(in.Bucket, "", op, in, out)
			for k := range keys[in.Bucket] {
				if !strings.HasPrefix(k, in.Prefix) {
					continue
				}
				mine := out
				for _, o := range all.Objects {
					if o.Key == k {
						mine.Objects = append(mine.Objects, o)
					}
				}
				for _, v := range all.Versions {
					if v.Key == k {
						mine.Versions = append(mine.Versions, v)
					}
				}
				add(in.Bucket, k, op, in, mine)
			}
		default:
			add(in.Bucket, in.Key, op, in, out)
		}
	}

	order := make([]part, 0, len(parts))
	for p := range parts {
		order = append(order, p)
	}
	slices.SortFunc(order, func(a, b part) int {
		if c := strings.Compare(a.bucket, b.bucket); c != 0 {
			return c
		}
		return strings.Compare(a.key, b.key)
	})
	out := make([][]porcupine.Operation, 0, len(order))
	for _, p := range order {
		if part := fold(withHorizon(parts[p])); len(part) > 0 {
			out = append(out, part)
		}
	}
	return out
}

// unknowns are the operations of unknown outcome of a partition that may
// take effect after every other operation of it (in practice, those
// recorded with return time Pending). Porcupine does not see them: the
// model applies them itself, each one at most once, between the
// operations porcupine linearizes (see before). Left to porcupine, each
// would be one more operation to place anywhere after its call, taking
// effect or not; with a dozen of them in a partition (a churned bucket's
// creations and deletions, versioning changes and writes, all timed out),
// porcupine tries their orders one by one, while the model can merge the
// states those orders lead to. An operation that did not take effect is
// one the model has not applied: it may still take effect after every
// other operation, where nothing observes it.
type unknowns struct {
	ops   []Input               // bit i of a state's applied stands for ops[i]
	taken []porcupine.Operation // the operations ops are the Inputs of
}

// maxUnknowns is how many operations of unknown outcome a partition folds
// into its model (one bit of state.applied each); any more are left to
// porcupine, as operations of unknown outcome that return before the last
// call of their partition are.
const maxUnknowns = 64

// fold takes out of part the operations of unknown outcome that may take
// effect after every other operation of it, and hands them to the model
// through the Input of the operations that remain.
func fold(part []porcupine.Operation) []porcupine.Operation {
	last := int64(-1 << 63)
	for _, op := range part {
		last = max(last, op.Call)
	}
	u := &unknowns{}
	kept := make([]porcupine.Operation, 0, len(part))
	for _, op := range part {
		if op.Output.(Output).Unknown && op.Return >= last && len(u.ops) < maxUnknowns {
			u.ops = append(u.ops, op.Input.(Input))
			u.taken = append(u.taken, op)
			continue
		}
		kept = append(kept, op)
	}
	if len(u.ops) == 0 {
		return kept
	}
	for i := range kept {
		in := kept[i].Input.(Input)
		in.unknowns = u
		kept[i].Input = in
	}
	return kept
}

// unfold returns part, a partition that fold made, with the operations of
// unknown outcome it took out put back, for porcupine to place.
func unfold(part []porcupine.Operation) []porcupine.Operation {
	u := part[0].Input.(Input).unknowns
	if u == nil {
		return part
	}
	whole := make([]porcupine.Operation, 0, len(part)+len(u.taken))
	for _, op := range part {
		in := op.Input.(Input)
		in.unknowns = nil
		op.Input = in
		whole = append(whole, op)
	}
	return append(whole, u.taken...)
}

// latest is the latest call of the operations applied names.
func (u *unknowns) latest(applied uint64) int64 {
	t := int64(-1 << 63)
	for i, in := range u.ops {
		if applied&(1<<i) != 0 {
			t = max(t, in.call)
		}
	}
	return t
}

// withHorizon sets on every operation of a partition the largest window of
// its writes (the model need not tell apart versions written longer ago)
// and the first call of a write of unknown outcome that may straddle.
func withHorizon(part []porcupine.Operation) []porcupine.Operation {
	var horizon int32
	lost := int64(1<<63 - 1)
	for _, op := range part {
		in := op.Input.(Input)
		horizon = max(horizon, in.window)
		if in.window > 0 && op.Output.(Output).Unknown {
			lost = min(lost, op.Call)
		}
	}
	for i := range part {
		in := part[i].Input.(Input)
		in.horizon, in.lost = horizon, lost
		part[i].Input = in
	}
	return part
}

// markStraddles returns history with Input.Straddles set on every write
// that may be ordered below writes issued after it (see the package
// documentation) and its window: a Put without condition or a Delete
// without version ID whose interval overlaps window > 0 configuration
// changes of its bucket, that is SetVersionings that succeeded and
// DeleteBuckets refused as not empty, or either of unknown outcome.
// Intervals are closed, as porcupine's are.
func markStraddles(history []porcupine.Operation) []porcupine.Operation {
	changes := map[string][][2]int64{} // bucket -> intervals
	for _, op := range history {
		in, out := op.Input.(Input), op.Output.(Output)
		change := (in.Op == SetVersioning && (out.Unknown || out.Err == "")) ||
			(in.Op == DeleteBucket && (out.Unknown || out.Err == BucketNotEmpty))
		if change {
			changes[in.Bucket] = append(changes[in.Bucket], [2]int64{op.Call, op.Return})
		}
	}
	marked := make([]porcupine.Operation, len(history))
	for i, op := range history {
		in := op.Input.(Input)
		in.window = 0
		if (in.Op == Put && in.IfMatch == "") || (in.Op == Delete && in.VersionID == "") {
			for _, c := range changes[in.Bucket] {
				if c[0] <= op.Return && op.Call <= c[1] {
					in.window++
				}
			}
		}
		in.Straddles = in.window > 0
		in.call, in.ret = op.Call, op.Return
		op.Input = in
		marked[i] = op
	}
	return marked
}
