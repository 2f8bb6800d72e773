package bench

import (
	"encoding/binary"
	"errors"
	"io"
)

// blockSize is the length of the shared random block bodies are cut from.
// 1 MiB is large enough that stores compressing or deduplicating at block
// level see no repetition inside ordinary chunk sizes.
const blockSize = 1 << 20

const headerSize = 16

// payload is an object body of a given size that costs nothing to make:
// a 16-byte header unique to the object, then the shared random block read
// from a per-object rotation, repeated as needed. It is an io.ReadSeeker, so
// the SDK can hash it and rewind it, and an io.ReaderAt.
type payload struct {
	hdr   [headerSize]byte
	block []byte // shared, read-only
	rot   int64
	size  int64
	off   int64
}

// newPayload makes the body of object id; block must not be empty.
func newPayload(block []byte, id uint64, size int64) *payload {
	p := &payload{block: block, size: size}
	binary.BigEndian.PutUint64(p.hdr[:8], id)
	binary.BigEndian.PutUint64(p.hdr[8:], ^id*0x9e3779b97f4a7c15)
	p.rot = int64(id*0x9e3779b97f4a7c15>>11) % int64(len(block))
	return p
}

func (p *payload) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("payload: negative offset")
	}
	if off >= p.size {
		return 0, io.EOF
	}
	want := len(b)
	if rem := p.size - off; int64(want) > rem {
		want = int(rem)
	}
	n := 0
	for n < want {
		pos := off + int64(n)
		if pos < headerSize {
			n += copy(b[n:want], p.hdr[pos:])
			continue
		}
		i := (pos - headerSize + p.rot) % int64(len(p.block))
		n += copy(b[n:want], p.block[i:])
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func (p *payload) Read(b []byte) (int, error) {
	if p.off >= p.size {
		return 0, io.EOF
	}
	n, err := p.ReadAt(b, p.off)
	p.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (p *payload) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = p.off + offset
	case io.SeekEnd:
		abs = p.size + offset
	default:
		return 0, errors.New("payload: bad whence")
	}
	if abs < 0 {
		return 0, errors.New("payload: negative position")
	}
	p.off = abs
	return abs, nil
}
