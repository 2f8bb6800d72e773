package transport

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIdentityPersists(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "id")
	a, err := LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, IdentityFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", st.Mode().Perm())
	}
	b, err := LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID() != b.ID() || !a.Public().Equal(b.Public()) {
		t.Fatalf("identity changed across loads: %s then %s", a.ID(), b.ID())
	}
	if _, err := ParseNodeID(string(a.ID())); err != nil {
		t.Fatal(err)
	}
	if IDOf(a.Public()) != a.ID() || len(a.ID()) != 32 {
		t.Fatalf("id %q is not 16 hex bytes of the key hash", a.ID())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("identity dir holds %d entries, want only the key file", len(entries))
	}
}

func TestIdentityBadFiles(t *testing.T) {
	good, err := NewIdentity(nil)
	if err != nil {
		t.Fatal(err)
	}
	goodBytes, err := marshalIdentity(good)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewIdentity(nil)
	for name, tc := range map[string]struct {
		data string
		mode os.FileMode
		want string
	}{
		"garbage":      {"\x00\x01 not json", 0o600, "not a Redoubt key file"},
		"empty":        {"", 0o600, "not a Redoubt key file"},
		"foreign json": {`{"hello":"world"}`, 0o600, "type"},
		"new format":   {strings.Replace(string(goodBytes), `"format": 1`, `"format": 2`, 1), 0o600, "format 2"},
		"wrong id":     {strings.Replace(string(goodBytes), string(good.ID()), string(other.ID()), 1), 0o600, "its key is node"},
		"bad key":      {`{"format":1,"type":"redoubt-node-key","node_id":"x","private_key_pkcs8":"AAAA"}`, 0o600, "private key"},
		"world read":   {string(goodBytes), 0o644, "chmod 600"},
		"huge":         {strings.Repeat(" ", maxIdentityFile+10), 0o600, "larger than"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, IdentityFile)
			if err := os.WriteFile(path, []byte(tc.data), tc.mode); err != nil {
				t.Fatal(err)
			}
			os.Chmod(path, tc.mode)
			_, err := LoadOrCreateIdentity(dir)
			if !errors.Is(err, ErrIdentity) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrIdentity mentioning %q", err, tc.want)
			}
			after, _ := os.ReadFile(path)
			if string(after) != tc.data {
				t.Fatal("a bad key file was modified")
			}
		})
	}
}

func TestParseNodeID(t *testing.T) {
	for _, s := range []string{"", "abc", strings.Repeat("A", 32), strings.Repeat("g", 32), strings.Repeat("a", 33)} {
		if _, err := ParseNodeID(s); err == nil {
			t.Errorf("ParseNodeID(%q) accepted", s)
		}
	}
}

func FuzzParseIdentity(f *testing.F) {
	id, err := NewIdentity(nil)
	if err != nil {
		f.Fatal(err)
	}
	good, _ := marshalIdentity(id)
	f.Add(good)
	f.Add([]byte(`{"format":1,"type":"redoubt-node-key"}`))
	f.Add([]byte("{}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := parseIdentity(b)
		if err != nil {
			if !errors.Is(err, ErrIdentity) {
				t.Fatalf("error %v does not wrap ErrIdentity", err)
			}
			return
		}
		again, err := marshalIdentity(id)
		if err != nil {
			t.Fatal(err)
		}
		id2, err := parseIdentity(again)
		if err != nil || id2.ID() != id.ID() {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func TestSaveIdentity(t *testing.T) {
	id, err := LoadOrCreateIdentity(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	copyDir := filepath.Join(t.TempDir(), "drive2")
	for range 2 { // the second save finds the same identity and is a no-op
		if err := SaveIdentity(copyDir, id); err != nil {
			t.Fatal(err)
		}
	}
	got, err := LoadOrCreateIdentity(copyDir)
	if err != nil || got.ID() != id.ID() {
		t.Fatalf("copy holds %v, %v; want %s", got, err, id.ID())
	}
	other, _ := NewIdentity(nil)
	if err := SaveIdentity(copyDir, other); !errors.Is(err, ErrIdentity) {
		t.Fatalf("overwriting another identity: %v, want ErrIdentity", err)
	}
	if got, _ := LoadOrCreateIdentity(copyDir); got.ID() != id.ID() {
		t.Fatal("a foreign save replaced the identity")
	}
}

func TestIdentityCreateRace(t *testing.T) {
	dir := t.TempDir()
	ids := make(chan NodeID, 8)
	for range cap(ids) {
		go func() {
			id, err := LoadOrCreateIdentity(dir)
			if err != nil {
				t.Error(err)
				ids <- ""
				return
			}
			ids <- id.ID()
		}()
	}
	first := <-ids
	for range cap(ids) - 1 {
		if id := <-ids; id != first {
			t.Fatalf("racing creators got %s and %s", first, id)
		}
	}
}
