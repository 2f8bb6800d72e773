package vset

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// formatVersion is the first byte of an encoded Version.
const formatVersion = 1

// maxSaw bounds the versions one write may name as seen, so that a
// decoder never allocates for a count it was merely told.
const maxSaw = 1 << 16

// Encode returns v's binary form: a format byte, the ID, flags, the seen
// IDs and the body.
// The seen IDs are written in order, once each, however v holds them, so
// that every encoding decodes.
func (v Version) Encode() []byte { return v.encode() }

func (v Version) encode() []byte {
	if !strictlyIncreasing(v.Saw) {
		v.Saw = slices.Clone(v.Saw)
		slices.SortFunc(v.Saw, ID.Compare)
		v.Saw = slices.Compact(v.Saw)
	}
	b := make([]byte, 0, 1+IDLen+2+len(v.Saw)*IDLen+binary.MaxVarintLen64+len(v.Body))
	b = append(b, formatVersion)
	b = v.ID.AppendBinary(b)
	var flags uint64
	if v.Marker {
		flags |= 1
	}
	b = binary.AppendUvarint(b, flags)
	b = binary.AppendUvarint(b, uint64(len(v.Saw)))
	for _, id := range v.Saw {
		b = id.AppendBinary(b)
	}
	b = binary.AppendUvarint(b, uint64(len(v.Body)))
	return append(b, v.Body...)
}

func strictlyIncreasing(ids []ID) bool {
	for i := 1; i < len(ids); i++ {
		if ids[i-1].Compare(ids[i]) >= 0 {
			return false
		}
	}
	return true
}

// DecodeVersion is the inverse of Encode; it accepts nothing else.
func DecodeVersion(b []byte) (Version, error) {
	var v Version
	if len(b) < 1+IDLen || b[0] != formatVersion {
		return v, fmt.Errorf("%w: version record header", ErrInvalid)
	}
	id, err := IDFromBinary(b[1 : 1+IDLen])
	if err != nil {
		return v, err
	}
	v.ID = id
	b = b[1+IDLen:]
	uv := func() (uint64, bool) {
		x, n := binary.Uvarint(b)
		if n <= 0 || n != len(binary.AppendUvarint(nil, x)) { // canonical only
			return 0, false
		}
		b = b[n:]
		return x, true
	}
	flags, ok := uv()
	if !ok || flags > 1 {
		return Version{}, fmt.Errorf("%w: flags", ErrInvalid)
	}
	v.Marker = flags&1 != 0
	n, ok := uv()
	if !ok || n > maxSaw || n*IDLen > uint64(len(b)) {
		return Version{}, fmt.Errorf("%w: seen versions", ErrInvalid)
	}
	for range n {
		id, err := IDFromBinary(b[:IDLen])
		if err != nil {
			return Version{}, err
		}
		if len(v.Saw) > 0 && v.Saw[len(v.Saw)-1].Compare(id) >= 0 {
			return Version{}, fmt.Errorf("%w: seen versions out of order", ErrInvalid)
		}
		v.Saw = append(v.Saw, id)
		b = b[IDLen:]
	}
	size, ok := uv()
	if !ok || size != uint64(len(b)) {
		return Version{}, fmt.Errorf("%w: body length", ErrInvalid)
	}
	if size > 0 {
		v.Body = append([]byte(nil), b...)
	}
	return v, nil
}
