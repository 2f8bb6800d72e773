package raftmeta

import (
	"encoding/binary"

	"github.com/cockroachdb/pebble/v2"
	"github.com/zeebo/xxh3"

	"github.com/redoubt-io/redoubt/internal/meta"
)

// Digest summarises this host's copy of group p, read from one Pebble
// snapshot: the index it has applied, the number of items and a hash of
// every key, revision and value in order. Replicas that applied the same
// index must have the same digest; tests and the cluster simulation check
// that they do. ok is false when this host keeps no copy of p.
func (h *Host) Digest(p meta.Partition) (applied uint64, items int, sum uint64, ok bool, err error) {
	if err := h.enter(); err != nil {
		return 0, 0, 0, false, err
	}
	defer h.closeMu.RUnlock()
	snap := h.db.NewSnapshot()
	defer snap.Close()
	v, closer, err := snap.Get(groupKey(p, kindApply))
	if err == pebble.ErrNotFound {
		return 0, 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, 0, false, err
	}
	applied, _, err = decodeApplyState(v)
	closer.Close()
	if err != nil {
		return 0, 0, 0, false, err
	}
	lower, upper := dataBounds(p, nil, nil)
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return 0, 0, 0, false, err
	}
	defer it.Close()
	hs := xxh3.New()
	var n [8]byte
	err = forEachItem(it, func(key []byte, item meta.Item) bool {
		items++
		hs.Write(binary.BigEndian.AppendUint32(n[:0], uint32(len(key))))
		hs.Write(key)
		hs.Write(binary.BigEndian.AppendUint64(n[:0], item.Rev))
		hs.Write(binary.BigEndian.AppendUint32(n[:0], uint32(len(item.Value))))
		hs.Write(item.Value)
		return true
	})
	return applied, items, hs.Sum64(), true, err
}
