package node

import (
	"os"
	"path/filepath"
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
