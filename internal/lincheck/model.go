package lincheck

import (
	"context"
	"errors"
	"math/bits"
	"slices"
	"strings"

	"github.com/anishathalye/porcupine"
)

// state is what one partition of a history knows: its bucket, and, in a
// key's partition, the key's versions. States are values: a step never
// changes the versions slice it was given, it makes a new one.
type state struct {
	// known is false in the initial state, which porcupine makes before
	// the first step names the bucket.
	known      bool
	exists     bool
	versioning string
	// since is the age of the bucket's incarnation. An age counts the
	// configuration changes of the bucket (see the package documentation)
	// made since, up to the horizon, the most changes a write of the
	// partition overlaps: no write can tell older ages apart. Counting
	// back from now, not up from the start, lets states that differ only
	// in how many changes are long past be one state.
	since    int32
	versions []version // newest first
	// changes are the return times of the latest configuration changes,
	// newest first, up to the horizon, that returned after the first
	// call of a write of unknown outcome: such a write, issued at its
	// call, can only have straddled those that returned after it, which
	// bounds it more tightly than its window (every later change). Other
	// changes are left out so that they do not keep states apart.
	changes []int64
	// applied are the partition's operations of unknown outcome that
	// the model applied (bit i: unknowns.ops[i]).
	applied uint64
	// loose: the state is one of the loose model's (rules.loose), as
	// every state of its check is.
	loose bool
}

// version is one version of a key.
type version struct {
	// id is a non-null version's ID, "" while no answer has named it (it
	// was written by a request of unknown outcome).
	id    string
	value string // "" for a delete marker
	null  bool
	age   int32 // configuration changes since it was written, up to the horizon
}

func (v version) marker() bool { return v.value == "" }

// NewModel returns the model of histories that begin in start. The model
// is nondeterministic (a write of unknown outcome may or may not have
// happened; a straddling write may go in several places), so porcupine's
// state is the set of states the model may be in. Porcupine's own
// construction of that set (NondeterministicModel.ToModel) merges states
// by comparing every pair, which histories with several writes of
// unknown outcome in a versioned bucket turn into thousands of states per
// step; this one merges by hash.
func NewModel(start Start) porcupine.Model {
	return newModel(start, rules{applied: maxUnknowns}, bounds{ctx: context.Background()})
}

// rules make the variants of the model that decide searches with;
// NewModel's, every operation of unknown outcome allowed to take effect,
// are the model itself.
type rules struct {
	// applied bounds how many operations of unknown outcome a state may
	// have applied (see unknowns.before). Below the partition's number
	// of them, the model leaves linearizations out: a history it
	// accepts is linearizable, one it rejects may be too.
	applied int
	// loose places a straddling write wherever a straddling write may
	// go, below any version, whatever the configuration changes since
	// (state.since, version.age and state.changes stay empty). The loose
	// model accepts more: a history it rejects is not linearizable, one
	// it accepts may not be. Without the ages, states that differ only
	// in when changes of unknown outcome took effect are one.
	loose bool
	// lazy leaves the operations of unknown outcome to porcupine (see
	// unfold), with applied unbounded: the model itself, searched the
	// other way. Porcupine tries to linearize each of them as soon as it
	// was called, keeping the states in which it did not take effect,
	// and moves it later only when that fails: quick when they matter
	// little, as in long histories with a few of them, slow when many
	// must move.
	lazy bool
}

// view returns part, a partition as partition makes it, as a search
// under r takes it.
func (r rules) view(part []porcupine.Operation) []porcupine.Operation {
	if r.lazy {
		return unfold(part)
	}
	return part
}

// bounds end a search before it decides: once ctx is done, every step
// rejects, so that porcupine unwinds at once; a search whose ctx is done
// is undecided, whatever porcupine answered. With left, a search may make
// that many states in all (porcupine keeps every set it was given), and
// ends, through cancel, with errTooMany, when it would make more.
type bounds struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	left   *int
}

// errTooMany ends a search that made more states than its bounds allow.
var errTooMany = errors.New("too many states")

// over reports whether a step that holds n states must give up.
func (b bounds) over(n int) bool {
	if b.left != nil && n > *b.left {
		b.cancel(errTooMany)
	}
	return b.ctx.Err() != nil
}

// made counts n states made.
func (b bounds) made(n int) {
	if b.left != nil {
		*b.left -= n
	}
}

func newModel(start Start, r rules, b bounds) porcupine.Model {
	return porcupine.Model{
		Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
			parts := partition(history)
			for i := range parts {
				parts[i] = r.view(parts[i])
			}
			return parts
		},
		Init: func() any { return newStates([]state{{}}) },
		Step: func(st, input, output any) (bool, any) {
			in, out := input.(Input), output.(Output)
			now := st.(*states).members
			if !now[0].known {
				s := start.state(in.Bucket)
				s.loose = r.loose
				now = []state{s}
			}
			set := newStates(nil)
			set.unknowns = in.unknowns
			for _, s := range in.unknowns.before(now, in, r.applied, b) {
				for _, n := range step(s, in, out) {
					set.add(n)
				}
			}
			if b.over(len(set.members)) {
				return false, nil
			}
			set = set.seal()
			b.made(len(set.members))
			return len(set.members) > 0, set
		},
		Equal:             func(a, b any) bool { return a.(*states).equal(b.(*states)) },
		Hash:              func(s any) uint64 { return s.(*states).sum },
		DescribeOperation: func(in, out any) string { return describeOperation(in.(Input), out.(Output)) },
		DescribeState: func(s any) string {
			var ds []string
			set := s.(*states)
			for _, m := range set.members {
				ds = append(ds, describeState(m)+set.unknowns.describe(m.applied))
			}
			return "{" + strings.Join(ds, " | ") + "}"
		},
	}
}

// states is a set of states, each with its hash (applied aside); sum is
// the set's hash. It is never changed once a step returned it. unknowns
// are the partition's operations of unknown outcome, which its states'
// applied name.
//
// A state that differs from another only in having applied more of
// those operations is left out: the other may apply them too, later or
// never, so it can go wherever this one can (see unknowns.before).
type states struct {
	members  []state
	hashes   []uint64
	byHash   map[uint64][]int
	gone     []bool // members that a later one made redundant, until seal
	sum      uint64
	unknowns *unknowns
}

// newStates returns the set of ss, without duplicates.
func newStates(ss []state) *states {
	set := &states{byHash: make(map[uint64][]int, len(ss))}
	for _, s := range ss {
		set.add(s)
	}
	return set.seal()
}

// add adds s to the set unless a member has applied no more than s, and
// marks gone the members that have applied more.
func (set *states) add(s state) {
	h := hash(s)
	for _, i := range set.byHash[h] {
		m := set.members[i]
		if set.gone[i] || !sameBut(m, s) {
			continue
		}
		if m.applied&^s.applied == 0 {
			return
		}
		if s.applied&^m.applied == 0 {
			set.gone[i] = true
		}
	}
	set.byHash[h] = append(set.byHash[h], len(set.members))
	set.members = append(set.members, s)
	set.hashes = append(set.hashes, h)
	set.gone = append(set.gone, false)
}

// seal drops the members marked gone and sums the hashes of the rest.
func (set *states) seal() *states {
	out := &states{byHash: make(map[uint64][]int, len(set.members)), unknowns: set.unknowns}
	for i, s := range set.members {
		if set.gone[i] {
			continue
		}
		h := set.hashes[i]
		out.byHash[h] = append(out.byHash[h], len(out.members))
		out.members = append(out.members, s)
		out.hashes = append(out.hashes, h)
		out.gone = append(out.gone, false)
		// A sum, so that order does not count.
		out.sum += (h ^ s.applied*0xbf58476d1ce4e5b9) * 0x9e3779b97f4a7c15
	}
	return out
}

func (set *states) has(s state, h uint64) bool {
	for _, i := range set.byHash[h] {
		if m := set.members[i]; sameBut(m, s) && m.applied == s.applied {
			return true
		}
	}
	return false
}

func (set *states) equal(o *states) bool {
	if set.sum != o.sum || len(set.members) != len(o.members) {
		return false
	}
	for i, s := range set.members {
		if !o.has(s, set.hashes[i]) {
			return false
		}
	}
	return true
}

// before returns the states the model may be in when in takes effect,
// given that it may be in any of now: those of now that applied no
// operation of unknown outcome called after in returned, and every state
// these reach by applying, in any order, more of the partition's
// operations of unknown outcome called by then, up to limit applied in
// all. A linearization puts such an operation anywhere after its call, or
// nowhere; the model applies it right before the next operation that
// porcupine linearizes, or never (it may have taken effect after all of
// them, where nothing observes it), which leaves the same states. An
// operation applied must have been called before every operation
// linearized after it returned, which the latest call of those applied
// stands for (unknowns.latest); among the others, porcupine sees to it.
func (u *unknowns) before(now []state, in Input, limit int, b bounds) []state {
	if u == nil {
		return now
	}
	set := newStates(nil)
	for _, s := range now {
		if u.latest(s.applied) <= in.ret {
			set.add(s)
		}
	}
	unknown := Output{Unknown: true}
	for i := 0; i < len(set.members); i++ { // set grows as it goes
		if set.gone[i] {
			continue
		}
		if i%1024 == 0 && b.over(len(set.members)) {
			return nil
		}
		s := set.members[i]
		for j, p := range u.ops {
			bit := uint64(1) << j
			if s.applied&bit != 0 || p.call > in.ret || bits.OnesCount64(s.applied) >= limit {
				continue
			}
			for _, n := range step(s, p, unknown) {
				// Without an effect, applying p only makes its call
				// count for later operations: s, which may still apply
				// it, is worth as much.
				if sameBut(n, s) {
					continue
				}
				n.applied |= bit
				set.add(n)
			}
		}
	}
	return set.seal().members
}

// step returns the states s may be in after in answered out: none if it
// could not have answered that, several where the model branches.
func step(s state, in Input, out Output) []state {
	switch in.Op {
	case Get:
		return stepGet(s, in, out)
	case Put, Create:
		return stepPut(s, in, out)
	case Delete:
		if in.VersionID != "" {
			return stepDeleteVersion(s, in, out)
		}
		return stepDelete(s, in, out)
	case List, ListVersions:
		return stepList(s, in, out)
	case CreateBucket:
		return stepCreateBucket(s, out)
	case DeleteBucket:
		return stepDeleteBucket(s, in, out)
	case HeadBucket:
		return check(s, out.Unknown || (s.exists && out.Err == "") || (!s.exists && out.Err == NoSuchBucket))
	case SetVersioning:
		return stepSetVersioning(s, in, out)
	case GetVersioning:
		if r, done := missingBucket(s, out); done {
			return r
		}
		return check(s, out.Unknown || (out.Err == "" && out.Versioning == s.versioning))
	}
	return nil
}

// check returns s if ok, no state otherwise.
func check(s state, ok bool) []state {
	if ok {
		return []state{s}
	}
	return nil
}

// missingBucket answers for any request on a bucket that does not exist:
// done is true when s has no bucket, with the states that follow.
func missingBucket(s state, out Output) (next []state, done bool) {
	if s.exists {
		return nil, false
	}
	return check(s, out.Unknown || out.Err == NoSuchBucket), true
}

func stepGet(s state, in Input, out Output) []state {
	if r, done := missingBucket(s, out); done {
		return r
	}
	if out.Unknown {
		return []state{s}
	}
	if in.VersionID == "" {
		if len(s.versions) == 0 || s.versions[0].marker() {
			return check(s, out.Err == NoSuchKey)
		}
		if out.Err != "" || out.Value != s.versions[0].value {
			return nil
		}
		if n, ok := s.name(0, out.VersionID, false); ok {
			return []state{n}
		}
		return nil
	}
	if i := s.find(in.VersionID); i >= 0 {
		v := s.versions[i]
		if v.marker() {
			return check(s, out.Err == MethodNotAllowed)
		}
		return check(s, out.Err == "" && out.Value == v.value)
	}
	// Not a version the model knows by ID: absent, or one whose ID no
	// answer has named yet.
	switch out.Err {
	case NoSuchVersion:
		return []state{s}
	case MethodNotAllowed:
		return s.bindEach(in.VersionID, func(v version) bool { return v.marker() })
	case "":
		return s.bindEach(in.VersionID, func(v version) bool { return v.value == out.Value })
	}
	return nil
}

func stepPut(s state, in Input, out Output) []state {
	if r, done := missingBucket(s, out); done {
		return r
	}
	current := len(s.versions) > 0 && !s.versions[0].marker()
	var failed string
	switch {
	case in.Op == Create && current:
		failed = PreconditionFailed
	case in.IfMatch != "" && !current:
		failed = NoSuchKey
	case in.IfMatch != "" && s.versions[0].value != in.IfMatch:
		failed = PreconditionFailed
	}
	if failed != "" {
		return check(s, out.Unknown || out.Err == failed)
	}
	window := s.straddled(in, out.Unknown)
	if in.Op != Put || in.IfMatch != "" {
		window = 0 // a conditional write is never ordered below
	}
	if out.Unknown {
		return append([]state{s}, s.write(in.Value, "", window, true)...)
	}
	if out.Err != "" {
		return nil
	}
	return s.write(in.Value, out.VersionID, window, false)
}

func stepDelete(s state, in Input, out Output) []state {
	if r, done := missingBucket(s, out); done {
		return r
	}
	if s.versioning == Unversioned {
		n := s
		if i := s.find(NullID); i >= 0 {
			n = s.remove(i)
		}
		if out.Unknown {
			return []state{s, n}
		}
		return check(n, out.Err == "" && !out.DeleteMarker && out.VersionID == "")
	}
	if out.Unknown {
		return append([]state{s}, s.write("", "", s.straddled(in, true), true)...)
	}
	if out.Err != "" || !out.DeleteMarker {
		return nil
	}
	return s.write("", out.VersionID, in.window, false)
}

func stepDeleteVersion(s state, in Input, out Output) []state {
	if r, done := missingBucket(s, out); done {
		return r
	}
	i := s.find(in.VersionID)
	if out.Unknown {
		next := []state{s}
		if i >= 0 {
			return append(next, s.remove(i))
		}
		for j, v := range s.versions {
			if v.unnamed() && s.fresh(in.VersionID) && s.fits(j, j+1, in.VersionID) {
				next = append(next, s.remove(j))
			}
		}
		return next
	}
	if out.Err != "" {
		return nil
	}
	if i >= 0 {
		return check(s.remove(i), out.DeleteMarker == s.versions[i].marker())
	}
	var next []state
	if !out.DeleteMarker {
		next = append(next, s) // absent
	}
	if s.fresh(in.VersionID) {
		for j, v := range s.versions {
			if v.unnamed() && v.marker() == out.DeleteMarker && s.fits(j, j+1, in.VersionID) {
				next = append(next, s.remove(j))
			}
		}
	}
	return next
}

// stepList checks a listing's observation of one key (in.Key), or, in the
// bucket's own partition (no key), only that the bucket exists.
func stepList(s state, in Input, out Output) []state {
	if r, done := missingBucket(s, out); done {
		return r
	}
	if out.Unknown {
		return []state{s}
	}
	if out.Err != "" {
		return nil
	}
	if in.Key == "" {
		return []state{s}
	}
	if in.Op == List {
		if len(s.versions) == 0 || s.versions[0].marker() {
			return check(s, len(out.Objects) == 0)
		}
		return check(s, len(out.Objects) == 1 && out.Objects[0].Value == s.versions[0].value)
	}
	if len(out.Versions) != len(s.versions) {
		return nil
	}
	n := s
	for i, v := range s.versions {
		l := out.Versions[i]
		if l.DeleteMarker != v.marker() || (!v.marker() && l.Value != v.value) {
			return nil
		}
		var ok bool
		if n, ok = n.name(i, l.VersionID, true); !ok {
			return nil
		}
	}
	return []state{n}
}

func stepCreateBucket(s state, out Output) []state {
	if s.exists {
		return check(s, out.Unknown || out.Err == BucketExists)
	}
	created := s.bucket(true)
	if out.Unknown {
		return []state{s, created}
	}
	return check(created, out.Err == "")
}

func stepDeleteBucket(s state, in Input, out Output) []state {
	if r, done := missingBucket(s, out); done {
		return r
	}
	// In a key's partition, deletion needs the key empty; in the
	// bucket's own, nothing is known of the keys.
	empty := in.Key == "" || len(s.versions) == 0
	gone := s.bucket(false)
	kept := s.changed(in) // a refused deletion is a configuration change too
	// Of unknown outcome, a deletion that did not delete counts as
	// refused: whether it ran only matters to where a straddling write
	// may go, and one more change only allows more places. Tracking both
	// would double the states for the rest of the history.
	switch {
	case out.Unknown && empty:
		return []state{kept, gone}
	case out.Unknown:
		return []state{kept}
	case out.Err == BucketNotEmpty:
		return []state{kept}
	}
	return check(gone, out.Err == "" && empty)
}

func stepSetVersioning(s state, in Input, out Output) []state {
	if r, done := missingBucket(s, out); done {
		return r
	}
	if in.Versioning != Enabled && in.Versioning != Suspended {
		return nil
	}
	n := s
	if n.versioning != in.Versioning {
		n = s.changed(in)
		n.versioning = in.Versioning
	}
	if out.Unknown {
		return []state{s, n}
	}
	return check(n, out.Err == "")
}

// bucket returns s with a new, empty and Unversioned bucket (exists) or
// none: what it knows of the history (applied, loose) stays.
func (s state) bucket(exists bool) state {
	return state{known: true, exists: exists, applied: s.applied, loose: s.loose}
}

// nullID is how answers show the null version's ID in s.
func (s state) nullID() string {
	if s.versioning == Unversioned {
		return ""
	}
	return NullID
}

func (v version) unnamed() bool { return !v.null && v.id == "" }

// find returns the index of the version id names, or -1.
func (s state) find(id string) int {
	for i, v := range s.versions {
		if (id == NullID && v.null) || (id != NullID && !v.null && v.id == id) {
			return i
		}
	}
	return -1
}

// fresh reports whether id can name a new version: it is a version ID and
// no version of the key has it.
func (s state) fresh(id string) bool {
	return id != "" && id != NullID && s.find(id) < 0
}

// fits reports whether a version with ID id sorts between versions[:above]
// and versions[below:]: version IDs sort in version order, so it must be
// less than the nearest ID named above and greater than the nearest below.
// Null versions and versions not named yet do not count.
func (s state) fits(above, below int, id string) bool {
	for i := above - 1; i >= 0; i-- {
		if v := s.versions[i]; !v.null && v.id != "" {
			if v.id <= id {
				return false
			}
			break
		}
	}
	for _, v := range s.versions[below:] {
		if !v.null && v.id != "" {
			return v.id < id
		}
	}
	return true
}

// name returns s with an answer's id for version i: it must be the one
// the model knows, or, for a version whose ID no answer named yet, a
// fresh one, which the model learns. listed: the answer is a listing,
// which shows the null version as "null" in every state.
func (s state) name(i int, id string, listed bool) (state, bool) {
	v := s.versions[i]
	switch {
	case v.null && listed:
		return s, id == NullID
	case v.null:
		return s, id == s.nullID()
	case v.id != "":
		return s, id == v.id
	case !s.fresh(id) || !s.fits(i, i+1, id):
		return s, false
	}
	vs := slices.Clone(s.versions)
	vs[i].id = id
	s.versions = vs
	return s, true
}

// bindEach returns a state for each unnamed version that match accepts,
// in which that version has id.
func (s state) bindEach(id string, match func(version) bool) []state {
	if !s.fresh(id) {
		return nil
	}
	var next []state
	for i, v := range s.versions {
		if v.unnamed() && match(v) {
			n, _ := s.name(i, id, false)
			next = append(next, n)
		}
	}
	return next
}

// remove returns s without version i.
func (s state) remove(i int) state {
	s.versions = slices.Delete(slices.Clone(s.versions), i, i+1)
	return s
}

// write returns the states after a write of value ("" for a delete
// marker) answered with version ID id (unknown: the answer was lost, and
// with it the ID). The version is the null version unless the bucket is
// Enabled, and the latest, or, for a write that overlaps window
// configuration changes (it may have straddled them), possibly below the
// versions of the configurations after its own.
func (s state) write(value, id string, window int32, unknown bool) []state {
	v := version{value: value, null: s.versioning != Enabled}
	switch {
	case v.null:
		// S3 answers a PUT that made the null version without a version
		// ID, whatever the bucket's state.
		if !unknown && id != s.nullID() && id != "" {
			return nil
		}
	case unknown:
	case !s.fresh(id):
		return nil
	default:
		v.id = id
	}
	var next []state
	if v.id == "" || s.fits(0, 0, v.id) {
		next = append(next, s.insert(v, 0))
	}
	if window == 0 {
		return next
	}
	// The write was issued some e configuration changes ago, 0 < e <=
	// window (it overlaps that many): Redoubt puts it right below the
	// versions written since, and above those written before. So a
	// position k is one where every version above is younger than e and
	// the version right below (or the incarnation, at the bottom) as old
	// or older, for some such e.
	younger := int32(-1) // the oldest age above k
	nullAt := s.find(NullID)
	for k := 1; k <= len(s.versions); k++ {
		younger = max(younger, s.versions[k-1].age)
		older := s.since
		if k < len(s.versions) {
			older = s.versions[k].age
		}
		// A null version placed below the key's null version would not
		// replace it: Redoubt makes it the latest instead.
		if (s.loose || younger < min(older, window)) && !(v.null && nullAt >= 0 && nullAt < k) && (v.id == "" || s.fits(k, k, v.id)) {
			next = append(next, s.insert(v, k))
		}
	}
	return next
}

// changed returns s after in, a configuration change of its bucket: every
// age one more, up to the horizon.
func (s state) changed(in Input) state {
	if s.loose {
		return s
	}
	s.since = min(s.since+1, in.horizon)
	vs := slices.Clone(s.versions)
	for i := range vs {
		vs[i].age = min(vs[i].age+1, in.horizon)
	}
	s.versions = vs
	if in.horizon > 0 && in.ret >= in.lost {
		s.changes = append([]int64{in.ret}, s.changes[:min(len(s.changes), int(in.horizon)-1)]...)
	}
	return s
}

// straddled returns how many configuration changes a write may have
// straddled: at most as many as its interval overlaps, and, of unknown
// outcome, at most as many of those made so far as returned after its
// call.
func (s state) straddled(in Input, unknown bool) int32 {
	if !unknown || s.loose {
		return in.window
	}
	var n int32
	for _, r := range s.changes {
		if r >= in.call {
			n++
		}
	}
	return min(n, in.window)
}

// insert returns s with v at index k (counted before the null version v
// replaces, if any, is taken out).
func (s state) insert(v version, k int) state {
	vs := make([]version, 0, len(s.versions)+1)
	for i, o := range s.versions {
		if i == k {
			vs = append(vs, v)
		}
		if !(v.null && o.null) {
			vs = append(vs, o)
		}
	}
	if k == len(s.versions) {
		vs = append(vs, v)
	}
	s.versions = vs
	return s
}
