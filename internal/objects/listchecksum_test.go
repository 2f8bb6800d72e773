package objects

import (
	"strings"
	"testing"
)

// Listings report the latest version's stored checksum from the head
// record, and version listings each version's own.
func TestListReportsChecksums(t *testing.T) {
	e := newEnv(t)
	e.bucket("cks", Enabled)
	put := func(key, body, alg string) ObjectInfo {
		t.Helper()
		oi, err := e.s.PutObject(e.ctx, "cks", key, strings.NewReader(body), int64(len(body)), PutOptions{ChecksumAlgorithm: alg})
		if err != nil {
			t.Fatal(err)
		}
		return oi
	}
	old := put("a", "one", "SHA256")
	cur := put("a", "two", "CRC64NVME")
	e.put("cks", "b", "plain")
	if cur.Checksums.CRC64NVME == "" || old.Checksums.SHA256 == "" {
		t.Fatalf("put checksums %+v %+v", cur.Checksums, old.Checksums)
	}
	lr, err := e.s.ListObjects(e.ctx, "cks", ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(lr.Objects) != 2 || lr.Objects[0].Checksums != cur.Checksums || lr.Objects[1].Checksums != (Checksums{}) {
		t.Fatalf("list %+v", lr.Objects)
	}
	vr, err := e.s.ListObjectVersions(e.ctx, "cks", ListVersionsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(vr.Versions) != 3 || vr.Versions[0].Checksums != cur.Checksums || vr.Versions[1].Checksums != old.Checksums {
		t.Fatalf("versions %+v", vr.Versions)
	}
	// Deleting the latest version makes the older one's checksum the
	// listed one.
	if _, err := e.s.DeleteObject(e.ctx, "cks", "a", DeleteOptions{VersionID: cur.VersionID}); err != nil {
		t.Fatal(err)
	}
	if lr, err = e.s.ListObjects(e.ctx, "cks", ListOptions{MaxKeys: 1}); err != nil || lr.Objects[0].Checksums != old.Checksums {
		t.Fatalf("list after delete %+v, %v", lr.Objects, err)
	}
}

func TestHeadRecordChecksumRoundTrip(t *testing.T) {
	h := headRec{Size: 3, ETag: "e", Modified: 5, ChecksumAlg: "CRC32", Checksum: "AAAAAA==", ChecksumType: "FULL_OBJECT"}
	got, err := decodeHead(h.encode())
	if err != nil || got != h {
		t.Fatalf("got %+v, %v", got, err)
	}
	// A head written before it carried a checksum decodes without one.
	h.ChecksumAlg, h.Checksum, h.ChecksumType = "", "", ""
	if got, err := decodeHead(h.encode()); err != nil || got != h || got.checksums() != (Checksums{}) {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestPendingPartDefaultCRCRoundTrip(t *testing.T) {
	p := partRec{Number: 2, Size: 5, ETag: "e", ChecksumAlg: "CRC32", Checksum: "AAAAAA==", DefaultCRC: "AAAAAAAAAAA="}
	got, err := decodePendingPart(encodePendingPart(&p))
	if err != nil || got.DefaultCRC != p.DefaultCRC || got.Checksum != p.Checksum {
		t.Fatalf("got %+v, %v", got, err)
	}
	p.DefaultCRC = ""
	if got, err := decodePendingPart(encodePendingPart(&p)); err != nil || got.DefaultCRC != "" {
		t.Fatalf("got %+v, %v", got, err)
	}
}
