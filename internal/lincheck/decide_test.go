package lincheck

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// churned is one key's history from Redoubt's whole-cluster simulation
// (seed 18028677886947702555, see TestDecideSimulationHistories), cut
// down to 18 operations that porcupine, placing the operations of unknown
// outcome itself, still takes seconds to decide. The bucket is created by
// a request of unknown outcome; the key's null version v1 goes when a
// delete that began before it was written ends after it; versioning is
// enabled (and maybe suspended) by requests of unknown outcome; eight
// requests never answer, a bucket deletion and writes among them; and the
// final reads leave only linearizations in which two of those took
// effect.
func churned() []porcupine.Operation {
	return []porcupine.Operation{
		op(0, 308, del("k"), ok),
		op(20, Pending, bucket(CreateBucket), unknown),
		op(253, 257, put("k", "v1"), ok),
		op(373, Pending, setV(Enabled), unknown),
		op(437, 439, put("k", "v2"), id("B")),
		op(507, 511, put("k", "v3"), id("C")),
		op(509, Pending, setV(Suspended), unknown),
		op(515, Pending, put("k", "v4"), unknown),
		op(2600, Pending, delV("k", "B"), unknown),
		op(2688, Pending, del("k"), unknown),
		op(2987, Pending, bucket(DeleteBucket), unknown),
		op(3004, Pending, put("k", "v5"), unknown),
		op(5358, 5359, delV("k", "E"), ok),
		op(5409, 5454, put("k", "v6"), id("D")),
		op(5500, 5501, bucket(CreateBucket), fail(BucketExists)),
		op(14291, 14296, get("k"), got("v6", "D")),
		op(14299, 14302, list(""), objects("k", "v6")),
		op(14302, 14305, listV(""), versions("k", "v6@D", "v3@C", "v2@B")),
	}
}

var missing = Start{Missing: []string{"b"}}

// TestDecideChurnedBucket checks that the shape above decides at once, and
// that the same history with its last read changed to an older version is
// still rejected.
func TestDecideChurnedBucket(t *testing.T) {
	began := time.Now()
	res, _ := decide(missing, churned(), time.Minute)
	t.Logf("decided %s in %v", res, time.Since(began).Round(time.Microsecond))
	if res != porcupine.Ok {
		t.Fatalf("the churned bucket's history checks %s, want Ok", res)
	}
	if time.Since(began) > 10*time.Second {
		t.Errorf("the churned bucket's history took %v to decide", time.Since(began))
	}

	bad := churned()
	bad[15].Output = got("v3", "C") // the latest version read as the one before
	began = time.Now()
	res, how := decide(missing, bad, time.Minute)
	t.Logf("the bad history decided %s in %v, with %+v", res, time.Since(began).Round(time.Millisecond), how)
	if res != porcupine.Illegal {
		t.Fatalf("the churned bucket's history with an older version read last checks %s, want Illegal", res)
	}
	if e := Explain(missing, bad); !strings.Contains(e, "is not linearizable") {
		t.Errorf("Explain of the bad history:\n%s", e)
	}
}

// TestDecideSimulationHistories checks two histories of Redoubt's
// whole-cluster simulation that porcupine, placing their operations of
// unknown outcome itself, could not decide in six minutes
// (18028677886947702555: 135 operations, 28 of unknown outcome) or
// decided in about a minute (17352751329444806523: 115, 32), both of them
// around a bucket that the workload deletes and creates again. They must
// decide at once, and the first, its key's last read changed to an older
// version, must be rejected.
func TestDecideSimulationHistories(t *testing.T) {
	start := Start{Missing: []string{"simchurn"}}
	for _, seed := range []string{"18028677886947702555", "17352751329444806523"} {
		h := readHistory(t, filepath.Join("testdata", "sim-"+seed+".jsonl"))
		began := time.Now()
		res, _ := decide(start, h, time.Minute)
		t.Logf("seed %s: %s in %v", seed, res, time.Since(began).Round(time.Microsecond))
		if res != porcupine.Ok {
			t.Errorf("seed %s: the history checks %s, want Ok", seed, res)
		}
		if time.Since(began) > 10*time.Second {
			t.Errorf("seed %s: the history took %v to decide", seed, time.Since(began))
		}
	}
	if testing.Short() {
		t.Skip("the violation takes seconds to show")
	}
	h := readHistory(t, filepath.Join("testdata", "sim-18028677886947702555.jsonl"))
	changed := 0
	for i := range h {
		in, out := h[i].Input.(Input), h[i].Output.(Output)
		if in.Op == Get && in.Key == "b/1" && out.Value == "c1-34" {
			h[i].Output = got("c2-29", "00dc6acfb6d400000000")
			changed++
		}
	}
	if changed != 1 {
		t.Fatalf("%d reads changed, want 1", changed)
	}
	began := time.Now()
	res, how := decide(start, h, time.Minute)
	t.Logf("with an older version read last: %s in %v, by %+v", res, time.Since(began).Round(time.Millisecond), how)
	if res != porcupine.Illegal {
		t.Errorf("with an older version read last, the history checks %s, want Illegal", res)
	}
}

// readHistory reads a history as CheckFrom writes one.
func readHistory(t *testing.T, path string) []porcupine.Operation {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var h []porcupine.Operation
	dec := json.NewDecoder(bytes.NewReader(data))
	for dec.More() {
		var op struct {
			ClientId     int
			Input        Input
			Output       Output
			Call, Return int64
		}
		if err := dec.Decode(&op); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		h = append(h, porcupine.Operation{ClientId: op.ClientId, Input: op.Input, Call: op.Call, Output: op.Output, Return: op.Return})
	}
	return h
}

// TestDecideShortcuts attacks the shortcuts decide takes: a bounded model
// that rejects must not be taken for a violation, and the loose model that
// accepts must not be taken for linearizable.
func TestDecideShortcuts(t *testing.T) {
	// Legal only with all three writes of unknown outcome applied: the
	// searches bounded to fewer reject it.
	three := []porcupine.Operation{
		op(0, Pending, put("k", "v1"), unknown), op(1, Pending, put("k", "v2"), unknown),
		op(2, Pending, put("k", "v3"), unknown),
		op(10, 11, listV(""), versions("k", "v3@C", "v2@B", "v1@A")),
	}
	if res, _ := checkUnder(enabled, three, rules{applied: 2}); res != porcupine.Illegal {
		t.Fatalf("bounded to two applied, the history checks %s; the test attacks nothing", res)
	}
	if res, _ := decide(enabled, three, time.Minute); res != porcupine.Ok {
		t.Errorf("a history legal with three writes of unknown outcome applied checks %s", res)
	}

	// Illegal only by where a straddling write may go, with requests of
	// unknown outcome (without effect: the bucket exists), for the loose
	// model to run: it accepts what the model rejects.
	bad := append(straddlingWindow("v2@E", "v0@C", "v1@B", "v00@A"),
		op(60, Pending, bucket(CreateBucket), unknown), op(61, Pending, bucket(CreateBucket), unknown))
	if res, _ := checkUnder(enabled, bad, rules{applied: maxUnknowns, loose: true}); res != porcupine.Ok {
		t.Fatalf("the loose model checks the history %s; the test attacks nothing", res)
	}
	if res, _ := decide(enabled, bad, time.Minute); res != porcupine.Illegal {
		t.Errorf("a straddling write ordered below more changes than it overlaps checks %s", res)
	}
}

// TestVariants checks every history of TestModel with every variant of
// the model decide searches: the model placing operations of unknown
// outcome itself and porcupine placing them agree with the case, a bounded
// one accepts only legal histories, the loose one rejects only illegal
// ones, and so does decide.
func TestVariants(t *testing.T) {
	variants := []rules{
		{applied: maxUnknowns}, lazily, {applied: maxUnknowns, loose: true},
		{applied: 0}, {applied: 1}, {applied: 2},
	}
	for _, c := range modelCases {
		for _, r := range variants {
			res, err := checkUnder(c.start, c.ops, r)
			if err != nil {
				t.Fatalf("%s, %+v: %v", c.name, r, err)
			}
			exact := !r.loose && r.applied == maxUnknowns
			switch {
			case exact && (res == porcupine.Ok) != c.legal,
				res == porcupine.Ok && !r.loose && !c.legal,
				res == porcupine.Illegal && r.loose && c.legal:
				t.Errorf("%s: %+v checks %s", c.name, r, res)
			}
		}
		if res, _ := decide(c.start, c.ops, time.Minute); (res == porcupine.Ok) != c.legal {
			t.Errorf("%s: decide checks %s", c.name, res)
		}
	}
}

// checkUnder checks history under r, all partitions, within a minute.
func checkUnder(start Start, history []porcupine.Operation, r rules) (porcupine.CheckResult, error) {
	for i := range history {
		history[i].ClientId = i
	}
	m, done := bounded(start, r, time.Now().Add(time.Minute))
	res := porcupine.CheckOperationsTimeout(m, history, time.Minute)
	return res, done(res)
}
