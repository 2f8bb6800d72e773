package objects

import (
	"strings"
	"testing"

	"github.com/redoubt-io/redoubt/internal/placement"
)

// The data of an object or part is placed by its key's data key: its base
// partition and the split bits that choose its metadata partition at
// every depth, so that a layout places it with its partition's data
// however often the partitions split.
func TestDataWrittenToKeyPartition(t *testing.T) {
	e := newEnv(t)
	e.bucket("src", Unversioned)
	e.bucket("dst", Unversioned)
	body := strings.Repeat("x", 100) // over InlineMax: stored as data
	want := func(bucket, key string) uint32 {
		return placement.DataKey(uint32(placement.PartitionOf(bucket, key, e.s.cfg.Partitions)), uint32(splitHash([]byte(key))))
	}
	check := func(what string, id string, p uint32) {
		t.Helper()
		e.data.mu.Lock()
		got, ok := e.data.mu.parts[id]
		e.data.mu.Unlock()
		if !ok || got != p {
			t.Fatalf("%s: data written to partition %d (%v), want %d", what, got, ok, p)
		}
	}
	last := func() string {
		ids := e.data.ids()
		return ids[len(ids)-1]
	}

	// Keys chosen so that the partitions differ.
	keys := []string{"a/one", "b/two", "c/three", "d/four"}
	for _, k := range keys {
		e.put("src", k, body)
		check("put "+k, last(), want("src", k))
	}
	if _, err := e.s.CopyObject(e.ctx, CopySource{Bucket: "src", Key: keys[0]}, "dst", keys[1], PutOptions{}); err != nil {
		t.Fatal(err)
	}
	check("copy", last(), want("dst", keys[1]))

	id, err := e.s.CreateMultipartUpload(e.ctx, "dst", keys[2], PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.UploadPart(e.ctx, "dst", keys[2], id, 1, strings.NewReader(body), int64(len(body)), PartOptions{}); err != nil {
		t.Fatal(err)
	}
	check("part", last(), want("dst", keys[2]))
	if _, err := e.s.UploadPartCopy(e.ctx, CopySource{Bucket: "src", Key: keys[3]}, "dst", keys[2], id, 2); err != nil {
		t.Fatal(err)
	}
	check("part copy", last(), want("dst", keys[2]))
	if err := e.s.AbortMultipartUpload(e.ctx, "dst", keys[2], id); err != nil {
		t.Fatal(err)
	}
	seen := map[uint32]bool{}
	for _, k := range keys {
		seen[want("src", k)] = true
	}
	if len(seen) < 2 {
		t.Fatalf("test keys all in one partition of %d", e.s.cfg.Partitions)
	}
}
