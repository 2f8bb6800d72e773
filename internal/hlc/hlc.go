package hlc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// MaxWall is the largest physical part a Timestamp can encode (48 bits of
// milliseconds: beyond the year 10000).
const MaxWall = 1<<48 - 1

// StringLen is the length of String's encoding.
const StringLen = 20

// BinaryLen is the length of AppendBinary's encoding.
const BinaryLen = 12

// ErrInvalid is returned (wrapped) by Parse and FromBinary for an encoding
// they do not accept.
var ErrInvalid = errors.New("invalid hlc timestamp")

// Timestamp is one reading of a hybrid logical clock.
type Timestamp struct {
	Wall    int64  // milliseconds since the Unix epoch, 0..MaxWall
	Logical uint32 // orders events within one millisecond
}

// Compare returns -1, 0 or +1 as t is before, equal to or after u.
func (t Timestamp) Compare(u Timestamp) int {
	switch {
	case t.Wall < u.Wall:
		return -1
	case t.Wall > u.Wall:
		return 1
	case t.Logical < u.Logical:
		return -1
	case t.Logical > u.Logical:
		return 1
	}
	return 0
}

// Less reports whether t is before u.
func (t Timestamp) Less(u Timestamp) bool { return t.Compare(u) < 0 }

// IsZero reports whether t is the zero timestamp.
func (t Timestamp) IsZero() bool { return t == Timestamp{} }

// Next returns the smallest timestamp after t.
func (t Timestamp) Next() Timestamp {
	if t.Logical == math.MaxUint32 {
		return Timestamp{Wall: t.Wall + 1}
	}
	return Timestamp{Wall: t.Wall, Logical: t.Logical + 1}
}

// Prev returns the greatest timestamp before t; ok is false for the zero
// timestamp, which has none.
func (t Timestamp) Prev() (Timestamp, bool) {
	switch {
	case t.Logical > 0:
		return Timestamp{Wall: t.Wall, Logical: t.Logical - 1}, true
	case t.Wall > 0:
		return Timestamp{Wall: t.Wall - 1, Logical: math.MaxUint32}, true
	}
	return Timestamp{}, false
}

// Time returns the physical part as a time.
func (t Timestamp) Time() time.Time { return time.UnixMilli(t.Wall).UTC() }

const hexdigits = "0123456789abcdef"

// String returns the fixed-width encoding: 12 hex digits of Wall then 8 of
// Logical.
func (t Timestamp) String() string {
	var b [StringLen]byte
	w := uint64(t.Wall)
	for i := 11; i >= 0; i-- {
		b[i] = hexdigits[w&0xf]
		w >>= 4
	}
	l := t.Logical
	for i := 19; i >= 12; i-- {
		b[i] = hexdigits[l&0xf]
		l >>= 4
	}
	return string(b[:])
}

// Parse is the inverse of String.
func Parse(s string) (Timestamp, error) {
	if len(s) != StringLen {
		return Timestamp{}, fmt.Errorf("%w: length %d", ErrInvalid, len(s))
	}
	var v [StringLen]uint64
	for i := 0; i < StringLen; i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			v[i] = uint64(c - '0')
		case c >= 'a' && c <= 'f':
			v[i] = uint64(c-'a') + 10
		default:
			return Timestamp{}, fmt.Errorf("%w: byte %d", ErrInvalid, i)
		}
	}
	var w, l uint64
	for i := 0; i < 12; i++ {
		w = w<<4 | v[i]
	}
	for i := 12; i < StringLen; i++ {
		l = l<<4 | v[i]
	}
	return Timestamp{Wall: int64(w), Logical: uint32(l)}, nil
}

// AppendBinary appends the 12-byte big-endian encoding of t to b.
func (t Timestamp) AppendBinary(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(t.Wall))
	return binary.BigEndian.AppendUint32(b, t.Logical)
}

// FromBinary decodes AppendBinary's encoding.
func FromBinary(b []byte) (Timestamp, error) {
	if len(b) != BinaryLen {
		return Timestamp{}, fmt.Errorf("%w: length %d", ErrInvalid, len(b))
	}
	w := binary.BigEndian.Uint64(b)
	if w > MaxWall {
		return Timestamp{}, fmt.Errorf("%w: wall out of range", ErrInvalid)
	}
	return Timestamp{Wall: int64(w), Logical: binary.BigEndian.Uint32(b[8:])}, nil
}

// Clock issues timestamps. Create it with New.
type Clock struct {
	physical func() time.Time
	mu       struct {
		sync.Mutex
		last Timestamp
	}
}

// New returns a clock that reads physical time from physical.
func New(physical func() time.Time) *Clock {
	return &Clock{physical: physical}
}

func (c *Clock) wall() int64 {
	ms := c.physical().UnixMilli()
	if ms < 0 {
		return 0
	}
	if ms > MaxWall {
		return MaxWall
	}
	return ms
}

// Now returns a timestamp after every timestamp issued or observed.
func (c *Clock) Now() Timestamp {
	pt := c.wall()
	c.mu.Lock()
	defer c.mu.Unlock()
	if pt > c.mu.last.Wall {
		c.mu.last = Timestamp{Wall: pt}
	} else {
		c.mu.last = c.mu.last.Next()
	}
	return c.mu.last
}

// Update advances the clock past remote (a timestamp seen in a message or
// a stored record) and returns a new timestamp greater than remote.
func (c *Clock) Update(remote Timestamp) Timestamp {
	pt := c.wall()
	c.mu.Lock()
	defer c.mu.Unlock()
	last := c.mu.last
	if remote.Compare(last) > 0 {
		last = remote
	}
	if pt > last.Wall {
		c.mu.last = Timestamp{Wall: pt}
	} else {
		c.mu.last = last.Next()
	}
	return c.mu.last
}
