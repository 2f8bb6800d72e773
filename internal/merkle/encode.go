package merkle

import (
	"encoding/binary"
	"fmt"
)

// The wire forms of Diff's exchange: a request names a level and the
// nodes of it whose children are wanted; the answer is their digests.

// AppendRequest appends the binary form of a request for the children of
// parents, nodes of level l: the level, the count, then each index, as
// unsigned varints.
func AppendRequest(b []byte, l int, parents []int) []byte {
	b = binary.AppendUvarint(b, uint64(l))
	b = binary.AppendUvarint(b, uint64(len(parents)))
	for _, p := range parents {
		b = binary.AppendUvarint(b, uint64(p))
	}
	return b
}

// DecodeRequest is the inverse of AppendRequest for a tree of levels
// levels; it accepts nothing else: varints in their shortest form, a
// level that has children, and indexes that name its nodes, in
// increasing order.
func DecodeRequest(b []byte, levels int) (l int, parents []int, err error) {
	next := func(what string) (uint64, error) {
		v, n := binary.Uvarint(b)
		if n <= 0 || n != len(binary.AppendUvarint(nil, v)) { // canonical form only
			return 0, fmt.Errorf("%w: request: bad %s", ErrInvalid, what)
		}
		b = b[n:]
		return v, nil
	}
	lv, err := next("level")
	if err != nil {
		return 0, nil, err
	}
	if levels < 1 || levels > MaxLevels || lv >= uint64(levels) {
		return 0, nil, fmt.Errorf("%w: request for the children of level %d in a tree of %d levels", ErrInvalid, lv, levels)
	}
	width := uint64(1) << (4 * lv) // 16^lv nodes at level lv
	count, err := next("count")
	if err != nil {
		return 0, nil, err
	}
	if count > width || count > uint64(len(b)) {
		return 0, nil, fmt.Errorf("%w: request names %d nodes", ErrInvalid, count)
	}
	parents = make([]int, 0, count)
	for range count {
		p, err := next("index")
		if err != nil {
			return 0, nil, err
		}
		if p >= width || len(parents) > 0 && p <= uint64(parents[len(parents)-1]) {
			return 0, nil, fmt.Errorf("%w: request names node %d of level %d out of order or range", ErrInvalid, p, lv)
		}
		parents = append(parents, int(p))
	}
	if len(b) != 0 {
		return 0, nil, fmt.Errorf("%w: request: %d bytes after its end", ErrInvalid, len(b))
	}
	return int(lv), parents, nil
}

// AppendHashes appends hs, Size bytes each.
func AppendHashes(b []byte, hs []Hash) []byte {
	for i := range hs {
		b = append(b, hs[i][:]...)
	}
	return b
}

// DecodeHashes is the inverse of AppendHashes.
func DecodeHashes(b []byte) ([]Hash, error) {
	if len(b)%Size != 0 {
		return nil, fmt.Errorf("%w: %d bytes of digests", ErrInvalid, len(b))
	}
	out := make([]Hash, len(b)/Size)
	for i := range out {
		copy(out[i][:], b[i*Size:])
	}
	return out, nil
}
