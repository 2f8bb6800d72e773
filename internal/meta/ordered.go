package meta

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// The ordered index. A listing of a bucket reads its heads in key order,
// but they are spread over every partition by hash: a page meant a range
// of each of 256 partitions, each a seek through every level of the LSM,
// a cost that grows with the store (BENCHMARKS.md "Where PUT and LIST go
// at 2·10^6"). So Local keeps a second copy of the keys under
// LocalConfig.OrderedPrefixes, in one order across partitions:
//
//	0x02 | key  -> partition (4 bytes BE) | rev (8 bytes BE) | value
//
// written and deleted in the same batch as the key itself, so a replica
// holds both or neither; and a listing page is one range. A key may have
// one entry only, so a covered key must live in one partition at a time.
//
// Every commit also writes indexedKey: its sequence and the prefixes the
// index covers. A replica whose indexedKey differs from its applied
// sequence and the configured prefixes was written without keeping the
// index (by an older binary, or with other prefixes), and its index is
// built again from the keys at open (TestOrderedIndexRebuiltAfterWritesWithout).
// TestOrderedIndexMatchesPartitions checks that the index holds exactly
// the covered keys of every partition, through commits, crashes between
// replicas and replays.

type orderedIndex struct {
	prefixes [][]byte
	mark     []byte // the prefixes, as indexedKey holds them after the sequence
}

func newOrderedIndex(prefixes [][]byte) *orderedIndex {
	o := &orderedIndex{prefixes: prefixes}
	o.mark = binary.AppendUvarint(nil, uint64(len(prefixes)))
	for _, p := range prefixes {
		o.mark = binary.AppendUvarint(o.mark, uint64(len(p)))
		o.mark = append(o.mark, p...)
	}
	return o
}

func (o *orderedIndex) on() bool { return len(o.prefixes) > 0 }

func (o *orderedIndex) covers(key []byte) bool {
	for _, pre := range o.prefixes {
		if bytes.HasPrefix(key, pre) {
			return true
		}
	}
	return false
}

// markAt is indexedKey's value after commit seq.
func (o *orderedIndex) markAt(seq uint64) []byte {
	return append(u64(seq), o.mark...)
}

func appendIndexKey(dst, key []byte) []byte {
	dst = append(dst, indexPrefix)
	return append(dst, key...)
}

// indexValue is an index entry's value for key in p as stored (rev and
// value, encoded as data keys hold them).
func appendIndexValue(dst []byte, p Partition, stored []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(p))
	return append(dst, stored...)
}

// Ordered implements OrderedScanner.
func (l *Local) Ordered(prefix []byte) bool {
	for _, pre := range l.ord.prefixes {
		if bytes.HasPrefix(prefix, pre) {
			return true
		}
	}
	return false
}

var _ OrderedScanner = (*Local)(nil)

// ScanOrdered implements OrderedScanner.
func (l *Local) ScanOrdered(ctx context.Context, start, end []byte, fn func(key []byte, item Item) bool) error {
	if !l.Ordered(start) {
		return fmt.Errorf("meta: ordered scan from %q: not under an ordered prefix", start)
	}
	lower := appendIndexKey(nil, start)
	upper := []byte{indexPrefix + 1}
	if end != nil {
		upper = appendIndexKey(nil, end)
	}
	return l.scanBounds(ctx, lower, upper, 1, 4, fn)
}

// checkIndex makes the index of every healthy replica match its data, at
// open, after the replicas were reconciled to commit applied: a replica
// whose indexedKey is not what a commit at applied writes has its index
// built again; with no prefixes configured, an index left behind is
// removed.
func (l *Local) checkIndex(applied uint64) {
	want := l.ord.markAt(applied)
	for _, r := range l.replicas {
		if !r.healthy() {
			continue
		}
		var have []byte
		found, err := getRaw(r, indexedKey, func(v []byte) { have = bytes.Clone(v) })
		if err != nil {
			r.fail(fmt.Errorf("read index mark: %w", err))
			continue
		}
		switch {
		case !l.ord.on() && !found:
		case l.ord.on() && bytes.Equal(have, want):
		default:
			if err := l.buildIndex(r, applied); err != nil {
				r.fail(fmt.Errorf("build ordered index: %w", err))
			}
		}
	}
}

// buildIndexBatch is the bytes of entries buildIndex writes per batch.
const buildIndexBatch = 16 << 20

// buildIndex writes r's index afresh from its data: the covered keys of
// every partition. No commit runs meanwhile (it is called at open).
func (l *Local) buildIndex(r *replica, applied uint64) error {
	start := time.Now()
	b := r.db.NewBatch()
	_ = b.DeleteRange([]byte{indexPrefix}, []byte{indexPrefix + 1}, nil)
	if !l.ord.on() {
		_ = b.Delete(indexedKey, nil)
		l.log.Info("removing the ordered index of a metadata replica", "dir", r.dir)
		err := r.db.Apply(b, pebble.Sync)
		_ = b.Close()
		return err
	}
	l.log.Info("building the ordered index of a metadata replica", "dir", r.dir)
	it, err := r.db.NewIter(&pebble.IterOptions{LowerBound: []byte{dataPrefix}, UpperBound: []byte{dataPrefix + 1}})
	if err != nil {
		return err
	}
	defer it.Close()
	var k, v []byte
	n := 0
	flush := func() error {
		err := r.db.Apply(b, pebble.NoSync)
		_ = b.Close()
		b = r.db.NewBatch()
		return err
	}
	for _, prefix := range l.ord.prefixes {
		valid := it.SeekGE(appendDataKey(nil, 0, prefix))
		for {
			p, key, ok := underPrefix(it, prefix, valid)
			if !ok {
				break
			}
			val, err := it.ValueAndErr()
			if err != nil {
				return err
			}
			k = appendIndexKey(k[:0], key)
			v = appendIndexValue(v[:0], p, val)
			_ = b.Set(k, v, nil)
			if n++; b.Len() >= buildIndexBatch {
				if err := flush(); err != nil {
					return err
				}
			}
			valid = it.Next()
		}
		if err := it.Error(); err != nil {
			return err
		}
	}
	_ = b.Set(indexedKey, l.ord.markAt(applied), nil)
	err = r.db.Apply(b, pebble.Sync)
	_ = b.Close()
	if err == nil {
		l.log.Info("ordered index built", "dir", r.dir, "keys", n, "took", time.Since(start).Round(time.Millisecond))
	}
	return err
}
