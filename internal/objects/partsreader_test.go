package objects

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/redoubt-io/redoubt/internal/blocks"
)

// TestGetWriteToMatchesRead reads multipart objects and ranges of them
// both ways: through WriteTo (what io.Copy uses) and through Read alone.
func TestGetWriteToMatchesRead(t *testing.T) {
	e := newEnv(t)
	e.bucket("wto", Unversioned)
	id, err := e.s.CreateMultipartUpload(e.ctx, "wto", "obj", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	parts := []string{big(300, 1), big(200, 2), "tail"}
	var done []CompletePart
	for i, p := range parts {
		pi := e.part("wto", "obj", id, i+1, p)
		done = append(done, CompletePart{Number: i + 1, ETag: pi.ETag})
	}
	if _, err := e.s.CompleteMultipartUpload(e.ctx, "wto", "obj", id, done, CompleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.put("wto", "single", big(500, 3))
	e.put("wto", "inline", "small")
	whole := strings.Join(parts, "")
	cases := []struct {
		key  string
		r    Range
		want string
	}{
		{"obj", Range{}, whole},
		{"obj", Range{Set: true, Start: 250, End: 320}, whole[250:321]},
		{"obj", Range{Set: true, Start: 300, End: 499}, whole[300:500]},
		{"obj", Range{Set: true, Suffix: 10}, whole[len(whole)-10:]},
		{"single", Range{Set: true, Start: 7, End: 9}, big(500, 3)[7:10]},
		{"inline", Range{}, "small"},
	}
	for _, c := range cases {
		for _, viaWriteTo := range []bool{true, false} {
			_, rc, err := e.s.GetObject(e.ctx, "wto", c.key, GetOptions{Range: c.r})
			if err != nil {
				t.Fatalf("get %s %+v: %v", c.key, c.r, err)
			}
			var got bytes.Buffer
			if viaWriteTo {
				_, err = io.Copy(&got, rc)
			} else {
				_, err = io.Copy(&got, iotest.OneByteReader(rc))
			}
			rc.Close()
			if err != nil || got.String() != c.want {
				t.Errorf("get %s %+v (WriteTo %v): %d bytes, %v; want %d bytes", c.key, c.r, viaWriteTo, got.Len(), err, len(c.want))
			}
		}
	}
}

// lyingStore serves every ref as data, whatever length was asked for.
type lyingStore struct {
	blocks.Store
	data string
}

func (l lyingStore) Open(context.Context, blocks.Ref, int64, int64) (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader(l.data)), nil
}

// TestPartsReaderWriteToChecksLength: a part whose data is longer or
// shorter than its recorded size fails the copy instead of sending other
// bytes than the object's.
func TestPartsReaderWriteToChecksLength(t *testing.T) {
	for _, c := range []struct {
		data    string
		wantErr error
	}{
		{"0123456789abc", errPartOverrun},
		{"01234", io.ErrUnexpectedEOF},
		{"0123456789", nil},
	} {
		r := &partsReader{ctx: context.Background(), data: lyingStore{data: c.data},
			segs: []segment{{ref: blocks.Ref{ID: "a"}, n: 10}, {ref: blocks.Ref{ID: "b"}, n: 10}}}
		var got bytes.Buffer
		n, err := io.Copy(&got, r)
		if !errors.Is(err, c.wantErr) {
			t.Errorf("data %q: err %v, want %v", c.data, err, c.wantErr)
		}
		if n != int64(got.Len()) || n > 20 {
			t.Errorf("data %q: copied %d, buffered %d", c.data, n, got.Len())
		}
		r.Close()
	}
}
