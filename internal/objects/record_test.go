package objects

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/redoubt-io/redoubt/internal/blocks"
	"github.com/redoubt-io/redoubt/internal/hlc"
)

func sampleVersion() versionRec {
	return versionRec{
		TS:          hlc.Timestamp{Wall: 1700000000123, Logical: 4},
		Null:        true,
		Multipart:   true,
		Size:        12345,
		ETag:        "0123456789abcdef0123456789abcdef-2",
		ContentType: "text/plain",
		Headers:     map[string]string{"Cache-Control": "no-cache", "Content-Encoding": "gzip"},
		UserMeta:    map[string]string{"a": "1"},
		Checksums:   Checksums{CRC32C: "AAAAAA==-2", Type: "COMPOSITE"},
		Parts: []partRec{
			{Number: 1, Size: 10000, ETag: "aa", ChecksumAlg: "CRC32C", Checksum: "AAAAAA==",
				Ref: blocks.Ref{ID: "r1", Size: 10000, K: 4, M: 2, ChunkSize: 1 << 20, Drives: []string{"a", "b"}}},
			{Number: 2, Size: 2345, ETag: "bb", Ref: blocks.Ref{ID: "r2", Size: 2345, K: 1, M: 2, Mirror: true}},
		},
	}
}

func TestRecordRoundTrip(t *testing.T) {
	v := sampleVersion()
	got, err := decodeVersion(v.TS, v.encode())
	if err != nil || !reflect.DeepEqual(got, v) {
		t.Fatalf("version: %v\n got %+v\nwant %+v", err, got, v)
	}
	inl := versionRec{TS: v.TS, Size: 3, ETag: "e", Inline: []byte("abc")}
	if got, err := decodeVersion(v.TS, inl.encode()); err != nil || !reflect.DeepEqual(got, inl) {
		t.Fatalf("inline: %v %+v", err, got)
	}
	h := headRec{Latest: v.TS, DeleteMarker: true, Null: true, HasNull: true, NullTS: v.TS, Size: 9, ETag: "x", Modified: 77}
	if got, err := decodeHead(h.encode()); err != nil || got != h {
		t.Fatalf("head: %v %+v", err, got)
	}
	b := bucketRec{ID: bucketID{1, 2, 3, 4, 5, 6, 7, 8}, Created: 99, Versioning: Suspended}
	if got, err := decodeBucket(b.encode()); err != nil || got != b {
		t.Fatalf("bucket: %v %+v", err, got)
	}
	b.Fenced, b.Counted, b.Config = true, true, BucketConfig{Consistency: Available}
	if got, err := decodeBucket(b.encode()); err != nil || got != b {
		t.Fatalf("available bucket: %v %+v", err, got)
	}
	b.Config.Replicate = true
	if got, err := decodeBucket(b.encode()); err != nil || got != b {
		t.Fatalf("replicated bucket: %v %+v", err, got)
	}
	b.VersioningAt, b.Pending = 1700000000123, bucketChange{Kind: changeVersioning, Versioning: Enabled, At: 1700000000456}
	if got, err := decodeBucket(b.encode()); err != nil || got != b {
		t.Fatalf("replicated bucket with its versioning's time: %v %+v", err, got)
	}
	u := uploadRec{Initiated: 5, ContentType: "x/y", UserMeta: map[string]string{"k": "v"}, ChecksumAlg: "CRC32", ChecksumType: "FULL_OBJECT"}
	if got, err := decodeUpload(u.encode()); err != nil || !reflect.DeepEqual(got, u) {
		t.Fatalf("upload: %v %+v", err, got)
	}
	// An upload record written before the checksum type was stored is
	// one with a composite checksum.
	old := u.encode()
	old = old[:len(old)-1-len(u.ChecksumType)]
	if got, err := decodeUpload(old); err != nil || got.ChecksumType != "COMPOSITE" || got.ChecksumAlg != "CRC32" {
		t.Fatalf("upload without type: %v %+v", err, got)
	}
	p := v.Parts[0]
	if got, err := decodePendingPart(encodePendingPart(&p)); err != nil || !reflect.DeepEqual(got, p) {
		t.Fatalf("part: %v %+v", err, got)
	}
	// Unknown format version and trailing bytes are refused.
	bad := h.encode()
	bad[0] = 2
	if _, err := decodeHead(bad); err == nil {
		t.Fatal("version 2 accepted")
	}
	if _, err := decodeHead(append(h.encode(), 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
	for i := 0; i < len(v.encode()); i++ {
		if _, err := decodeVersion(v.TS, v.encode()[:i]); err == nil {
			t.Fatalf("truncated at %d accepted", i)
		}
	}
}

func TestVersionKeyOrder(t *testing.T) {
	id := bucketID{9}
	older := hlc.Timestamp{Wall: 100, Logical: 1}
	newer := hlc.Timestamp{Wall: 100, Logical: 2}
	if bytes.Compare(versionKey(id, "k", newer), versionKey(id, "k", older)) >= 0 {
		t.Fatal("newer version does not sort first")
	}
	if bytes.Compare(versionKey(id, "a", older), versionKey(id, "a/b", newer)) >= 0 {
		t.Fatal("key a's versions do not sort before a/b's")
	}
	k, ts, ok := splitVersionKey(versionKey(id, "dir/x", newer))
	if !ok || k != "dir/x" || ts != newer {
		t.Fatalf("split: %q %v %v", k, ts, ok)
	}
	if got := prefixEnd([]byte{1, 0xff, 0xff}); !bytes.Equal(got, []byte{2}) {
		t.Fatalf("prefixEnd %x", got)
	}
	if prefixEnd([]byte{0xff}) != nil {
		t.Fatal("prefixEnd of ff")
	}
}

// FuzzDecodeRecords feeds arbitrary bytes to every record decoder: none
// may panic, and whatever decodes must encode back to a record that
// decodes to the same value.
func FuzzDecodeRecords(f *testing.F) {
	v := sampleVersion()
	f.Add(v.encode())
	f.Add((&headRec{HasNull: true, ETag: "e"}).encode())
	f.Add((&bucketRec{Versioning: Enabled}).encode())
	f.Add((&bucketRec{Fenced: true, Config: BucketConfig{Consistency: Available}}).encode())
	f.Add((&bucketRec{Fenced: true, Config: BucketConfig{Consistency: Available, Replicate: true}}).encode())
	f.Add((&uploadRec{ChecksumAlg: "CRC32"}).encode())
	f.Add(encodePendingPart(&v.Parts[0]))
	ts := hlc.Timestamp{Wall: 1}
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := decodeVersion(ts, b); err == nil {
			if r2, err := decodeVersion(ts, r.encode()); err != nil || !reflect.DeepEqual(r, r2) {
				t.Fatalf("version re-encode: %v", err)
			}
		}
		if r, err := decodeHead(b); err == nil {
			if r2, err := decodeHead(r.encode()); err != nil || r != r2 {
				t.Fatalf("head re-encode: %v", err)
			}
		}
		if r, err := decodeBucket(b); err == nil {
			if r2, err := decodeBucket(r.encode()); err != nil || r != r2 {
				t.Fatalf("bucket re-encode: %v", err)
			}
		}
		if r, err := decodeUpload(b); err == nil {
			if r2, err := decodeUpload(r.encode()); err != nil || !reflect.DeepEqual(r, r2) {
				t.Fatalf("upload re-encode: %v", err)
			}
		}
		if r, err := decodePendingPart(b); err == nil {
			if r2, err := decodePendingPart(encodePendingPart(&r)); err != nil || !reflect.DeepEqual(r, r2) {
				t.Fatalf("part re-encode: %v", err)
			}
		}
		splitVersionKey(b)
		splitUploadKey(b)
		for d := range splitDepth {
			if c := side(b, d); c != both && c != 0 && c != 1 {
				t.Fatalf("side(%x, %d) = %d", b, d, c)
			}
		}
	})
}
