package records

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// A Replica is one copy of a partition as a write or a read reaches it:
// this node's Store, or another node's (RemotePeer).
type Replica interface {
	Put(p Partition, recs []Record) (int, error)
	Records(p Partition, key []byte) ([]Record, error)
	Scan(p Partition, from, to []byte, limit int) (recs []Record, more bool, err error)
}

// ErrNoCopy: a write reached no replica, so nothing holds it.
var ErrNoCopy = errors.New("records: no replica reachable")

// Write puts recs on every replica of partition p in reps, in parallel,
// and returns once want of them hold the records durably, or every
// replica has answered, or, once one holds them, wait has passed: copies
// is how many held them by then. A write that no replica holds fails with
// ErrNoCopy; one that fewer than want hold succeeds, since an available
// bucket takes what is reachable, and the caller says how durable it is.
// Calls still under way go on after Write returns, each bounded by its
// replica's own context.
func Write(reps []Replica, p Partition, recs []Record, want int, wait time.Duration) (copies int, err error) {
	want = max(1, min(want, len(reps)))
	done := make(chan error, len(reps))
	for _, r := range reps {
		go func() {
			_, err := r.Put(p, recs)
			done <- err
		}()
	}
	var errs []error
	var deadline <-chan time.Time
	for range reps {
		var err error
		select {
		case err = <-done:
		case <-deadline:
			return copies, nil // waited long enough after the first copy
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if copies++; copies >= want {
			return copies, nil
		}
		if deadline == nil {
			deadline = time.After(wait)
		}
	}
	if copies == 0 {
		return 0, fmt.Errorf("%w: %w", ErrNoCopy, errors.Join(errs...))
	}
	return copies, nil
}

// ErrNoAnswer: a read reached no replica.
var ErrNoAnswer = errors.New("records: no replica answered")

// Read returns the state of key in partition p as the replicas in reps
// hold it, merged, in key order: it waits for every replica's answer, or,
// once one has answered, at most wait more. Each replica that answered
// and lacked records the others had is sent them (read repair) before
// Read returns. answered counts the replicas merged. When now is set,
// versions stamped more than MaxOffset ahead of it are left out, and not
// repaired: their writer's clock runs ahead, and a reader that took them
// would move its own clock ahead with them (TestReadLeavesOutVersionsAhead).
func Read(reps []Replica, p Partition, key []byte, wait time.Duration, now func() time.Time) (recs []Record, answered int, err error) {
	answers, err := ask(reps, wait, func(r Replica) ([]Record, error) { return r.Records(p, key) })
	if err != nil {
		return nil, 0, err
	}
	reps = reps[:0:0]
	held := make([][]Record, 0, len(answers))
	for _, a := range answers {
		reps = append(reps, a.r)
		held = append(held, a.val)
	}
	return merge(reps, p, held, now), len(answers), nil
}

// reply is one replica's answer to a read.
type reply[T any] struct {
	r   Replica
	val T
}

// ask calls call on every replica in reps at once and returns the answers
// of those that answered without error: all of them, or, once one has
// answered, those in by wait more. It fails with ErrNoAnswer when none
// answered.
func ask[T any](reps []Replica, wait time.Duration, call func(Replica) (T, error)) ([]reply[T], error) {
	type answer struct {
		r   Replica
		val T
		err error
	}
	got := make(chan answer, len(reps))
	for _, r := range reps {
		go func() {
			v, err := call(r)
			got <- answer{r, v, err}
		}()
	}
	var out []reply[T]
	var errs []error
	var deadline <-chan time.Time
	for range reps {
		var a answer
		select {
		case a = <-got:
		case <-deadline:
		}
		if deadline != nil && a.r == nil {
			break // waited long enough after the first answer
		}
		if a.err != nil {
			errs = append(errs, a.err)
			continue
		}
		out = append(out, reply[T]{a.r, a.val})
		if deadline == nil {
			deadline = time.After(wait)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %w", ErrNoAnswer, errors.Join(errs...))
	}
	return out, nil
}

// merge returns the union of what the replicas in reps answered (held[i]
// from reps[i]), in the store's order, and sends each replica the records
// of the union it lacked (read repair). Repairs go to replicas that have
// just answered, so they are quick; merge waits for them, so a read that
// returned has made its replicas agree. A failed repair is left to
// anti-entropy.
func merge(reps []Replica, p Partition, held [][]Record, now func() time.Time) []Record {
	if now != nil {
		t := now()
		for i := range held {
			held[i], _ = splitAhead(held[i], t)
		}
	}
	union := map[string]Record{}
	for _, recs := range held {
		for _, r := range recs {
			k := string(recordKey(p, &r))
			if old, ok := union[k]; ok && bytes.Compare(old.value(), r.value()) >= 0 {
				continue // two versions of one ID: the one that sorts last, as Put keeps
			}
			union[k] = r
		}
	}
	var recs []Record
	for _, k := range slices.Sorted(maps.Keys(union)) {
		recs = append(recs, union[k])
	}
	repaired := make(chan struct{}, len(reps))
	for i, r := range reps {
		go func() {
			if missing := lacking(p, held[i], union); len(missing) > 0 {
				r.Put(p, missing)
			}
			repaired <- struct{}{}
		}()
	}
	for range reps {
		<-repaired
	}
	return recs
}

// ReadRange is Read (now included) for the keys of partition p from from to to (nil: the
// partition's end), at most limit of them: the records of the first keys
// of the range as the answering replicas hold them, merged, in key order,
// and repaired. more says whether keys may remain after the last key
// returned. Each replica returns its first keys, so a key one replica
// lacks may come after another's last: the answer stops at the least
// last key of the replicas that had more.
func ReadRange(reps []Replica, p Partition, from, to []byte, limit int, wait time.Duration, now func() time.Time) (recs []Record, more bool, answered int, err error) {
	type page struct {
		recs []Record
		more bool
	}
	limit = max(limit, 1) // a replica that has more returns a key
	answers, err := ask(reps, wait, func(r Replica) (page, error) {
		recs, more, err := r.Scan(p, from, to, limit)
		return page{recs, more}, err
	})
	if err != nil {
		return nil, false, 0, err
	}
	// bound: the least last key of the answers that stopped early.
	var bound []byte
	for _, a := range answers {
		if a.val.more && len(a.val.recs) > 0 {
			last := a.val.recs[len(a.val.recs)-1].Key
			if !more || bytes.Compare(last, bound) < 0 {
				bound = last
			}
			more = true
		}
	}
	reps = reps[:0:0]
	held := make([][]Record, 0, len(answers))
	for _, a := range answers {
		reps = append(reps, a.r)
		var keep []Record
		for _, r := range a.val.recs {
			if more && bytes.Compare(r.Key, bound) > 0 {
				break
			}
			keep = append(keep, r)
		}
		held = append(held, keep)
	}
	return merge(reps, p, held, now), more, len(answers), nil
}

// lacking returns the records of union that have lacks.
func lacking(p Partition, have []Record, union map[string]Record) []Record {
	held := make(map[string]bool, len(have))
	for i := range have {
		held[string(recordKey(p, &have[i]))] = true
	}
	var out []Record
	for k, r := range union {
		if !held[k] {
			out = append(out, r)
		}
	}
	return out
}
