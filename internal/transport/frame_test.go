package transport

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	for _, f := range []frame{
		{kind: kindRequest, id: 1, budget: 1500, service: "raft", body: []byte("hello")},
		{kind: kindRequest, id: 1<<64 - 1, service: string(bytes.Repeat([]byte("s"), maxService)), body: nil},
		{kind: kindResponse, id: 7, body: bytes.Repeat([]byte{1}, 3*readChunk+5)},
		{kind: kindError, id: 8, body: []byte{codeHandler, 'x'}},
		{kind: kindCancel, id: 9},
	} {
		var buf bytes.Buffer
		if err := writeFrame(&buf, &f); err != nil {
			t.Fatal(err)
		}
		got, err := readFrame(&buf, 4*readChunk)
		if err != nil {
			t.Fatal(err)
		}
		if got.kind != f.kind || got.id != f.id || got.budget != f.budget || got.service != f.service || !bytes.Equal(got.body, f.body) {
			t.Fatalf("round trip of kind %d id %d changed it", f.kind, f.id)
		}
	}
}

func TestFrameRejects(t *testing.T) {
	enc := func(f frame) []byte {
		var buf bytes.Buffer
		writeFrame(&buf, &f)
		return buf.Bytes()
	}
	big := enc(frame{kind: kindResponse, id: 1, body: make([]byte, 100)})
	if _, err := readFrame(bytes.NewReader(big), 99); !errors.Is(err, errFrame) {
		t.Fatalf("oversized body: %v", err)
	}
	v2 := enc(frame{kind: kindCancel, id: 1})
	v2[0] = 2
	if _, err := readFrame(bytes.NewReader(v2), 10); !errors.Is(err, errFrame) {
		t.Fatalf("version 2: %v", err)
	}
	for _, f := range []frame{
		{kind: kindRequest, id: 1},                 // no service
		{kind: kindResponse, id: 1, service: "x"},  // service on a reply
		{kind: kindCancel, id: 1, body: []byte{1}}, // body on a cancel
		{kind: kindResponse, id: 1, budget: 5},     // budget on a reply
		{kind: 99, id: 1},                          // unknown kind
	} {
		if _, err := readFrame(bytes.NewReader(enc(f)), 10); !errors.Is(err, errFrame) {
			t.Errorf("kind %d service %q body %d: %v, want errFrame", f.kind, f.service, len(f.body), err)
		}
	}
	cut := enc(frame{kind: kindRequest, id: 1, service: "s", body: []byte("abc")})
	if _, err := readFrame(bytes.NewReader(cut[:len(cut)-1]), 10); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated: %v", err)
	}
}

func FuzzReadFrame(f *testing.F) {
	for _, fr := range []frame{
		{kind: kindRequest, id: 1, service: "echo", body: []byte("hi")},
		{kind: kindResponse, id: 2, body: []byte("ok")},
		{kind: kindError, id: 3, body: []byte{codeUnknownService, 'n'}},
		{kind: kindCancel, id: 4},
	} {
		var buf bytes.Buffer
		writeFrame(&buf, &fr)
		f.Add(buf.Bytes())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		for {
			fr, err := readFrame(r, 1<<16)
			if err != nil {
				return
			}
			var buf bytes.Buffer
			if err := writeFrame(&buf, &fr); err != nil {
				t.Fatal(err)
			}
			again, err := readFrame(&buf, 1<<16)
			if err != nil || again.kind != fr.kind || again.id != fr.id || again.budget != fr.budget || again.service != fr.service || !bytes.Equal(again.body, fr.body) {
				t.Fatalf("re-encoded frame does not decode the same: %v", err)
			}
		}
	})
}
