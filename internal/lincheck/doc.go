// Package lincheck is the model of Redoubt's S3 semantics that its fault
// tests and its whole-cluster simulation check their histories against,
// with github.com/anishathalye/porcupine. A test records every request it
// makes as a porcupine.Operation whose Input and Output are this package's
// plain Go values (no S3 types), and calls Check.
//
// # What the model covers
//
// Per bucket: whether it exists, and its versioning state, Unversioned,
// then Enabled or Suspended (never Unversioned again). Per key: the ordered
// list of its versions, newest first, each a value or a delete marker,
// null or not. The operations are the ones whose semantics users rely on:
//
//   - Put writes a version: the null version (replacing the key's previous
//     null version wherever it sat) while the bucket is Unversioned or
//     Suspended, a new version with a fresh ID while it is Enabled; either
//     becomes the latest. A Put with IfMatch fails with NoSuchKey when the
//     key has no current version and PreconditionFailed when its value is
//     another; Create (If-None-Match: *) fails with PreconditionFailed when
//     the key has a current version (a delete marker as latest is none).
//   - Delete without a version ID removes the null version (Unversioned),
//     or adds a delete marker as the latest: with a fresh ID (Enabled), or
//     as the null version (Suspended). Delete with a version ID removes
//     exactly that version; an absent one is no error.
//   - Get reads the latest version (NoSuchKey when there is none or it is
//     a delete marker) or one version (NoSuchVersion when it is absent,
//     MethodNotAllowed when it is a delete marker). VersionID "null" names
//     the null version; answers show the null version's ID as "" while the
//     bucket is Unversioned and as "null" once it was ever versioned
//     (listings of versions always show "null"; S3 answers a PUT that made
//     the null version without an ID, which the model accepts too).
//   - List (ListObjectsV2) and ListVersions (ListObjectVersions) under a
//     prefix. Redoubt's listing is not one snapshot across keys; its
//     contract is per key: a listing started after a write was
//     acknowledged sees it, and it never shows a key in a state that was
//     never current. So a listing is checked as one observation per key
//     under its prefix (present with this value, or absent; or exactly
//     this list of versions), each at some point between its call and its
//     return, independently of the others.
//   - CreateBucket (BucketExists when it exists), DeleteBucket
//     (BucketNotEmpty while a key has a version or a delete marker; then
//     NoSuchBucket for everything on the bucket until it is created again,
//     empty and Unversioned), HeadBucket, SetVersioning and GetVersioning.
//     Every object request on a missing bucket answers NoSuchBucket.
//
// Version IDs are opaque to the model but for their order: it learns each
// from the answer that names it, and checks that they sort in version
// order (later versions greater), as Redoubt's hybrid-logical-clock IDs
// do. A version written by a request of unknown outcome has an ID the
// model does not know until an answer (a Get, a listing) names it.
// Values are the identity of versions: every Put of a history writes a
// value no other Put writes, and a harness maps what it reads back (a body,
// an ETag in a listing) to the value that was written.
//
// # The one exception to "a new version is the latest"
//
// Redoubt orders a write by the bucket configuration it was issued under,
// as S3 orders concurrent writes by when they began: a Put or a Delete
// that adds a delete marker, issued before a configuration change of its
// bucket was decided and committing after writes issued under the new
// configuration, is ordered below those writes, and above every version of
// its own configuration. Configuration changes are SetVersioning that
// changes the state and DeleteBucket that fails because the bucket is not
// empty (Redoubt freezes and releases every partition for it all the
// same). The model accepts that placement only for unconditional writes
// whose interval overlaps such an operation on the same bucket (Check
// computes the overlap from the history's times and marks the write's
// Input.Straddles); for those it branches over the positions the rule
// allows (a write was issued before at most as many changes as returned
// after its call and overlap it), of which the write's version ID, when
// the answer gave one, leaves one. Everything else is exact, but for one allowance: a
// DeleteBucket of unknown outcome that did not delete counts as a change
// (it may have been refused), since tracking whether it ran at all would
// double the states for the rest of the history and matters only to where
// a straddling write may go.
//
// # Unknown outcomes
//
// A write that failed in a way that leaves its effect unknown (a timeout, a
// 503 after the request was sent) is recorded with Output.Unknown and the
// return time Pending: it may or may not have taken effect, at any time
// after its call. A read that failed had no effect and is left out of the
// history.
//
// # How histories are checked
//
// The history is partitioned per (bucket, key), which keeps porcupine fast:
// every key is checked on its own. Bucket operations (CreateBucket,
// DeleteBucket, HeadBucket, SetVersioning, GetVersioning) are copied into
// every key partition of their bucket, and into one partition of the bucket
// alone, so each key is checked against some linearization of the bucket
// operations, not against one linearization shared by all keys at once.
// For the same reason BucketNotEmpty is accepted whenever the bucket
// exists: which key kept it non-empty is a question across keys. A
// DeleteBucket that succeeded, though, requires every key to be empty.
//
// A history begins with every bucket it names existing, empty and
// Unversioned, unless CheckFrom is given another Start. The register
// histories of the metadata layer name no bucket at all (Bucket ""), which
// is one such bucket.
//
// Operations of unknown outcome are what makes checking slow: each one
// may take effect anywhere after its call, or never, and a partition of a
// bucket that a workload deletes and creates again can hold a dozen
// (creations, deletions and versioning changes of the bucket, copied into
// every key, and the key's own writes). So a partition's operations of
// unknown outcome that may take effect after all its others (those
// recorded with return time Pending) are taken out of what porcupine
// orders, and the model applies them itself, each at most once, between
// the operations porcupine orders, anywhere after its call: the same
// linearizations, whose states the model merges where porcupine would try
// their orders one by one. Each partition is then checked by several
// searches in turn, each given a slice of time, twice as long every
// round, until one settles it: porcupine placing the operations of
// unknown outcome itself (quick when few matter, as in long histories);
// the model with at most k of them applied, for a few k (quick when few
// took effect, as in nearly every history of a client that timed out; a
// history it accepts is linearizable); the model itself, with all of them;
// and a looser model that places a straddling write below any version
// (its states keep no ages, so it shows most violations at once; a
// history it rejects is not linearizable). Each search gives up past a
// bound on the states it makes. Only the model itself, or a narrower one,
// accepts a partition; only the model itself, or a wider one, rejects it.
//
// When a history is not linearizable, or the check cannot decide in time,
// Check logs Explain's account of the first key that fails (the end of the
// longest linearization found, the model's states after it, the
// operations none of which can come next; for an undecided key, of the
// shortest beginning of its history found not linearizable) and writes
// porcupine's visualization and the history itself (JSON, one operation a
// line) to the temporary directory.
//
// The tests that guard the model itself: a legal and an illegal history
// for every rule above (TestModel, model_test.go), checked by every search
// too (TestVariants, decide_test.go); random histories of a reference
// store, which must check as linearizable and stop checking so once an
// answer is corrupted, and whose checking time is logged
// (TestRandomHistories, random_test.go); histories of the simulation that
// once took minutes, which must decide at once, and be rejected with an
// answer changed (TestDecideSimulationHistories, TestDecideChurnedBucket);
// and histories that the bounded and the loose searches alone would get
// wrong (TestDecideShortcuts).
//
// It is test support: no production code imports it.
package lincheck
