package objects

import (
	"bytes"
	"fmt"

	"github.com/redoubt-io/redoubt/internal/meta"
)

// Splitter divides the records of a splitting partition between its two
// children (raftmeta's Config.Splitter; see Partitions that split in
// route.go):
//
//   - the records of an object key (head, versions, uploads and their
//     parts) go to the child bit d of the key's split hash names, d being
//     the parent's depth: the child its route resolves to;
//   - a ref record whose ID carries a route goes where that route
//     resolves; one made before routes goes to both (refHome never
//     collects its data once its partition split);
//   - a bucket's fence goes to both, with its revision, so that a change
//     that froze the parent finds the children frozen alike;
//   - a bucket's counters are counted again for each child from the
//     versions it gets, so that Stats stays exact;
//   - anything else goes to both.
//
// It reads only the records, so every replica divides them alike.
// TestSplitterDividesRecords.
type Splitter struct{ tree partTree }

// NewSplitter returns the Splitter of a cluster of the given base
// partitions (Config.Partitions).
func NewSplitter(partitions int) *Splitter {
	return &Splitter{tree: newPartTree(partitions)}
}

// Children returns the partitions p splits into, in the numbering
// Splitter and Service share.
func (sp *Splitter) Children(p meta.Partition) [2]meta.Partition { return sp.tree.children(p) }

// both is side's answer for a record both children get.
const both = -1

// side is the child (0 or 1) that gets record k of a partition at depth
// d, or both.
func side(k []byte, d int) int {
	if len(k) == 0 {
		return both
	}
	var obj []byte
	switch k[0] {
	case tagHead:
		if len(k) < keyHdr {
			return both
		}
		obj = k[keyHdr:]
	case tagVersion, tagUpload, tagPart:
		if len(k) < keyHdr {
			return both
		}
		rest := k[keyHdr:]
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			return both
		}
		obj = rest[:i]
	case tagRef:
		p, ok := RefPartition(string(k[1:]))
		if !ok {
			return both
		}
		_, b, ok := isRoute(p)
		if !ok {
			return both
		}
		return int(b >> d & 1)
	default:
		return both
	}
	return int(splitHash(obj) >> d & 1)
}

func (sp *Splitter) Split(parent meta.Partition, into [2]meta.Partition,
	scan func(fn func(key []byte, it meta.Item) error) error,
	emit func(child int, key []byte, it meta.Item) error) error {
	if !sp.tree.valid(parent) || into != sp.tree.children(parent) {
		return fmt.Errorf("objects: partition %d does not split into %d and %d", parent, into[0], into[1])
	}
	d, _ := sp.tree.pos(parent)
	if d >= splitDepth {
		return fmt.Errorf("objects: partition %d is split %d times already", parent, d)
	}
	// Each child's counters: the versions it gets, as countVersion
	// counts them.
	counts := map[bucketID]*[2][2]int64{}
	err := scan(func(k []byte, it meta.Item) error {
		if len(k) == 0 || k[0] != tagVersion {
			return nil
		}
		v, err := versionItem(k, it)
		if err != nil || v.DeleteMarker {
			return nil // counted by no one, here as on every replica
		}
		var id bucketID
		copy(id[:], k[1:keyHdr])
		c := counts[id]
		if c == nil {
			c = &[2][2]int64{}
			counts[id] = c
		}
		i := side(k, d)
		c[i][0]++
		c[i][1] += v.Size
		return nil
	})
	if err != nil {
		return err
	}
	return scan(func(k []byte, it meta.Item) error {
		if k[0] == tagCount && len(k) == keyHdr {
			var id bucketID
			copy(id[:], k[1:])
			var c [2][2]int64
			if p := counts[id]; p != nil {
				c = *p
			}
			for i := range 2 {
				if err := emit(i, k, meta.Item{Value: meta.EncodeCounters(c[i][:]), Rev: it.Rev}); err != nil {
					return err
				}
			}
			return nil
		}
		switch i := side(k, d); i {
		case both:
			if err := emit(0, k, it); err != nil {
				return err
			}
			return emit(1, k, it)
		default:
			return emit(i, k, it)
		}
	})
}
