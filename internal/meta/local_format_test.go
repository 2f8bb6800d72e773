package meta

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func TestLogEntryRoundTrip(t *testing.T) {
	txn := Txn{
		Deletes: [][]byte{[]byte("gone"), {}},
		Puts:    []KV{{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("b\x00c"), Value: nil}},
	}
	p, keys, err := decodeLogEntry(encodeLogEntry(nil, System, &txn))
	if err != nil {
		t.Fatal(err)
	}
	want := [][]byte{[]byte("gone"), {}, []byte("a"), []byte("b\x00c")}
	if p != System || len(keys) != len(want) {
		t.Fatalf("got %d, %q", p, keys)
	}
	for i := range want {
		if !bytes.Equal(keys[i], want[i]) {
			t.Fatalf("key %d = %q, want %q", i, keys[i], want[i])
		}
	}
	for _, bad := range [][]byte{nil, {9}, {logEntryVersion}, {logEntryVersion, 0, 2, 1, 'a'}, {logEntryVersion, 0, 0, 0}} {
		if _, _, err := decodeLogEntry(bad); !errors.Is(err, errBadLogEntry) {
			t.Errorf("decode %x: %v, want errBadLogEntry", bad, err)
		}
	}
}

func FuzzDecodeLogEntry(f *testing.F) {
	f.Add(encodeLogEntry(nil, 3, &Txn{Puts: []KV{{Key: []byte("k")}}, Deletes: [][]byte{[]byte("d")}}))
	f.Add([]byte{logEntryVersion, 0xff, 0xff, 0xff, 0xff, 0x0f, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, keys, err := decodeLogEntry(b)
		if err != nil {
			if !errors.Is(err, errBadLogEntry) {
				t.Fatalf("error %v is not errBadLogEntry", err)
			}
			return
		}
		// A valid entry re-encodes to one that decodes the same.
		txn := Txn{Deletes: keys}
		p2, keys2, err := decodeLogEntry(encodeLogEntry(nil, p, &txn))
		if err != nil || p2 != p || len(keys2) != len(keys) {
			t.Fatalf("re-decoded %d %q, %v; want %d %q", p2, keys2, err, p, keys)
		}
		for i := range keys {
			if !bytes.Equal(keys[i], keys2[i]) {
				t.Fatalf("key %d re-decoded %q, want %q", i, keys2[i], keys[i])
			}
		}
	})
}

func FuzzDecodeCounters(f *testing.F) {
	f.Add(EncodeCounters([]int64{1, -2, 1 << 40}))
	f.Add([]byte{countersVersion, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCounters(b)
		if err != nil {
			return
		}
		again, err := DecodeCounters(EncodeCounters(c))
		if err != nil || fmt.Sprint(again) != fmt.Sprint(c) {
			t.Fatalf("counters %v of %x do not survive re-encoding: %v %v", c, b, again, err)
		}
	})
}
