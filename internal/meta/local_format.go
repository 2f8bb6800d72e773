package meta

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// On-disk layout of one replica (a Pebble database):
//
//	0x01 | partition (4 bytes BE) | key   -> rev (8 bytes BE) | value
//	0x02 | key                            -> partition | rev | value (ordered.go)
//	0x00 'v'                              -> format version (uvarint)
//	0x00 'i'                              -> store ID (16 bytes)
//	0x00 'a'                              -> seq of the last commit applied (8 bytes BE)
//	0x00 'b'                              -> seq at which the log ring was last cleared
//	0x00 'l' | seq (8 bytes BE)           -> log entry: the keys commit seq wrote
//	0x00 'o'                              -> seq of the last commit that kept the
//	                                         ordered index, and its prefixes
//
// Every commit writes its effects, its log entry and the applied key in one
// batch, so a replica holds a commit entirely or not at all.

// localFormatVersion is the version of the layout above.
const localFormatVersion = 1

// logEntryVersion is the version of the encoding of a log entry. Version 1
// also logged values; a replica whose replay meets one is rebuilt instead.
const logEntryVersion = 2

const (
	dataPrefix  = 0x01
	sysPrefix   = 0x00
	indexPrefix = 0x02
)

var (
	versionKey = []byte{sysPrefix, 'v'}
	idKey      = []byte{sysPrefix, 'i'}
	appliedKey = []byte{sysPrefix, 'a'}
	baseKey    = []byte{sysPrefix, 'b'}
	indexedKey = []byte{sysPrefix, 'o'}
)

// errBadLogEntry is returned when a log entry cannot be decoded.
var errBadLogEntry = errors.New("meta: malformed log entry")

// appendDataKey appends the Pebble key of key in partition p to dst.
func appendDataKey(dst []byte, p Partition, key []byte) []byte {
	dst = append(dst, dataPrefix)
	dst = binary.BigEndian.AppendUint32(dst, uint32(p))
	return append(dst, key...)
}

// partitionBounds returns the Pebble key range [lower, upper) of [start, end)
// in partition p; a nil end means the end of the partition.
func partitionBounds(p Partition, start, end []byte) (lower, upper []byte) {
	lower = appendDataKey(nil, p, start)
	if end != nil {
		return lower, appendDataKey(nil, p, end)
	}
	if p == System {
		return lower, []byte{dataPrefix + 1}
	}
	return lower, appendDataKey(nil, p+1, nil)
}

const dataKeyHeader = 5

func logKey(seq uint64) []byte {
	k := make([]byte, 0, 10)
	k = append(k, sysPrefix, 'l')
	return binary.BigEndian.AppendUint64(k, seq)
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// encodeLogEntry encodes the keys that txn on partition p writes or
// deletes. Values are not logged: a replica that missed the commit copies
// each key's current value (or absence) from an up-to-date replica, which
// yields the same state because replicas apply commits in the same order.
// Keeping values out of the log halves the bytes written per commit.
func encodeLogEntry(dst []byte, p Partition, txn *Txn) []byte {
	dst = append(dst, logEntryVersion)
	dst = binary.AppendUvarint(dst, uint64(p))
	dst = binary.AppendUvarint(dst, uint64(len(txn.Deletes)+len(txn.Puts)))
	for _, k := range txn.Deletes {
		dst = binary.AppendUvarint(dst, uint64(len(k)))
		dst = append(dst, k...)
	}
	for _, kv := range txn.Puts {
		dst = binary.AppendUvarint(dst, uint64(len(kv.Key)))
		dst = append(dst, kv.Key...)
	}
	return dst
}

// decodeLogEntry is the inverse of encodeLogEntry. The returned keys alias
// b.
func decodeLogEntry(b []byte) (Partition, [][]byte, error) {
	d := entryDecoder{b: b}
	if v := d.byte(); v != logEntryVersion {
		if d.err != nil {
			return 0, nil, d.err
		}
		return 0, nil, fmt.Errorf("%w: version %d", errBadLogEntry, v)
	}
	p := d.uvarint()
	if d.err == nil && p > uint64(System) {
		return 0, nil, fmt.Errorf("%w: partition %d", errBadLogEntry, p)
	}
	var keys [][]byte
	n := d.count()
	for i := uint64(0); i < n && d.err == nil; i++ {
		keys = append(keys, d.bytes())
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", errBadLogEntry, len(d.b))
	}
	if d.err != nil {
		return 0, nil, d.err
	}
	return Partition(p), keys, nil
}

type entryDecoder struct {
	b   []byte
	err error
}

func (d *entryDecoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated %s", errBadLogEntry, what)
	}
	d.b = nil
}

func (d *entryDecoder) byte() byte {
	if len(d.b) < 1 {
		d.fail("header")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *entryDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a number of items; each item takes at least one byte, which
// bounds it by what is left and keeps a corrupt count from allocating.
func (d *entryDecoder) count() uint64 {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("count")
		return 0
	}
	return n
}

func (d *entryDecoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("bytes")
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}
