// Package lincheck is the linearizability model Redoubt's fault tests check
// their histories against, with github.com/anishathalye/porcupine: a
// register per key, written by PUT, DELETE and create-if-absent
// (If-None-Match: *) and read by GET. The tests of the metadata layer and
// of the S3 API record the same kinds of operations and share it.
//
// It is test support: no production code imports it.
package lincheck

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// Ops of an Input.
const (
	Get    = "get"
	Put    = "put"
	Delete = "del"
	Create = "create" // PUT with If-None-Match: *
)

// Input is one request: Op on Key, with the Value a put or create writes.
// Values are never empty: the empty string stands for "absent".
type Input struct {
	Op    string
	Key   string
	Value string
	Node  int // which node took the request, for the visualization
}

// Output is what the request answered.
type Output struct {
	Value   string // get: the value
	Found   bool   // get: the key had a value
	OK      bool   // create: it was absent and is now set
	Unknown bool   // a write that failed in a way that leaves its effect unknown
}

// Model is the register per key. An operation whose outcome is unknown may
// or may not have happened; record it with a return time after every other
// operation (it may take effect any time after its call).
var Model = porcupine.NondeterministicModel{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(Input).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() []any { return []any{""} },
	Step: func(state, input, output any) []any {
		s, in, out := state.(string), input.(Input), output.(Output)
		var next string
		switch in.Op {
		case Get:
			if out.Found == (s != "") && out.Value == s {
				return []any{s}
			}
			return nil
		case Put:
			next = in.Value
		case Delete:
			next = "" // deleting a missing key succeeds too
		case Create:
			switch {
			case out.Unknown && s == "":
				return []any{s, in.Value}
			case out.Unknown:
				return []any{s}
			case out.OK != (s == ""):
				return nil
			case out.OK:
				return []any{in.Value}
			}
			return []any{s}
		}
		if out.Unknown {
			return []any{s, next}
		}
		return []any{next}
	},
	Equal: func(a, b any) bool { return a == b },
	DescribeOperation: func(input, output any) string {
		in, out := input.(Input), output.(Output)
		switch {
		case out.Unknown:
			return fmt.Sprintf("%s(%s) %s -> ? (node %d)", in.Op, in.Key, in.Value, in.Node)
		case in.Op == Get && out.Found:
			return fmt.Sprintf("get(%s) -> %s (node %d)", in.Key, out.Value, in.Node)
		case in.Op == Get:
			return fmt.Sprintf("get(%s) -> absent (node %d)", in.Key, in.Node)
		case in.Op == Create:
			return fmt.Sprintf("create(%s) %s -> %v (node %d)", in.Key, in.Value, out.OK, in.Node)
		}
		return fmt.Sprintf("%s(%s) %s (node %d)", in.Op, in.Key, in.Value, in.Node)
	},
}

// Pending is the return time to record for an operation of unknown outcome.
const Pending = int64(1) << 62

// Check checks history against Model, logs the result with seed, writes
// porcupine's visualization to a temporary file on failure, and fails t if
// the history is not linearizable or the check did not finish.
func Check(t testing.TB, history []porcupine.Operation, seed uint64) {
	t.Helper()
	start := time.Now()
	unknown := 0
	for _, op := range history {
		if op.Output.(Output).Unknown {
			unknown++
		}
	}
	res, info := porcupine.CheckOperationsVerbose(Model.ToModel(), history, 60*time.Second)
	t.Logf("%d operations (%d of unknown outcome) checked in %v: %s",
		len(history), unknown, time.Since(start).Round(time.Millisecond), res)
	if res != porcupine.Ok {
		path := filepath.Join(os.TempDir(), fmt.Sprintf("redoubt-linearizability-%d.html", seed))
		if err := porcupine.VisualizePath(Model.ToModel(), info, path); err != nil {
			t.Logf("writing the visualization: %v", err)
		} else {
			t.Logf("visualization: %s", path)
		}
	}
	switch res {
	case porcupine.Illegal:
		t.Fatalf("the history is not linearizable (seed %d)", seed)
	case porcupine.Unknown:
		t.Fatalf("the checker timed out (seed %d); rerun with a shorter workload", seed)
	}
}

// RandomInput draws one request of the tests' mix: 40% GET, 30% PUT, 10%
// DELETE, 20% create-if-absent, on one of keys, writing value.
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
