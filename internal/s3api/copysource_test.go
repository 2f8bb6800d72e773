package s3api

import "testing"

// A percent-encoded "?versionId=" in the copy source's path separates the
// version ID when the value has no literal query; with one, it is part of
// the key.
func TestCopySourceEncodedVersionSeparator(t *testing.T) {
	for _, c := range []struct{ in, key, vid string }{
		{"bkt/key", "key", ""},
		{"bkt/key?versionId=v1", "key", "v1"},
		{"bkt/key%3FversionId%3Dv1", "key", "v1"},
		{"/bkt/a%20b%3fversionId%3d..%2f..%2fsecret.txt", "a b", "../../secret.txt"},
		{"bkt/k%3FversionId%3Dx?versionId=y", "k?versionId=x", "y"},
		{"bkt/k%3Fother%3Dx", "k?other=x", ""},
	} {
		src, err := copySource(c.in)
		if err != nil || src.Bucket != "bkt" || src.Key != c.key || src.VersionID != c.vid {
			t.Errorf("copySource(%q) = %+v, %v; want key %q version %q", c.in, src, err, c.key, c.vid)
		}
	}
	if _, err := copySource("bkt/key%3FversionId%3D"); err == nil {
		t.Error("empty encoded version id accepted")
	}
}
