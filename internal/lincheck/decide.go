package lincheck

import (
	"context"
	"slices"
	"time"

	"github.com/anishathalye/porcupine"
)

// maxStates bounds the states one of decide's searches may make: past it,
// the search gives up. Porcupine keeps them all until the search ends, a
// few hundred bytes each; a search that needs more would not end in time
// anyway. The histories of the whole-cluster simulation need some
// thousands.
const maxStates = 1 << 18

// looseShare is how many slices the loose model gets in a round of
// decide: of the searches still running after the first rounds, it is the
// one that shows a violation, and a violation is what a partition that
// takes long to check usually holds.
const looseShare = 4

// firstSlice is how long each of decide's searches runs at first; each
// round doubles it.
const firstSlice = 10 * time.Millisecond

// decide checks history, begun in start, within budget, one partition
// after the other (see decidePart). It answers Illegal for the first
// partition found not linearizable, with the rules that found it;
// otherwise Unknown if a partition was left undecided, or Ok.
func decide(start Start, history []porcupine.Operation, budget time.Duration) (porcupine.CheckResult, rules) {
	deadline := time.Now().Add(budget)
	res := porcupine.Ok
	for _, part := range partition(history) {
		switch r, how := decidePart(start, part, deadline); r {
		case porcupine.Illegal:
			return r, how
		case porcupine.Unknown:
			res = porcupine.Unknown
		}
	}
	return res, lazily
}

// decidePart checks one partition by the deadline with several variants
// of the model (rules), each a porcupine search of its own, in rounds:
// every search still in the running gets a slice of time, twice as long
// each round, until one settles the partition.
//
// With n operations of unknown outcome in the partition, the searches are
// the model itself with porcupine placing them (lazily), quick when few of
// them matter, as in long histories; the model bounded to k of them
// applied, for k = 0, 1, 2, 4, ... below n; the model itself; and the
// loose model. A history of a client that timed out is nearly always
// linearizable with few of them applied, which a bounded search finds in
// milliseconds, while the model itself must carry every combination of
// them at once (in the simulation, hundreds of thousands of states after
// one step, where the search bounded to two made a handful). A violation,
// though, only the model itself or the loose model can show, and the
// loose model, whose states keep no ages, shows most at once. Neither
// shortcut lets a bad history pass: a bounded model accepts less than the
// model, the loose one rejects less.
//
// A search leaves the running when it cannot settle the partition: a
// bounded one that rejects (and those bounded lower), the loose one that
// accepts, and any that made too many states. Slices that double keep the
// time lost to searches that do not settle it within a factor of the
// number of searches of the time the one that does needs.
func decidePart(start Start, part []porcupine.Operation, deadline time.Time) (porcupine.CheckResult, rules) {
	n := 0
	if u := part[0].Input.(Input).unknowns; u != nil {
		n = len(u.ops)
	}
	running := []rules{lazily}
	for k := 0; k < n; k = max(2*k, k+1) {
		running = append(running, rules{applied: k})
	}
	running = append(running, rules{applied: maxUnknowns})
	if n > 0 {
		running = append(running, rules{applied: maxUnknowns, loose: true})
	}
	capped := func(r rules) bool { return !r.loose && r.applied < n }
	for slice := firstSlice; len(running) > 0; slice *= 2 {
		var next []rules
		for _, r := range running {
			end := time.Now().Add(slice)
			if r.loose {
				end = time.Now().Add(looseShare * slice)
			}
			if end.After(deadline) {
				end = deadline
			}
			switch res, err := search(start, part, r, end); {
			case res == porcupine.Ok && !r.loose:
				return res, r
			case res == porcupine.Illegal && !capped(r):
				return res, r
			case res == porcupine.Illegal:
				// Bounded lower, they would reject too.
				next = slices.DeleteFunc(next, func(o rules) bool { return capped(o) && o.applied < r.applied })
			case res == porcupine.Unknown && err != errTooMany:
				next = append(next, r) // out of time: again, for longer
			}
			if !time.Now().Before(deadline) {
				return porcupine.Unknown, lazily
			}
		}
		running = next
	}
	return porcupine.Unknown, lazily
}

// lazily are the rules of the model itself with porcupine placing the
// operations of unknown outcome. decide answers with them when it found
// no violation: porcupine's visualization of a search under them shows
// those operations.
var lazily = rules{applied: maxUnknowns, lazy: true}

// search runs one porcupine search of part under r until deadline. It
// answers Unknown when the search did not end: with errTooMany when it
// made too many states.
func search(start Start, part []porcupine.Operation, r rules, deadline time.Time) (porcupine.CheckResult, error) {
	if !time.Now().Before(deadline) {
		return porcupine.Unknown, nil // porcupine takes no timeout as none
	}
	m, done := bounded(start, r, deadline)
	m.Partition = nil
	res := porcupine.CheckOperationsTimeout(m, r.view(part), time.Until(deadline))
	if err := done(res); err != nil {
		return porcupine.Unknown, err
	}
	return res, nil
}

// bounded returns the model under r for a search that must end by
// deadline, and done, which tells, once the search ended with res,
// whether its bounds ended it: errTooMany when it would have made too
// many states, context.DeadlineExceeded when it ran out of time, nil when
// they did not. A search they ended answers Unknown, or Illegal, which
// then means nothing (a step that gave up rejected); an Ok stands, since
// no step that gave up is part of a linearization.
func bounded(start Start, r rules, deadline time.Time) (m porcupine.Model, done func(res porcupine.CheckResult) error) {
	ctx, cancel := context.WithCancelCause(context.Background())
	ctx, stop := context.WithDeadline(ctx, deadline)
	states := maxStates
	m = newModel(start, r, bounds{ctx: ctx, cancel: cancel, left: &states})
	return m, func(res porcupine.CheckResult) error {
		defer cancel(nil)
		defer stop()
		if res == porcupine.Ok {
			return nil
		}
		return context.Cause(ctx)
	}
}
