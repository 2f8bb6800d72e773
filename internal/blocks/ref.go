package blocks

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// refFormat is the version byte that starts an encoded Ref.
const refFormat = 1

// ErrBadRef is returned (wrapped) by UnmarshalBinary and by Set methods
// given a Ref that cannot describe stored data.
var ErrBadRef = errors.New("malformed data reference")

// MarshalBinary encodes r: a version byte, then uvarints and
// length-prefixed strings, in field order.
func (r Ref) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 16+len(r.ID)+len(r.Drives)*34)
	b = append(b, refFormat)
	b = appendString(b, r.ID)
	b = binary.AppendUvarint(b, uint64(r.Size))
	b = binary.AppendUvarint(b, uint64(r.K))
	b = binary.AppendUvarint(b, uint64(r.M))
	var flags uint64
	if r.Mirror {
		flags |= 1
	}
	b = binary.AppendUvarint(b, flags)
	b = binary.AppendUvarint(b, uint64(r.ChunkSize))
	b = binary.AppendUvarint(b, uint64(len(r.Drives)))
	for _, d := range r.Drives {
		b = appendString(b, d)
	}
	return b, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// UnmarshalBinary decodes what MarshalBinary produced and checks that the
// result is a well-formed Ref.
func (r *Ref) UnmarshalBinary(b []byte) error {
	if len(b) == 0 || b[0] != refFormat {
		return fmt.Errorf("%w: unknown encoding version", ErrBadRef)
	}
	d := decoder{b: b[1:]}
	var out Ref
	out.ID = d.str()
	out.Size = int64(d.uint(1 << 62))
	out.K = int(d.uint(256))
	out.M = int(d.uint(256))
	flags := d.uint(1)
	out.Mirror = flags&1 != 0
	out.ChunkSize = int64(d.uint(1 << 40))
	n := int(d.uint(512))
	if d.err == nil {
		out.Drives = make([]string, 0, min(n, len(d.b)))
		for range n {
			out.Drives = append(out.Drives, d.str())
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = errors.New("trailing bytes")
	}
	if d.err != nil {
		return fmt.Errorf("%w: %w", ErrBadRef, d.err)
	}
	if err := out.validate(); err != nil {
		return err
	}
	*r = out
	return nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uint(limit uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errors.New("truncated")
		return 0
	}
	if v > limit {
		d.err = fmt.Errorf("value %d over %d", v, limit)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string {
	n := d.uint(1024)
	if d.err != nil {
		return ""
	}
	if uint64(len(d.b)) < n {
		d.err = errors.New("truncated")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// validate checks the invariants every stored Ref keeps.
func (r Ref) validate() error {
	switch {
	case r.ID == "":
		return fmt.Errorf("%w: empty ID", ErrBadRef)
	case r.Size < 0:
		return fmt.Errorf("%w: size %d", ErrBadRef, r.Size)
	case r.K < 1 || r.M < 0 || r.K+r.M > 256:
		return fmt.Errorf("%w: %d+%d shards", ErrBadRef, r.K, r.M)
	case r.Mirror && r.K != 1:
		return fmt.Errorf("%w: mirror with k=%d", ErrBadRef, r.K)
	case !r.Mirror && r.M == 0 && r.K != 1:
		return fmt.Errorf("%w: EC %d+0", ErrBadRef, r.K)
	case r.ChunkSize < int64(r.K):
		return fmt.Errorf("%w: chunk size %d", ErrBadRef, r.ChunkSize)
	case len(r.Drives) != r.K+r.M:
		return fmt.Errorf("%w: %d drives for %d shards", ErrBadRef, len(r.Drives), r.K+r.M)
	}
	return nil
}
