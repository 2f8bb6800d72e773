package lincheck

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// Ops of an Input.
const (
	Get    = "get"    // the latest version, or VersionID's
	Put    = "put"    // with IfMatch: the conditional PUT
	Delete = "del"    // without VersionID: by the bucket's state; with: that version
	Create = "create" // PUT with If-None-Match: *

	List         = "list"          // ListObjectsV2 under Prefix, all pages
	ListVersions = "list-versions" // ListObjectVersions under Prefix, one page

	CreateBucket  = "create-bucket"
	DeleteBucket  = "delete-bucket"
	HeadBucket    = "head-bucket"
	SetVersioning = "set-versioning"
	GetVersioning = "get-versioning"
)

// Versioning states of a bucket, as GetBucketVersioning shows them.
const (
	Unversioned = ""
	Enabled     = "Enabled"
	Suspended   = "Suspended"
)

// NullID is the version ID that names the null version.
const NullID = "null"

// Answers the model knows, as S3 error codes, for Output.Err.
const (
	NoSuchBucket       = "NoSuchBucket"
	NoSuchKey          = "NoSuchKey"
	NoSuchVersion      = "NoSuchVersion"
	MethodNotAllowed   = "MethodNotAllowed" // a Get of a delete marker's version
	PreconditionFailed = "PreconditionFailed"
	BucketExists       = "BucketAlreadyOwnedByYou"
	BucketNotEmpty     = "BucketNotEmpty"
)

// Input is one request.
type Input struct {
	Op     string
	Bucket string
	Key    string // object requests
	// Value is what a Put or Create writes: never empty, and written by no
	// other request of the history.
	Value string
	// IfMatch makes a Put conditional on the key's current value being
	// this one (a harness sends that value's ETag).
	IfMatch string
	// VersionID names one version for a Get or a Delete ("null": the
	// null version); "" means the latest (Get) or the bucket's state
	// decides (Delete).
	VersionID string
	// Versioning is the state a SetVersioning asks for: Enabled or
	// Suspended.
	Versioning string
	// Prefix is a listing's.
	Prefix string
	// Straddles marks a write whose interval overlaps a configuration
	// change of its bucket, which may be ordered below writes issued
	// after the change (see the package documentation). Check sets it
	// from the history's times, replacing what the harness recorded.
	Straddles bool
	// Node is the node that took the request, for the visualization.
	Node int

	// Set by Check's partitioning: the configuration changes of the
	// bucket whose intervals overlap this write's (it may have straddled
	// that many), the most any write of the partition overlaps, the
	// operation's call and return times, the first call of a write of
	// unknown outcome in the partition, and the partition's operations
	// of unknown outcome that the model applies itself.
	window, horizon int32
	call, ret, lost int64
	unknowns        *unknowns
}

// Output is what the request answered.
type Output struct {
	// Err is the error the request answered with, one of the codes
	// above, or "" for success.
	Err string
	// Unknown: the request failed in a way that leaves its effect
	// unknown (record it with return time Pending).
	Unknown bool
	// Value is what a Get read.
	Value string
	// VersionID is the version a Put or a Delete without VersionID made,
	// or the one a Get of the latest version read, as the answer named it
	// ("" when it named none).
	VersionID string
	// DeleteMarker: a Delete without VersionID added a delete marker; one
	// with VersionID removed one.
	DeleteMarker bool
	// Versioning is the state GetVersioning answered.
	Versioning string
	// Objects are a List's entries, in any order.
	Objects []Object
	// Versions are a ListVersions' entries in the order listed: by key,
	// then newest first.
	Versions []Version
}

// Object is one entry of a List.
type Object struct {
	Key   string
	Value string
}

// Version is one entry of a ListVersions.
type Version struct {
	Key          string
	VersionID    string
	Value        string // "" for a delete marker
	DeleteMarker bool
}

// Start is the state a history begins in. Its zero value has every bucket
// the history names exist, empty and Unversioned: tests that create their
// buckets before they start recording.
type Start struct {
	// Missing are buckets that do not exist when the history begins.
	Missing []string
	// Versioning is the state of buckets that begin versioned.
	Versioning map[string]string
}

func (s Start) state(bucket string) state {
	for _, b := range s.Missing {
		if b == bucket {
			return state{known: true}
		}
	}
	return state{known: true, exists: true, versioning: s.Versioning[bucket]}
}

// Model is the model of histories that begin as Start{} says.
var Model = NewModel(Start{})

// Pending is the return time to record for an operation of unknown outcome.
const Pending = int64(1) << 62

// checkBudget is how long a check may take before it is tried again for
// longCheckBudget; a check undecided after both fails. Checks take far
// less: milliseconds for the simulation's histories, seconds to show a
// violation among a dozen operations of unknown outcome.
const (
	checkBudget     = 60 * time.Second
	longCheckBudget = 5 * time.Minute
)

// visualBudget is how long the search that gives porcupine's
// visualization of a failed check may take.
const visualBudget = 30 * time.Second

// Check checks history against Model, as CheckFrom does.
func Check(t testing.TB, history []porcupine.Operation, seed uint64) {
	t.Helper()
	CheckFrom(t, Start{}, history, seed)
}

// CheckFrom checks history, begun in start, against the model, logs the
// result with seed, writes porcupine's visualization to a temporary file
// on failure, and fails t if the history is not linearizable or the check
// did not finish.
func CheckFrom(t testing.TB, start Start, history []porcupine.Operation, seed uint64) {
	t.Helper()
	if err := Validate(history); err != nil {
		t.Fatalf("the history cannot be checked (seed %d): %v", seed, err)
	}
	began := time.Now()
	unknown := 0
	for _, op := range history {
		if op.Output.(Output).Unknown {
			unknown++
		}
	}
	res, how := decide(start, history, checkBudget)
	if res == porcupine.Unknown {
		// Undecided is no finding either way: give it one long try
		// before calling it undecided.
		t.Logf("%d operations (%d of unknown outcome) undecided after %v; trying for %v more",
			len(history), unknown, time.Since(began).Round(time.Millisecond), longCheckBudget)
		res, how = decide(start, history, longCheckBudget)
	}
	t.Logf("%d operations (%d of unknown outcome) checked in %v: %s",
		len(history), unknown, time.Since(began).Round(time.Millisecond), res)
	if res != porcupine.Ok {
		t.Logf("%s", Explain(start, history))
		path := filepath.Join(os.TempDir(), fmt.Sprintf("redoubt-linearizability-%d.html", seed))
		if err := visualize(start, history, how, path); err != nil {
			t.Logf("writing the visualization: %v", err)
		} else {
			t.Logf("visualization: %s", path)
		}
		path = strings.TrimSuffix(path, ".html") + ".json"
		if err := writeHistory(path, history); err != nil {
			t.Logf("writing the history: %v", err)
		} else {
			t.Logf("history: %s", path)
		}
	}
	switch res {
	case porcupine.Illegal:
		t.Fatalf("the history is not linearizable (seed %d)", seed)
	case porcupine.Unknown:
		t.Fatalf("the checker timed out (seed %d); rerun with a shorter workload", seed)
	}
}

// visualize writes to path porcupine's visualization of a search of
// history under r: the longest linearizations it found, and the states
// after them.
func visualize(start Start, history []porcupine.Operation, r rules, path string) error {
	m, done := bounded(start, r, time.Now().Add(visualBudget))
	res, info := porcupine.CheckOperationsVerbose(m, history, visualBudget)
	done(res)
	// The visualization steps through the linearizations again, which
	// the search found with steps that did not give up.
	return porcupine.VisualizePath(newModel(start, r, bounds{ctx: context.Background()}), info, path)
}

// writeHistory writes history to path as JSON, one operation a line, for
// a reader to study or replay.
func writeHistory(path string, history []porcupine.Operation) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, op := range history {
		if err := enc.Encode(op); err != nil {
			return err
		}
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// Validate returns an error naming the first operation the model cannot
// check: an unknown op, a write of an empty or repeated value, a
// versioning state other than Enabled or Suspended, or an Input or Output
// of another type. The model would take any of these for a violation.
func Validate(history []porcupine.Operation) error {
	written := map[string]bool{}
	for i, op := range history {
		in, ok := op.Input.(Input)
		if !ok {
			return fmt.Errorf("operation %d: input %T is not a lincheck.Input", i, op.Input)
		}
		if _, ok := op.Output.(Output); !ok {
			return fmt.Errorf("operation %d: output %T is not a lincheck.Output", i, op.Output)
		}
		switch in.Op {
		case Put, Create:
			if in.Value == "" {
				return fmt.Errorf("operation %d: %s of %q writes an empty value", i, in.Op, in.Key)
			}
			if written[in.Value] {
				return fmt.Errorf("operation %d: %s of %q writes %q, which another write wrote too", i, in.Op, in.Key, in.Value)
			}
			written[in.Value] = true
		case SetVersioning:
			if in.Versioning != Enabled && in.Versioning != Suspended {
				return fmt.Errorf("operation %d: versioning state %q", i, in.Versioning)
			}
		case Get, Delete, List, ListVersions, CreateBucket, DeleteBucket, HeadBucket, GetVersioning:
		default:
			return fmt.Errorf("operation %d: unknown op %q", i, in.Op)
		}
		if (in.Op == Get || in.Op == Put || in.Op == Create || in.Op == Delete) && in.Key == "" {
			return fmt.Errorf("operation %d: %s names no key", i, in.Op)
		}
		if op.Call > op.Return {
			return fmt.Errorf("operation %d: %s of %q returns (%d) before its call (%d)", i, in.Op, in.Key, op.Return, op.Call)
		}
	}
	return nil
}

// RandomInput draws one request of the register subset: 40% GET, 30% PUT,
// 10% DELETE, 20% create-if-absent, on one of keys, writing value.
func RandomInput(rng *rand.Rand, keys []string, value string) Input {
	in := Input{Key: keys[rng.IntN(len(keys))], Value: value}
	switch r := rng.IntN(10); {
	case r < 4:
		in.Op = Get
	case r < 7:
		in.Op = Put
	case r < 8:
		in.Op = Delete
	default:
		in.Op = Create
	}
	return in
}
