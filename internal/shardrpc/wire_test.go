package shardrpc

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/redoubt-io/redoubt/internal/store"
)

func sampleRequests() []request {
	n := store.Name{ID: "0123456789abcdef", Shard: 7}
	return []request{
		{Op: opCreate, Drive: "d1", Name: n},
		{Op: opAppend, Session: 1 << 60, Off: 12345, Data: []byte("payload")},
		{Op: opCommit, Session: 3, Off: 0, Data: []byte{}},
		{Op: opAbort, Session: 99},
		{Op: opRead, Drive: "d2", Name: n, Off: 1 << 40, Len: 4096},
		{Op: opStat, Drive: "d3", Name: n},
		{Op: opRemove, Drive: "d4", Name: n},
		{Op: opDrives},
	}
}

func TestRequestRoundTrip(t *testing.T) {
	for _, r := range sampleRequests() {
		b := r.encode()
		if b[0] != wireVersion {
			t.Fatalf("%s: version byte %d", r.Op, b[0])
		}
		got, err := decodeRequest(b)
		if err != nil {
			t.Fatalf("%s: %v", r.Op, err)
		}
		if len(got.Data) == 0 && len(r.Data) == 0 {
			got.Data, r.Data = nil, nil
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("%s: decoded %+v, want %+v", r.Op, got, r)
		}
		// Trailing bytes and truncation are refused, except where data is
		// the rest of the message.
		if r.Op != opAppend && r.Op != opCommit {
			if _, err := decodeRequest(append(b, 0)); !errors.Is(err, ErrBadMessage) {
				t.Errorf("%s with a trailing byte: %v", r.Op, err)
			}
		}
		if len(b) > 2 {
			if _, err := decodeRequest(b[:len(b)-1]); err == nil && r.Op != opAppend && r.Op != opCommit {
				t.Errorf("%s truncated: accepted", r.Op)
			}
		}
	}
	if _, err := decodeRequest([]byte{2, byte(opDrives)}); !errors.Is(err, ErrBadMessage) {
		t.Errorf("version 2: %v", err)
	}
}

func TestResponseRoundTrip(t *testing.T) {
	cases := []struct {
		op   op
		resp response
	}{
		{opCreate, response{Session: 1<<64 - 1}},
		{opAppend, response{}},
		{opRead, response{Size: 1 << 33, Data: []byte("bytes")}},
		{opStat, response{Size: 42}},
		{opDrives, response{Drives: []store.Stats{
			{ID: "aa", Path: "/x", Slot: 1, State: store.Failed, NeedsRepair: true, ShardsRead: 5, CorruptBlocks: 6, IOErrors: 7, UsedBytes: 8, TotalBytes: 9, FreeBytes: 10},
			{ID: "bb", State: store.Online},
		}}},
	}
	for _, c := range cases {
		b := encodeOK(c.op, &c.resp)
		got, err := decodeResponse(c.op, b)
		if err != nil {
			t.Fatalf("%s: %v", c.op, err)
		}
		if !reflect.DeepEqual(got, c.resp) {
			t.Errorf("%s: decoded %+v, want %+v", c.op, got, c.resp)
		}
	}
	b := encodeError(statusCorrupt, "block 3 bad")
	got, err := decodeResponse(opRead, b)
	if err != nil || got.Status != statusCorrupt || got.Text != "block 3 bad" {
		t.Errorf("error response: %+v, %v", got, err)
	}
	if long := encodeError(statusIO, string(bytes.Repeat([]byte("x"), 5000))); len(long) != 2+maxErrorText {
		t.Errorf("error text not bounded: %d bytes", len(long))
	}
	for _, bad := range [][]byte{nil, {wireVersion}, {0, 0}, {wireVersion, byte(statusMax)}, {wireVersion, 0, 1, 2}} {
		if _, err := decodeResponse(opStat, bad); !errors.Is(err, ErrBadMessage) {
			t.Errorf("response %x: %v", bad, err)
		}
	}
}

func FuzzDecodeRequest(f *testing.F) {
	for _, r := range sampleRequests() {
		f.Add(r.encode())
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRequest(b)
		if err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("error %v does not wrap ErrBadMessage", err)
			}
			return
		}
		// What decodes re-encodes to the same bytes, except for
		// non-minimal varints.
		again, err := decodeRequest(r.encode())
		if err != nil {
			t.Fatalf("re-encoded request fails: %v", err)
		}
		if len(again.Data) == 0 && len(r.Data) == 0 {
			again.Data, r.Data = nil, nil
		}
		if !reflect.DeepEqual(again, r) {
			t.Fatalf("round trip: %+v != %+v", again, r)
		}
	})
}

func FuzzDecodeResponse(f *testing.F) {
	f.Add(byte(opCreate), encodeOK(opCreate, &response{Session: 5}))
	f.Add(byte(opRead), encodeOK(opRead, &response{Size: 10, Data: []byte("abc")}))
	f.Add(byte(opStat), encodeOK(opStat, &response{Size: 10}))
	f.Add(byte(opDrives), encodeOK(opDrives, &response{Drives: []store.Stats{{ID: "a", Path: "p", Slot: 2}}}))
	f.Add(byte(opRemove), encodeError(statusNotFound, "gone"))
	f.Fuzz(func(t *testing.T, o byte, b []byte) {
		r, err := decodeResponse(op(o), b)
		if err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("error %v does not wrap ErrBadMessage", err)
			}
			return
		}
		if r.Status != statusOK {
			return
		}
		again, err := decodeResponse(op(o), encodeOK(op(o), &r))
		if err != nil {
			t.Fatalf("re-encoded response fails: %v", err)
		}
		if len(again.Data) == 0 && len(r.Data) == 0 {
			again.Data, r.Data = nil, nil
		}
		if !reflect.DeepEqual(again, r) {
			t.Fatalf("round trip: %+v != %+v", again, r)
		}
	})
}

// FuzzHandle: whatever a peer sends, the server answers with a well-formed
// response and never panics.
func FuzzHandle(f *testing.F) {
	for _, r := range sampleRequests() {
		f.Add(r.encode())
	}
	fx := newFixture(f, 1, DefaultServerConfig())
	id := fx.drives[0].ID()
	n := store.Name{ID: "0123456789abcdef", Shard: 1}
	for _, r := range []request{
		{Op: opCreate, Drive: id, Name: n},
		{Op: opRead, Drive: id, Name: n, Len: 10},
		{Op: opStat, Drive: id, Name: n},
		{Op: opRemove, Drive: id, Name: n},
	} {
		f.Add(r.encode())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := fx.srv.Handle(context.Background(), "peer", b)
		if err != nil {
			t.Fatalf("Handle returned an error: %v", err)
		}
		o := opDrives
		if len(b) > 1 && op(b[1]) > 0 && op(b[1]) < opMax {
			o = op(b[1])
		}
		if _, err := decodeResponse(o, out); err != nil {
			t.Fatalf("response %x does not decode: %v", out, err)
		}
		// Sessions a fuzzer opens must not pile up to the limit.
		if r, err := decodeResponse(o, out); err == nil && o == opCreate && r.Status == statusOK {
			fx.srv.Handle(context.Background(), "peer", (&request{Op: opAbort, Session: r.Session}).encode())
		}
	})
}
