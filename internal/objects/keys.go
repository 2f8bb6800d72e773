package objects

import (
	"bytes"

	"github.com/redoubt-io/redoubt/internal/hlc"
	"github.com/redoubt-io/redoubt/internal/meta"
)

// Metadata keys. Records of one object key live in the partition its
// (bucket, key) hashes to; all start with a tag byte and the bucket's
// 8-byte incarnation ID:
//
//	'h' id key                               head (latest version summary)
//	'v' id key 0x00 ^ts[12]                  version, newest first per key
//	'u' id key 0x00 uploadID                 multipart upload
//	'p' id key 0x00 uploadID 0x00 part[2]    part of an upload
//	'f' id                                   the bucket's fence (fence.go)
//
// Object keys contain no NUL, so 0x00 after the key keeps byte order of
// encoded keys equal to byte order of object keys. Bucket records are
// 'b' name in meta.System.
const (
	tagBucket  = 'b'
	tagHead    = 'h'
	tagVersion = 'v'
	tagUpload  = 'u'
	tagPart    = 'p'
	tagFence   = 'f'
	// tagCount: a bucket's object count and bytes in one partition,
	// meta.Add counters kept by the transactions that add and remove
	// versions (countVersion).
	tagCount = 'c'
)

type bucketID [8]byte

const keyHdr = 1 + len(bucketID{})

func bucketKey(name string) []byte { return append([]byte{tagBucket}, name...) }

func countKey(id bucketID) []byte { return tagPrefix(tagCount, id) }

// countVersion adds to txn the change of bucket id's counters in the
// txn's partition that adding (sign 1) or removing (sign -1) version v
// makes: one object and its bytes, unless v is a delete marker.
func countVersion(txn *meta.Txn, id bucketID, v *versionRec, sign int64) {
	if v.DeleteMarker {
		return
	}
	txn.Adds = append(txn.Adds, meta.Add{Key: countKey(id), Delta: []int64{sign, sign * v.Size}})
}

func tagPrefix(tag byte, id bucketID) []byte {
	b := make([]byte, 0, 64)
	b = append(b, tag)
	return append(b, id[:]...)
}

func keyPrefix(tag byte, id bucketID, key string) []byte {
	return append(tagPrefix(tag, id), key...)
}

func headKey(id bucketID, key string) []byte { return keyPrefix(tagHead, id, key) }

// PresencePrefixes are the keys worth a store's presence filter (see
// meta.LocalConfig.FilterPrefixes): heads, which every PUT reads, and
// whose reads of new keys would otherwise probe every level of the store.
func PresencePrefixes() [][]byte { return [][]byte{{tagHead}} }

// OrderedPrefixes are the keys worth keeping in one order across
// partitions (meta.LocalConfig.OrderedPrefixes): heads, which ListObjects
// reads in key order. A head lives in the partition its bucket and key
// hash to, one at a time, as the index needs, on a store whose partitions
// do not split.
func OrderedPrefixes() [][]byte { return [][]byte{{tagHead}} }

func versionPrefix(id bucketID, key string) []byte {
	return append(keyPrefix(tagVersion, id, key), 0)
}

func versionKey(id bucketID, key string, ts hlc.Timestamp) []byte {
	b := ts.AppendBinary(versionPrefix(id, key))
	for i := len(b) - hlc.BinaryLen; i < len(b); i++ {
		b[i] = ^b[i]
	}
	return b
}

// splitVersionKey returns the object key and timestamp of a version key.
func splitVersionKey(k []byte) (string, hlc.Timestamp, bool) {
	if len(k) < keyHdr+1+hlc.BinaryLen {
		return "", hlc.Timestamp{}, false
	}
	var inv [hlc.BinaryLen]byte
	tail := k[len(k)-hlc.BinaryLen:]
	for i := range inv {
		inv[i] = ^tail[i]
	}
	ts, err := hlc.FromBinary(inv[:])
	if err != nil {
		return "", hlc.Timestamp{}, false
	}
	return string(k[keyHdr : len(k)-hlc.BinaryLen-1]), ts, true
}

func uploadKey(id bucketID, key, uploadID string) []byte {
	b := append(keyPrefix(tagUpload, id, key), 0)
	return append(b, uploadID...)
}

func splitUploadKey(k []byte) (key, uploadID string, ok bool) {
	if len(k) < keyHdr+1+uploadIDLen {
		return "", "", false
	}
	return string(k[keyHdr : len(k)-uploadIDLen-1]), string(k[len(k)-uploadIDLen:]), true
}

func partPrefix(id bucketID, key, uploadID string) []byte {
	b := append(keyPrefix(tagPart, id, key), 0)
	b = append(b, uploadID...)
	return append(b, 0)
}

func partKey(id bucketID, key, uploadID string, n int) []byte {
	return append(partPrefix(id, key, uploadID), byte(n>>8), byte(n))
}

// prefixEnd returns the smallest key after every key that starts with p,
// or nil when there is none.
func prefixEnd(p []byte) []byte {
	e := bytes.Clone(p)
	for i := len(e) - 1; i >= 0; i-- {
		if e[i] != 0xff {
			e[i]++
			return e[:i+1]
		}
	}
	return nil
}

// successor returns the smallest key after k.
func successor(k []byte) []byte { return append(bytes.Clone(k), 0) }
