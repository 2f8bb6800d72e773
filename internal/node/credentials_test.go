package node

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCredentialsGeneratedOnceAndKeptPrivately(t *testing.T) {
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	c1, created, err := loadOrCreateCredentials(dirs)
	if err != nil || !created {
		t.Fatalf("first start: created=%v err=%v", created, err)
	}
	if err := c1.Validate(); err != nil {
		t.Fatalf("generated credentials invalid: %v", err)
	}
	for _, d := range dirs {
		fi, err := os.Stat(filepath.Join(d, credentialsFile))
		if err != nil {
			t.Fatalf("credentials not kept in %s: %v", d, err)
		}
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %v, want 0600", d, mode)
		}
	}

	// A lost drive comes back empty: the next start reuses the keys and
	// writes them to it again.
	os.Remove(filepath.Join(dirs[0], credentialsFile))
	c2, created, err := loadOrCreateCredentials(dirs)
	if err != nil || created || c2 != c1 {
		t.Fatalf("second start: %+v created=%v err=%v, want the first keys", c2, created, err)
	}
	if _, err := os.Stat(filepath.Join(dirs[0], credentialsFile)); err != nil {
		t.Errorf("credentials not rewritten to the emptied drive: %v", err)
	}
}

func TestCredentialsValidate(t *testing.T) {
	for _, c := range []Credentials{
		{AccessKey: "ab", SecretKey: "12345678"},
		{AccessKey: "abc", SecretKey: "1234567"},
		{AccessKey: "a/bc", SecretKey: "12345678"},
	} {
		if c.Validate() == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

// TestKeepCredentials is what a cluster node does with the keys the
// cluster gave it: every data directory holds them afterwards, so that
// the admin tools find them there as on a single node.
func TestKeepCredentials(t *testing.T) {
	c := Credentials{AccessKey: "CLUSTERKEY", SecretKey: "cluster-secret-key"}
	dirs := []string{t.TempDir(), t.TempDir()}
	if err := WriteCredentials(dirs[1], Credentials{AccessKey: "OLDKEY", SecretKey: "old-secret-key"}); err != nil {
		t.Fatal(err)
	}
	if err := keepCredentials(dirs, c); err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		got, err := ReadCredentials(d)
		if err != nil || got != c {
			t.Errorf("%s holds %+v, %v; want the cluster's keys", d, got, err)
		}
	}
	if _, err := ReadCredentials(t.TempDir()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("empty directory: %v; want fs.ErrNotExist", err)
	}
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, credentialsFile), []byte(`{"format":2,"access_key":"AKEY","secret_key":"12345678"}`), 0o600)
	if _, err := ReadCredentials(bad); err == nil || !strings.Contains(err.Error(), "format 2") {
		t.Errorf("future format: %v", err)
	}
}

// FuzzParseCredentials: no input panics, and what is accepted is valid.
func FuzzParseCredentials(f *testing.F) {
	f.Add([]byte(`{"format":1,"access_key":"AKEY","secret_key":"12345678"}`))
	f.Add([]byte(`{"format":1,"access_key":"a/b","secret_key":""}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseCredentials(b)
		if err == nil && c.Validate() != nil {
			t.Fatalf("accepted invalid %+v", c)
		}
	})
}
