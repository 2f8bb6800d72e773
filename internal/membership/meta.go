package membership

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// MaxMetaSize is the largest encoded NodeMeta: memberlist refuses more.
const MaxMetaSize = 512

// metaVersion is the first byte of an encoded NodeMeta; a decoder rejects
// versions it does not know rather than guessing at their layout.
const metaVersion = 1

// metaFlags travel with a NodeMeta but are the package's own state, not
// the node's description. Unknown bits are kept as they are, so a newer
// node's flags survive an older node's decode and re-encode.
type metaFlags uint8

// flagLeaving announces a graceful departure just before memberlist's own
// leave message, which receivers cannot tell apart from a failure.
const flagLeaving metaFlags = 1 << 0

// metaOverhead is the encoding's size besides the text: the version byte,
// the flags byte, and a uint16 length per field.
const metaOverhead = 2 + 5*2

var (
	// ErrMetaTooLarge is returned by Validate, Start and UpdateMeta when
	// the encoded NodeMeta would exceed MaxMetaSize (the text of its
	// fields may total MaxMetaSize-12 bytes).
	ErrMetaTooLarge = errors.New("membership: node meta too large")
	// ErrMetaVersion: a peer's meta has an unknown version byte. It is
	// logged, and the member listed with an empty NodeMeta.
	ErrMetaVersion = errors.New("membership: unknown node meta version")
	// ErrMetaCorrupt: a peer's meta is truncated or has trailing bytes.
	ErrMetaCorrupt = errors.New("membership: corrupt node meta")
)

// NodeMeta is what a node tells the others about itself.
type NodeMeta struct {
	Zone      string
	RPCAddr   string
	S3Addr    string
	AdminAddr string
	// Version is the software version the node runs.
	Version string
}

func (m NodeMeta) fields() []string {
	return []string{m.Zone, m.RPCAddr, m.S3Addr, m.AdminAddr, m.Version}
}

// encodeMeta encodes m as a version byte, a flags byte, then each field as
// a big-endian uint16 length and its bytes.
func encodeMeta(m NodeMeta, flags metaFlags) ([]byte, error) {
	fields := m.fields()
	n := metaOverhead
	for _, f := range fields {
		n += len(f)
	}
	if n > MaxMetaSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMetaTooLarge, n, MaxMetaSize)
	}
	b := make([]byte, 0, n)
	b = append(b, metaVersion, byte(flags))
	for _, f := range fields {
		b = binary.BigEndian.AppendUint16(b, uint16(len(f)))
		b = append(b, f...)
	}
	return b, nil
}

// decodeMeta is the inverse of encodeMeta. It accepts exactly the bytes
// encodeMeta produces, so decoding then encoding gives back the input.
func decodeMeta(b []byte) (NodeMeta, metaFlags, error) {
	if len(b) == 0 {
		return NodeMeta{}, 0, fmt.Errorf("%w: empty", ErrMetaCorrupt)
	}
	if len(b) > MaxMetaSize {
		return NodeMeta{}, 0, fmt.Errorf("%w: %d bytes", ErrMetaTooLarge, len(b))
	}
	if b[0] != metaVersion {
		return NodeMeta{}, 0, fmt.Errorf("%w: %d", ErrMetaVersion, b[0])
	}
	if len(b) < 2 {
		return NodeMeta{}, 0, fmt.Errorf("%w: no flags", ErrMetaCorrupt)
	}
	flags := metaFlags(b[1])
	rest := b[2:]
	var out [5]string
	for i := range out {
		if len(rest) < 2 {
			return NodeMeta{}, 0, fmt.Errorf("%w: truncated length of field %d", ErrMetaCorrupt, i)
		}
		n := int(binary.BigEndian.Uint16(rest))
		rest = rest[2:]
		if len(rest) < n {
			return NodeMeta{}, 0, fmt.Errorf("%w: field %d needs %d bytes, %d left", ErrMetaCorrupt, i, n, len(rest))
		}
		out[i] = string(rest[:n])
		rest = rest[n:]
	}
	if len(rest) != 0 {
		return NodeMeta{}, 0, fmt.Errorf("%w: %d trailing bytes", ErrMetaCorrupt, len(rest))
	}
	return NodeMeta{Zone: out[0], RPCAddr: out[1], S3Addr: out[2], AdminAddr: out[3], Version: out[4]}, flags, nil
}
