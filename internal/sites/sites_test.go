package sites

import (
	"errors"
	"testing"
)

func TestParseSecret(t *testing.T) {
	for in, want := range map[string][2]string{
		`{"format":1,"access_key":"AK","secret_key":"SK123456"}` + "\n": {"AK", "SK123456"},
		"AK SK123456\n":  {"AK", "SK123456"},
		"AK:SK123456":    {"AK", "SK123456"},
		"AK\nSK123456\n": {"AK", "SK123456"},
	} {
		ak, sk, err := ParseSecret([]byte(in))
		if err != nil || ak != want[0] || sk != want[1] {
			t.Errorf("ParseSecret(%q) = %q, %q, %v; want %v", in, ak, sk, err, want)
		}
	}
	for _, in := range []string{"", "AK", "AK SK extra", `{"access_key":"AK"}`, `{"access_key":`, `{"access_key":"A K","secret_key":"x"}`} {
		if _, _, err := ParseSecret([]byte(in)); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseSecret(%q): %v, want ErrInvalid", in, err)
		}
	}
}

// FuzzParseSecret: any input is parsed or refused with ErrInvalid, and
// what is parsed has two keys without white space.
func FuzzParseSecret(f *testing.F) {
	f.Add([]byte(`{"access_key":"AK","secret_key":"SK"}`))
	f.Add([]byte("AK:SK"))
	f.Add([]byte("AK SK\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ak, sk, err := ParseSecret(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error not ErrInvalid: %v", err)
			}
			return
		}
		if ak == "" || sk == "" {
			t.Fatalf("parsed %q, %q", ak, sk)
		}
	})
}

func TestSiteCheck(t *testing.T) {
	ok := Site{Name: "paris-1", Endpoint: "http://127.0.1.1:9001", AccessKey: "a", SecretKey: "b"}
	if err := ok.Check(); err != nil {
		t.Fatal(err)
	}
	bare := ok
	bare.Endpoint = "127.0.1.1:9001"
	if err := bare.Check(); err != nil {
		t.Fatalf("host:port endpoint: %v", err)
	}
	for _, bad := range []Site{
		{Name: "Paris", Endpoint: ok.Endpoint, AccessKey: "a", SecretKey: "b"},
		{Name: "p", Endpoint: "ftp://x:1", AccessKey: "a", SecretKey: "b"},
		{Name: "p", Endpoint: "http://x:1/some/path", AccessKey: "a", SecretKey: "b"},
		{Name: "p", Endpoint: ok.Endpoint, AccessKey: "", SecretKey: "b"},
	} {
		if err := bad.Check(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", bad, err)
		}
	}
}
