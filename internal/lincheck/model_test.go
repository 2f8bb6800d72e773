package lincheck

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/anishathalye/porcupine"
)

// Requests on bucket "b", for the tables.
func put(k, v string) Input { return Input{Op: Put, Bucket: "b", Key: k, Value: v} }
func putIf(k, v, match string) Input {
	return Input{Op: Put, Bucket: "b", Key: k, Value: v, IfMatch: match}
}
func create(k, v string) Input  { return Input{Op: Create, Bucket: "b", Key: k, Value: v} }
func get(k string) Input        { return Input{Op: Get, Bucket: "b", Key: k} }
func getV(k, id string) Input   { return Input{Op: Get, Bucket: "b", Key: k, VersionID: id} }
func del(k string) Input        { return Input{Op: Delete, Bucket: "b", Key: k} }
func delV(k, id string) Input   { return Input{Op: Delete, Bucket: "b", Key: k, VersionID: id} }
func list(prefix string) Input  { return Input{Op: List, Bucket: "b", Prefix: prefix} }
func listV(prefix string) Input { return Input{Op: ListVersions, Bucket: "b", Prefix: prefix} }
func setV(st string) Input      { return Input{Op: SetVersioning, Bucket: "b", Versioning: st} }
func bucket(op string) Input    { return Input{Op: op, Bucket: "b"} }

// Answers.
var (
	ok      = Output{}
	unknown = Output{Unknown: true}
)

func id(v string) Output          { return Output{VersionID: v} }
func fail(code string) Output     { return Output{Err: code} }
func got(v, id string) Output     { return Output{Value: v, VersionID: id} }
func marker(id string) Output     { return Output{DeleteMarker: true, VersionID: id} }
func versioning(st string) Output { return Output{Versioning: st} }
func objects(kv ...string) Output {
	var out Output
	for i := 0; i+1 < len(kv); i += 2 {
		out.Objects = append(out.Objects, Object{Key: kv[i], Value: kv[i+1]})
	}
	return out
}

// versions lists key k's versions: "value@id", or "marker@id".
func versions(k string, vs ...string) Output {
	out := Output{Versions: []Version{}}
	for _, s := range vs {
		value, id, _ := strings.Cut(s, "@")
		v := Version{Key: k, VersionID: id, Value: value}
		if value == "marker" {
			v.Value, v.DeleteMarker = "", true
		}
		out.Versions = append(out.Versions, v)
	}
	return out
}

// op is a request made at call that answered at ret.
func op(call, ret int64, in Input, out Output) porcupine.Operation {
	return porcupine.Operation{Input: in, Call: call, Output: out, Return: ret}
}

// seq makes a history of requests one after the other, in the order
// given, each taking one unit of time.
func seq(reqs ...porcupine.Operation) []porcupine.Operation {
	for i := range reqs {
		reqs[i].Call, reqs[i].Return = int64(2*i), int64(2*i+1)
	}
	return reqs
}

// req is a request of a seq history.
func req(in Input, out Output) porcupine.Operation { return op(0, 0, in, out) }

// enabled starts a history with bucket b versioned.
var enabled = Start{Versioning: map[string]string{"b": Enabled}}

type modelCase struct {
	name  string
	start Start
	ops   []porcupine.Operation
	legal bool
}

var modelCases = []modelCase{
	// Objects in an unversioned bucket: a register per key.
	{name: "get sees the put before it", ops: seq(req(put("k", "v1"), ok), req(get("k"), got("v1", ""))), legal: true},
	{name: "get misses the put before it", ops: seq(req(put("k", "v1"), ok), req(get("k"), fail(NoSuchKey)))},
	{name: "a put replaces the null version", ops: seq(req(put("k", "v1"), ok), req(put("k", "v2"), ok), req(get("k"), got("v2", ""))), legal: true},
	{name: "a put replaced, still read", ops: seq(req(put("k", "v1"), ok), req(put("k", "v2"), ok), req(get("k"), got("v1", "")))},
	{name: "a delete removes the null version", ops: seq(req(put("k", "v1"), ok), req(del("k"), ok), req(get("k"), fail(NoSuchKey))), legal: true},
	{name: "a deleted value read", ops: seq(req(put("k", "v1"), ok), req(del("k"), ok), req(get("k"), got("v1", "")))},
	{name: "an unversioned delete makes no marker", ops: seq(req(put("k", "v1"), ok), req(del("k"), marker("")))},
	{name: "an unversioned put shows no version ID", ops: seq(req(put("k", "v1"), id(NullID)))},
	{name: "concurrent put and get", ops: []porcupine.Operation{
		op(0, 10, put("k", "v1"), ok), op(1, 2, get("k"), got("v1", "")), op(3, 4, get("k"), fail(NoSuchKey)),
	}},
	{name: "concurrent put, get before and after", ops: []porcupine.Operation{
		op(0, 10, put("k", "v1"), ok), op(1, 2, get("k"), fail(NoSuchKey)), op(3, 4, get("k"), got("v1", "")),
	}, legal: true},

	// Conditional writes.
	{name: "create on an absent key", ops: seq(req(create("k", "v1"), ok), req(get("k"), got("v1", ""))), legal: true},
	{name: "create on an existing key fails", ops: seq(req(put("k", "v1"), ok), req(create("k", "v2"), fail(PreconditionFailed))), legal: true},
	{name: "create on an existing key succeeds", ops: seq(req(put("k", "v1"), ok), req(create("k", "v2"), ok))},
	{name: "create over a delete marker", start: enabled, ops: seq(
		req(put("k", "v1"), id("A")), req(del("k"), marker("B")), req(create("k", "v2"), id("C")), req(get("k"), got("v2", "C")),
	), legal: true},
	{name: "create over a delete marker refused", start: enabled, ops: seq(
		req(put("k", "v1"), id("A")), req(del("k"), marker("B")), req(create("k", "v2"), fail(PreconditionFailed)),
	)},
	{name: "if-match the current value", ops: seq(req(put("k", "v1"), ok), req(putIf("k", "v2", "v1"), ok), req(get("k"), got("v2", ""))), legal: true},
	{name: "if-match an old value fails", ops: seq(
		req(put("k", "v1"), ok), req(put("k", "v2"), ok), req(putIf("k", "v3", "v1"), fail(PreconditionFailed)),
	), legal: true},
	{name: "if-match an old value succeeds", ops: seq(req(put("k", "v1"), ok), req(put("k", "v2"), ok), req(putIf("k", "v3", "v1"), ok))},
	{name: "if-match an absent key", ops: seq(req(putIf("k", "v1", "v0"), fail(NoSuchKey))), legal: true},
	{name: "if-match an absent key answers 412", ops: seq(req(putIf("k", "v1", "v0"), fail(PreconditionFailed)))},
	{name: "if-match over a delete marker", start: enabled, ops: seq(
		req(put("k", "v1"), id("A")), req(del("k"), marker("B")), req(putIf("k", "v2", "v1"), fail(NoSuchKey)),
	), legal: true},

	// Versions.
	{name: "versions listed newest first", start: enabled, ops: seq(
		req(put("k", "v1"), id("A")), req(put("k", "v2"), id("B")),
		req(getV("k", "A"), got("v1", "")), req(get("k"), got("v2", "B")), req(listV(""), versions("k", "v2@B", "v1@A")),
	), legal: true},
	{name: "versions listed oldest first", start: enabled, ops: seq(
		req(put("k", "v1"), id("A")), req(put("k", "v2"), id("B")), req(listV(""), versions("k", "v1@A", "v2@B")),
	)},
	{name: "get of the latest names another version", start: enabled, ops: seq(
		req(put("k", "v1"), id("A")), req(get("k"), got("v1", "X")),
	)},
	{name: "a version ID given twice", start: enabled, ops: seq(req(put("k", "v1"), id("A")), req(put("k", "v2"), id("A")))},
	{name: "an enabled put answers null", start: enabled, ops: seq(req(put("k", "v1"), id(NullID)))},
	{name: "a deleted version read after its deletion returned", start: enabled, ops: seq(
		req(put("k", "v1"), id("A")), req(put("k", "v2"), id("B")), req(delV("k", "A"), ok), req(getV("k", "A"), got("v1", "")),
	)},
	{name: "a deleted version is no such version", start: enabled, ops: seq(
		req(put("k", "v1"), id("A")), req(put("k", "v2"), id("B")), req(delV("k", "A"), ok), req(getV("k", "A"), fail(NoSuchVersion)),
		req(listV(""), versions("k", "v2@B")),
	), legal: true},
	{name: "a deleted version read while the deletion runs", start: enabled, ops: []porcupine.Operation{
		op(0, 1, put("k", "v1"), id("A")), op(2, 10, delV("k", "A"), ok), op(3, 4, getV("k", "A"), got("v1", "")),
		op(5, 6, getV("k", "A"), fail(NoSuchVersion)),
	}, legal: true},
	{name: "deleting the latest version makes the next the latest", start: enabled, ops: seq(
		req(put("k", "v1"), id("A")), req(put("k", "v2"), id("B")), req(delV("k", "B"), ok), req(get("k"), got("v1", "A")),
	), legal: true},
	{name: "deleting the latest version, still read", start: enabled, ops: seq(
		req(put("k", "v1"), id("A")), req(put("k", "v2"), id("B")), req(delV("k", "B"), ok), req(get("k"), got("v2", "B")),
	)},
	{name: "deleting an absent version", start: enabled, ops: seq(
		req(put("k", "v1"), id("A")), req(delV("k", "Z"), ok), req(get("k"), got("v1", "A")),
	), legal: true},
	{name: "deleting an absent version removes a marker", start: enabled, ops: seq(req(delV("k", "Z"), marker("")))},
	{name: "a delete adds a marker", start: enabled, ops: seq(
		req(put("k", "v1"), id("A")), req(del("k"), marker("B")), req(get("k"), fail(NoSuchKey)),
		req(getV("k", "B"), fail(MethodNotAllowed)), req(getV("k", "A"), got("v1", "")), req(list(""), objects()),
		req(listV(""), versions("k", "marker@B", "v1@A")),
	), legal: true},
	{name: "a marker's version read as absent", start: enabled, ops: seq(
		req(put("k", "v1"), id("A")), req(del("k"), marker("B")), req(getV("k", "B"), fail(NoSuchVersion)),
	)},
	{name: "a marker as latest still read", start: enabled, ops: seq(
		req(put("k", "v1"), id("A")), req(del("k"), marker("B")), req(get("k"), got("v1", "A")),
	)},
	{name: "removing the marker brings the version back", start: enabled, ops: seq(
		req(put("k", "v1"), id("A")), req(del("k"), marker("B")), req(delV("k", "B"), marker("")), req(get("k"), got("v1", "A")),
	), legal: true},
	{name: "removing a marker answered as a version", start: enabled, ops: seq(
		req(put("k", "v1"), id("A")), req(del("k"), marker("B")), req(delV("k", "B"), ok),
	)},

	// Versioning changes.
	{name: "a put after versioning was enabled keeps the null version", ops: seq(
		req(put("k", "v1"), ok), req(setV(Enabled), ok), req(put("k", "v2"), id("B")),
		req(getV("k", NullID), got("v1", "")), req(listV(""), versions("k", "v2@B", "v1@null")),
	), legal: true},
	{name: "a put after versioning was enabled replaced the null version", ops: seq(
		req(put("k", "v1"), ok), req(setV(Enabled), ok), req(put("k", "v2"), id("B")), req(getV("k", NullID), fail(NoSuchVersion)),
	)},
	{name: "a put after versioning was enabled wrote the null version", ops: seq(
		req(put("k", "v1"), ok), req(setV(Enabled), ok), req(put("k", "v2"), id(NullID)),
	)},
	{name: "a suspended bucket's puts replace the null version", start: enabled, ops: seq(
		req(put("k", "v1"), id("A")), req(setV(Suspended), ok), req(put("k", "v2"), id(NullID)), req(put("k", "v3"), id(NullID)),
		req(get("k"), got("v3", NullID)), req(listV(""), versions("k", "v3@null", "v1@A")),
	), legal: true},
	{name: "a suspended put answers without a version ID, as S3 does", start: enabled, ops: seq(
		req(setV(Suspended), ok), req(put("k", "v1"), ok), req(get("k"), got("v1", NullID)),
	), legal: true},
	{name: "a suspended bucket keeps two null versions", start: enabled, ops: seq(
		req(put("k", "v1"), id("A")), req(setV(Suspended), ok), req(put("k", "v2"), id(NullID)), req(put("k", "v3"), id(NullID)),
		req(listV(""), versions("k", "v3@null", "v2@null", "v1@A")),
	)},
	{name: "the null version moves to the top when replaced", ops: seq(
		req(put("k", "v1"), ok), req(setV(Enabled), ok), req(put("k", "v2"), id("B")), req(setV(Suspended), ok),
		req(put("k", "v3"), id(NullID)), req(listV(""), versions("k", "v3@null", "v2@B")),
	), legal: true},
	{name: "the replaced null version still listed", ops: seq(
		req(put("k", "v1"), ok), req(setV(Enabled), ok), req(put("k", "v2"), id("B")), req(setV(Suspended), ok),
		req(put("k", "v3"), id(NullID)), req(listV(""), versions("k", "v3@null", "v2@B", "v1@null")),
	)},
	{name: "a suspended delete replaces the null version with a marker", ops: seq(
		req(put("k", "v1"), ok), req(setV(Suspended), ok), req(del("k"), marker(NullID)),
		req(getV("k", NullID), fail(MethodNotAllowed)), req(listV(""), versions("k", "marker@null")),
	), legal: true},
	{name: "a suspended delete keeps the null version", ops: seq(
		req(put("k", "v1"), ok), req(setV(Suspended), ok), req(del("k"), marker(NullID)), req(getV("k", NullID), got("v1", "")),
	)},
	{name: "the null version's ID as each state shows it", ops: seq(
		req(put("k", "v1"), ok), req(get("k"), got("v1", "")), req(listV(""), versions("k", "v1@null")),
		req(setV(Suspended), ok), req(get("k"), got("v1", NullID)), req(getV("k", NullID), got("v1", "")),
	), legal: true},
	{name: "an unversioned bucket's null version read as \"null\"", ops: seq(req(put("k", "v1"), ok), req(get("k"), got("v1", NullID)))},
	{name: "a versioned bucket's null version read without an ID", ops: seq(
		req(put("k", "v1"), ok), req(setV(Enabled), ok), req(get("k"), got("v1", "")),
	)},
	{name: "a listing shows the null version without an ID", ops: seq(req(put("k", "v1"), ok), req(listV(""), versions("k", "v1@")))},
	{name: "versioning state read back", ops: seq(
		req(bucket(GetVersioning), versioning(Unversioned)), req(setV(Enabled), ok), req(bucket(GetVersioning), versioning(Enabled)),
		req(setV(Suspended), ok), req(bucket(GetVersioning), versioning(Suspended)),
	), legal: true},
	{name: "a versioning change not read back", ops: seq(req(setV(Enabled), ok), req(bucket(GetVersioning), versioning(Unversioned)))},

	// Buckets.
	{name: "creating an existing bucket", ops: seq(req(bucket(CreateBucket), fail(BucketExists))), legal: true},
	{name: "creating an existing bucket succeeds", ops: seq(req(bucket(CreateBucket), ok))},
	{name: "deleting a bucket with a version", ops: seq(req(put("k", "v1"), ok), req(bucket(DeleteBucket), ok))},
	{name: "deleting a bucket with a version refused", ops: seq(req(put("k", "v1"), ok), req(bucket(DeleteBucket), fail(BucketNotEmpty))), legal: true},
	{name: "deleting a bucket with only a marker", start: enabled, ops: seq(
		req(put("k", "v1"), id("A")), req(del("k"), marker("B")), req(delV("k", "A"), ok), req(bucket(DeleteBucket), ok),
	)},
	{name: "a put acknowledged after the bucket was deleted", ops: seq(
		req(put("k", "v1"), ok), req(del("k"), ok), req(bucket(DeleteBucket), ok), req(put("k", "v2"), ok),
	)},
	{name: "a deleted bucket answers no such bucket", ops: seq(
		req(put("k", "v1"), ok), req(del("k"), ok), req(bucket(DeleteBucket), ok), req(put("k", "v2"), fail(NoSuchBucket)),
		req(get("k"), fail(NoSuchBucket)), req(list(""), fail(NoSuchBucket)), req(bucket(HeadBucket), fail(NoSuchBucket)),
		req(bucket(GetVersioning), fail(NoSuchBucket)), req(setV(Enabled), fail(NoSuchBucket)),
	), legal: true},
	{name: "a bucket created again is empty and unversioned", ops: seq(
		req(setV(Enabled), ok), req(put("k", "v1"), id("A")), req(delV("k", "A"), ok), req(bucket(DeleteBucket), ok),
		req(bucket(CreateBucket), ok), req(bucket(GetVersioning), versioning(Unversioned)), req(get("k"), fail(NoSuchKey)),
		req(put("k", "v2"), ok), req(get("k"), got("v2", "")),
	), legal: true},
	{name: "a missing bucket", start: Start{Missing: []string{"b"}}, ops: seq(
		req(get("k"), fail(NoSuchBucket)), req(bucket(CreateBucket), ok), req(get("k"), fail(NoSuchKey)),
	), legal: true},
	{name: "a missing bucket read as existing", start: Start{Missing: []string{"b"}}, ops: seq(req(get("k"), fail(NoSuchKey)))},
	{name: "a bucket deleted in one key's partition and written in another's", ops: seq(
		req(put("k", "v1"), ok), req(del("k"), ok), req(bucket(DeleteBucket), ok), req(put("j", "v2"), ok),
	)},

	// Listings.
	{name: "a list sees a put acknowledged before it", ops: seq(
		req(put("a", "v1"), ok), req(put("b", "v2"), ok), req(list(""), objects("a", "v1", "b", "v2")), req(list("a"), objects("a", "v1")),
	), legal: true},
	{name: "a list started after a put was acknowledged misses it", ops: seq(
		req(put("a", "v1"), ok), req(put("b", "v2"), ok), req(list(""), objects("b", "v2")),
	)},
	{name: "a list shows a key under another prefix only when asked", ops: seq(
		req(put("a", "v1"), ok), req(list("b"), objects()),
	), legal: true},
	{name: "a list shows an old value", ops: seq(req(put("a", "v1"), ok), req(put("a", "v2"), ok), req(list(""), objects("a", "v1")))},
	{name: "a list shows a key whose latest is a marker", start: enabled, ops: seq(
		req(put("a", "v1"), id("A")), req(del("a"), marker("B")), req(list(""), objects("a", "v1")),
	)},
	{name: "a list shows a key never written", ops: seq(req(list(""), objects("z", "v9")))},
	{name: "a list is no snapshot across keys", ops: []porcupine.Operation{
		op(0, 10, list(""), objects("b", "v2")), op(1, 2, put("a", "v1"), ok), op(3, 4, put("b", "v2"), ok),
	}, legal: true},
	{name: "a version list shows a state never current", start: enabled, ops: []porcupine.Operation{
		op(0, 1, put("k", "v1"), id("A")), op(2, 3, put("k", "v2"), id("B")),
		op(4, 20, listV(""), versions("k", "v3@C", "v1@A")),
		op(5, 6, put("k", "v3"), id("C")), op(7, 8, delV("k", "A"), ok), op(9, 10, delV("k", "B"), ok),
	}},
	{name: "a version list shows a state current during it", start: enabled, ops: []porcupine.Operation{
		op(0, 1, put("k", "v1"), id("A")), op(2, 3, put("k", "v2"), id("B")),
		op(4, 20, listV(""), versions("k", "v3@C", "v1@A")),
		op(5, 6, put("k", "v3"), id("C")), op(7, 8, delV("k", "B"), ok), op(11, 12, delV("k", "A"), ok),
	}, legal: true},

	// Unknown outcomes.
	{name: "a put of unknown outcome seen", ops: []porcupine.Operation{
		op(0, Pending, put("k", "v1"), unknown), op(5, 6, get("k"), fail(NoSuchKey)), op(7, 8, get("k"), got("v1", "")),
	}, legal: true},
	{name: "a put of unknown outcome seen, then gone", ops: []porcupine.Operation{
		op(0, Pending, put("k", "v1"), unknown), op(5, 6, get("k"), got("v1", "")), op(7, 8, get("k"), fail(NoSuchKey)),
	}},
	{name: "a put of unknown outcome seen before its call", ops: []porcupine.Operation{
		op(5, Pending, put("k", "v1"), unknown), op(1, 2, get("k"), got("v1", "")),
	}},
	{name: "a version of unknown outcome is named by a listing", start: enabled, ops: []porcupine.Operation{
		op(0, Pending, put("k", "v1"), unknown), op(1, 2, put("k", "v2"), id("B")),
		op(5, 6, listV(""), versions("k", "v2@B", "v1@A")), op(7, 8, getV("k", "A"), got("v1", "")),
		op(9, 10, delV("k", "A"), ok), op(11, 12, listV(""), versions("k", "v2@B")),
	}, legal: true},
	{name: "a version of unknown outcome named out of order", start: enabled, ops: []porcupine.Operation{
		op(0, Pending, put("k", "v1"), unknown), op(1, 2, put("k", "v2"), id("B")),
		op(5, 6, listV(""), versions("k", "v2@B", "v1@C")),
	}},
	{name: "a new version's ID sorts below the latest's", start: enabled, ops: seq(
		req(put("k", "v1"), id("B")), req(put("k", "v2"), id("A")),
	)},
	{name: "a version of unknown outcome named twice", start: enabled, ops: []porcupine.Operation{
		op(0, Pending, put("k", "v1"), unknown), op(5, 6, listV(""), versions("k", "v1@Q")),
		op(7, 8, listV(""), versions("k", "v1@R")),
	}},
	{name: "a version of unknown outcome named by a read of it", start: enabled, ops: []porcupine.Operation{
		op(0, Pending, put("k", "v1"), unknown), op(5, 6, getV("k", "Q"), got("v1", "")),
		op(7, 8, get("k"), got("v1", "Q")),
	}, legal: true},
	{name: "a marker of unknown outcome deleted by ID", start: enabled, ops: []porcupine.Operation{
		op(0, 1, put("k", "v1"), id("A")), op(2, Pending, del("k"), unknown),
		op(5, 6, delV("k", "M"), marker("")), op(7, 8, listV(""), versions("k", "v1@A")),
	}, legal: true},
	{name: "the null version's ID names a version of unknown outcome", start: enabled, ops: []porcupine.Operation{
		op(0, Pending, put("k", "v1"), unknown), op(5, 6, getV("k", NullID), got("v1", "")),
	}},
	{name: "a version of unknown outcome deleted as a marker", start: enabled, ops: []porcupine.Operation{
		op(0, Pending, put("k", "v1"), unknown), op(5, 6, delV("k", "Q"), marker("")),
	}},
	{name: "a put of unknown outcome seen by a read that returned before its call, after one that did not", ops: []porcupine.Operation{
		op(50, Pending, put("k", "v1"), unknown), op(0, 100, get("k"), got("v1", "")), op(1, 20, get("k"), got("v1", "")),
	}},
	{name: "a put of unknown outcome takes effect once, across incarnations of its bucket", ops: []porcupine.Operation{
		op(0, Pending, put("k", "v1"), unknown), op(5, 6, get("k"), got("v1", "")), op(7, 8, del("k"), ok),
		op(9, 10, bucket(DeleteBucket), ok), op(11, 12, bucket(CreateBucket), ok), op(13, 14, get("k"), got("v1", "")),
	}},
	{name: "a put of unknown outcome gone with its bucket", ops: []porcupine.Operation{
		op(0, Pending, put("k", "v1"), unknown), op(5, 6, get("k"), got("v1", "")), op(7, 8, del("k"), ok),
		op(9, 10, bucket(DeleteBucket), ok), op(11, 12, bucket(CreateBucket), ok), op(13, 14, get("k"), fail(NoSuchKey)),
	}, legal: true},
	{name: "a bucket deletion of unknown outcome", ops: []porcupine.Operation{
		op(0, Pending, bucket(DeleteBucket), unknown), op(5, 6, get("k"), fail(NoSuchBucket)),
		op(7, 8, bucket(CreateBucket), ok),
	}, legal: true},

	// Seen in Redoubt: a DELETE of versionId=null that read the key's head
	// before a PUT replaced the null version (here a delete marker), and the
	// null version after, answered that it deleted nothing.
	{name: "the null version deleted by ID, answered absent while one existed", ops: []porcupine.Operation{
		op(0, 1, setV(Suspended), ok), op(2, 3, del("k"), marker(NullID)),
		op(10, 20, delV("k", NullID), ok), op(12, 14, put("k", "v1"), ok), op(30, 31, getV("k", NullID), got("v1", "")),
	}},
	{name: "the null version deleted by ID before it was replaced", ops: []porcupine.Operation{
		op(0, 1, setV(Suspended), ok), op(2, 3, del("k"), marker(NullID)),
		op(10, 20, delV("k", NullID), marker("")), op(12, 14, put("k", "v1"), ok), op(30, 31, getV("k", NullID), got("v1", "")),
	}, legal: true},

	// Writes that straddle a configuration change.
	{name: "a straddling write ordered below a newer one", ops: []porcupine.Operation{
		op(0, 1, put("k", "v0"), ok), op(10, 20, setV(Enabled), ok), op(5, 40, put("k", "v1"), id("A")),
		op(25, 30, put("k", "v2"), id("B")), op(32, 34, listV(""), versions("k", "v2@B", "v0@null")),
		op(45, 50, listV(""), versions("k", "v2@B", "v1@A", "v0@null")), op(51, 52, get("k"), got("v2", "B")),
	}, legal: true},
	{name: "a write not straddling a change ordered below a newer one", ops: []porcupine.Operation{
		op(0, 1, put("k", "v0"), ok), op(2, 3, setV(Enabled), ok), op(5, 40, put("k", "v1"), id("A")),
		op(25, 30, put("k", "v2"), id("B")), op(32, 34, listV(""), versions("k", "v2@B", "v0@null")),
		op(45, 50, listV(""), versions("k", "v2@B", "v1@A", "v0@null")),
	}},
	{name: "a straddling write ordered below its own configuration's versions", start: enabled, ops: []porcupine.Operation{
		op(0, 1, put("k", "v0"), id("B")), op(10, 20, setV(Suspended), ok), op(21, 22, setV(Enabled), ok),
		op(5, 40, put("k", "v1"), id("A")), op(25, 26, put("k", "v2"), id("C")),
		op(32, 34, listV(""), versions("k", "v2@C", "v0@B")),
		op(45, 50, listV(""), versions("k", "v2@C", "v0@B", "v1@A")),
	}},
	{name: "a straddling write ordered below the later configurations' versions", start: enabled, ops: []porcupine.Operation{
		op(0, 1, put("k", "v0"), id("A")), op(10, 20, setV(Suspended), ok), op(21, 22, setV(Enabled), ok),
		op(5, 40, put("k", "v1"), id("B")), op(25, 26, put("k", "v2"), id("C")),
		op(32, 34, listV(""), versions("k", "v2@C", "v0@A")),
		op(45, 50, listV(""), versions("k", "v2@C", "v1@B", "v0@A")),
	}, legal: true},
	{name: "a straddling write whose ID sorts elsewhere", start: enabled, ops: []porcupine.Operation{
		op(0, 1, put("k", "v0"), id("A")), op(10, 20, setV(Suspended), ok), op(21, 22, setV(Enabled), ok),
		op(5, 40, put("k", "v1"), id("D")), op(25, 26, put("k", "v2"), id("C")),
		op(32, 34, listV(""), versions("k", "v2@C", "v0@A")),
		op(45, 50, listV(""), versions("k", "v2@C", "v1@D", "v0@A")),
	}},
	{name: "a straddling write ordered below as many changes as it overlaps", start: enabled, ops: straddlingWindow("v2@E", "v1@D", "v0@C", "v00@A"), legal: true},
	{name: "a straddling write ordered below more changes than it overlaps", start: enabled, ops: straddlingWindow("v2@E", "v0@C", "v1@B", "v00@A")},
	{name: "a straddling marker ordered below a refused bucket deletion's successors", start: enabled, ops: []porcupine.Operation{
		op(0, 1, put("k", "v0"), id("A")), op(10, 20, bucket(DeleteBucket), fail(BucketNotEmpty)),
		op(5, 40, del("k"), marker("B")), op(25, 26, put("k", "v2"), id("C")),
		op(32, 34, listV(""), versions("k", "v2@C", "v0@A")),
		op(45, 50, listV(""), versions("k", "v2@C", "marker@B", "v0@A")),
	}, legal: true},
	{name: "a straddling conditional write ordered below", ops: []porcupine.Operation{
		op(0, 1, put("k", "v0"), ok), op(10, 20, setV(Enabled), ok), op(5, 40, putIf("k", "v1", "v2"), id("A")),
		op(25, 30, put("k", "v2"), id("B")), op(32, 34, listV(""), versions("k", "v2@B", "v0@null")),
		op(45, 50, listV(""), versions("k", "v2@B", "v1@A", "v0@null")),
	}},
	{name: "a straddling null version replaces a newer null version", start: enabled, ops: straddlingNull("v1@null", "v2@C", "v0@A"), legal: true},
	{name: "a straddling null version ordered below the null version", start: enabled, ops: straddlingNull("v2@C", "v1@null", "v0@A")},

	// The register histories of the metadata layer name no bucket.
	{name: "no bucket", ops: seq(
		req(Input{Op: Put, Key: "k", Value: "v1"}, ok), req(Input{Op: Get, Key: "k"}, got("v1", "")),
		req(Input{Op: Create, Key: "k", Value: "v2"}, fail(PreconditionFailed)),
	), legal: true},
}

// straddlingNull is a history in which a write issued while its bucket
// was Enabled commits, after three changes, as a null version, and a
// listing shows the key's versions as listed.
func straddlingNull(listed ...string) []porcupine.Operation {
	return []porcupine.Operation{
		op(0, 1, put("k", "v0"), id("A")), op(5, 100, put("k", "v1"), id(NullID)),
		op(10, 11, setV(Suspended), ok), op(12, 13, setV(Enabled), ok), op(14, 15, put("k", "v2"), id("C")),
		op(16, 17, setV(Suspended), ok), op(18, 19, put("k", "v3"), id(NullID)),
		op(20, 21, listV(""), versions("k", "v3@null", "v2@C", "v0@A")),
		op(110, 111, listV(""), versions("k", listed...)),
	}
}

// straddlingWindow is a history in which a write of k overlapping one
// configuration change (a refused bucket deletion) commits after a write
// issued after that change, when its bucket saw two changes before, and a
// listing shows the key's versions as listed.
func straddlingWindow(listed ...string) []porcupine.Operation {
	return []porcupine.Operation{
		op(0, 1, put("k", "v00"), id("A")), op(2, 3, setV(Suspended), ok), op(4, 5, setV(Enabled), ok),
		op(6, 7, put("k", "v0"), id("C")), op(8, 40, put("k", "v1"), id(listedID(listed, "v1"))),
		op(10, 11, bucket(DeleteBucket), fail(BucketNotEmpty)), op(15, 16, put("k", "v2"), id("E")),
		op(20, 21, listV(""), versions("k", "v2@E", "v0@C", "v00@A")),
		op(45, 46, listV(""), versions("k", listed...)),
		// A write of another key that overlaps every change: the
		// model cannot tell the first two apart by their number alone.
		op(1, 50, put("j", "vj"), id("A")),
	}
}

// listedID is the version ID that listed, as versions takes it, gives
// value.
func listedID(listed []string, value string) string {
	for _, l := range listed {
		if v, id, _ := strings.Cut(l, "@"); v == value {
			return id
		}
	}
	return ""
}

// TestModel checks a legal and an illegal history for each rule of the
// model.
func TestModel(t *testing.T) {
	for _, c := range modelCases {
		t.Run(c.name, func(t *testing.T) {
			for i := range c.ops {
				c.ops[i].ClientId = i
			}
			m := NewModel(c.start)
			res := porcupine.CheckOperations(m, c.ops)
			if res != c.legal {
				var b strings.Builder
				for _, o := range c.ops {
					ret := "?"
					if o.Return != Pending {
						ret = strconv.FormatInt(o.Return, 10)
					}
					b.WriteString("\n  [" + strconv.FormatInt(o.Call, 10) + ", " + ret + "] " + describeOperation(o.Input.(Input), o.Output.(Output)))
				}
				t.Errorf("linearizable: %v, want %v; history:%s", res, c.legal, b.String())
			}
		})
	}
}

// TestValidate checks that histories the model would misread are refused
// with a reason, not reported as violations.
func TestValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		op   porcupine.Operation
		want string
	}{
		{"unknown op", op(0, 1, Input{Op: "copy", Key: "k"}, ok), `unknown op "copy"`},
		{"empty value", op(0, 1, put("k", ""), ok), "empty value"},
		{"repeated value", op(0, 1, put("j", "v1"), ok), "another write wrote too"},
		{"no key", op(0, 1, get(""), ok), "names no key"},
		{"versioning state", op(0, 1, setV("Disabled"), ok), `versioning state "Disabled"`},
		{"other types", porcupine.Operation{Input: "get k", Output: ok}, "not a lincheck.Input"},
		{"return before call", op(2, 1, get("k"), ok), "before its call"},
	} {
		h := []porcupine.Operation{op(0, 1, put("k", "v1"), ok), c.op}
		if err := Validate(h); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Validate = %v, want an error with %q", c.name, err, c.want)
		}
	}
	h, _ := randomHistory(rand.New(rand.NewPCG(1, 2)), 500, 4, 50)
	if err := Validate(h); err != nil {
		t.Errorf("a history of the reference store: %v", err)
	}
}
