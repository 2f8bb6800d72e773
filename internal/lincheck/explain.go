package lincheck

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// Explain describes, in text, why history (begun in start) is not
// linearizable: for the first partition that is not, the end of the
// longest linearization porcupine found, the states the model can be in
// after it, and the operations that could come next, none of which the
// model accepts. When the check cannot decide a partition in time
// (proving that no linearization exists can take long), Explain looks for
// the shortest beginning of it that is not linearizable, and describes
// that. It returns "" for a linearizable history, and spends about a
// minute at most.
func Explain(start Start, history []porcupine.Operation) string {
	deadline := time.Now().Add(time.Minute)
	within := func(d time.Duration) time.Time {
		if end := time.Now().Add(d); end.Before(deadline) {
			return end
		}
		return deadline
	}
	for _, part := range partition(history) {
		in := part[0].Input.(Input)
		name := fmt.Sprintf("partition %s/%s (%d operations)", in.Bucket, in.Key, len(part))
		res, how := decidePart(start, part, within(10*time.Second))
		switch res {
		case porcupine.Ok:
			continue
		case porcupine.Illegal:
			return explainPart(start, how, name, part)
		}
		// Undecided: bisect on beginnings of the partition. A beginning
		// is closed under concurrency (see begin), so that it is
		// linearizable whenever the whole is.
		slices.SortStableFunc(part, func(a, b porcupine.Operation) int { return cmpTime(a.Call, b.Call) })
		lo, hi := 0, len(part)
		for hi-lo > 1 && time.Until(deadline) > 0 {
			mid := (lo + hi) / 2
			if r, _ := decidePart(start, begin(part, part[mid-1].Call), within(5*time.Second)); r == porcupine.Ok {
				lo = mid
			} else {
				hi = mid
			}
		}
		b := begin(part, part[hi-1].Call)
		last := time.Now().Add(min(10*time.Second, max(time.Second, time.Until(deadline))))
		if r, how := decidePart(start, b, last); r == porcupine.Illegal {
			return explainPart(start, how, fmt.Sprintf("%s: its first %d operations, up to the call at %d,", name, len(b), part[hi-1].Call), b)
		}
		return name + " could not be decided in time"
	}
	return ""
}

func cmpTime(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// begin returns the operations of part called up to t, and, repeatedly,
// those called before any of them returned (operations of unknown outcome
// aside, which may take effect at the end): no operation left out can
// come before one kept in any linearization, so a linearization of the
// whole, cut to the operations kept, is one of them.
func begin(part []porcupine.Operation, t int64) []porcupine.Operation {
	for {
		end := t
		for _, op := range part {
			if op.Call <= t && op.Return != Pending {
				end = max(end, op.Return)
			}
		}
		if end == t {
			break
		}
		t = end
	}
	var b []porcupine.Operation
	for _, op := range part {
		if op.Call <= t {
			b = append(b, op)
		}
	}
	return b
}

// explainPart describes part, which a search under how found not
// linearizable.
func explainPart(start Start, how rules, name string, part []porcupine.Operation) string {
	part = how.view(part)
	search, finish := bounded(start, how, time.Now().Add(time.Minute))
	search.Partition = nil
	res, info := porcupine.CheckOperationsVerbose(search, part, time.Minute)
	finish(res)
	// Stepping through the longest linearization again, which the search
	// found with steps that did not give up.
	model := newModel(start, how, bounds{ctx: context.Background()})
	var longest []porcupine.Operation
	for _, l := range info.PartialLinearizationsOperations()[0] {
		if len(l) > len(longest) {
			longest = l
		}
	}
	states := model.Init()
	for _, op := range longest {
		_, states = model.Step(states, op.Input, op.Output)
	}
	if how.loose {
		name += " (even with straddling writes placed below any version: the states show no ages)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s is not linearizable; the longest linearization found has %d:", name, len(longest))
	for _, op := range longest[max(0, len(longest)-12):] {
		b.WriteString("\n  " + describeTimed(op))
	}
	b.WriteString("\nafter which the model is in " + model.DescribeState(states) + "\nand none of these can come next:")
	done := map[[2]int64]bool{}
	for _, op := range longest {
		done[[2]int64{op.Call, op.Return}] = true // times tell operations apart well enough here
	}
	var rest []porcupine.Operation
	for _, op := range part {
		if !done[[2]int64{op.Call, op.Return}] {
			rest = append(rest, op)
		}
	}
	slices.SortStableFunc(rest, func(a, b porcupine.Operation) int { return cmpTime(a.Call, b.Call) })
	first := int64(1<<63 - 1)
	for _, op := range rest {
		first = min(first, op.Return)
	}
	for _, op := range rest {
		if op.Call <= first {
			b.WriteString("\n  " + describeTimed(op))
		}
	}
	if u := part[0].Input.(Input).unknowns; u != nil {
		b.WriteString("\nwhere these, of unknown outcome, may have taken effect anywhere after their call, or never:")
		taken := slices.Clone(u.taken)
		slices.SortStableFunc(taken, func(a, b porcupine.Operation) int { return cmpTime(a.Call, b.Call) })
		for _, op := range taken {
			b.WriteString("\n  " + describeTimed(op))
		}
	}
	return b.String()
}

func describeTimed(op porcupine.Operation) string {
	ret := "pending"
	if op.Return != Pending {
		ret = fmt.Sprint(op.Return)
	}
	return fmt.Sprintf("[%d, %s] client %d: %s", op.Call, ret, op.ClientId, describeOperation(op.Input.(Input), op.Output.(Output)))
}
