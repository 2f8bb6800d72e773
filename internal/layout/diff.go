package layout

// SlotMove is one shard slot whose drive changes.
type SlotMove struct {
	Index    int    // position in the partition's list: the shard number
	From, To string // drive IDs; From is "" for a slot the old layout lacked
}

// PartMove is the changed slots of one partition.
type PartMove struct {
	Partition int
	Slots     []SlotMove
}

// Moves is what changes between two layouts: the data a rebalance streams.
type Moves struct {
	Parts    []PartMove // changed partitions, in partition order
	Slots    int        // slots whose drive changes
	Total    int        // slots in the next layout
	Fraction float64    // Slots / Total
	// Bytes estimates the data moved when Diff is given each partition's
	// stored bytes (all shards together): a slot holds 1/Shards of them.
	Bytes uint64
}

// Diff compares prev (nil for none) with next. partBytes, if not nil, gives
// the bytes stored in each data partition of next, for Moves.Bytes;
// missing entries count as 0. When next's data partitions split from
// prev's, each is compared with the one it split from: data partition p
// descends from p mod len(prev.Parts) (placement.SplitTree).
func Diff(prev, next *Layout, partBytes []uint64) Moves {
	var m Moves
	for p, part := range next.Parts {
		m.Total += len(part)
		var old []string
		if prev != nil && len(prev.Parts) > 0 && len(next.Parts)%len(prev.Parts) == 0 {
			old = prev.Parts[p%len(prev.Parts)]
		}
		var pm PartMove
		for i, d := range part {
			from := ""
			if i < len(old) {
				from = old[i]
			}
			if from != d {
				pm.Slots = append(pm.Slots, SlotMove{Index: i, From: from, To: d})
			}
		}
		if len(pm.Slots) == 0 {
			continue
		}
		pm.Partition = p
		m.Parts = append(m.Parts, pm)
		m.Slots += len(pm.Slots)
		if p < len(partBytes) && len(part) > 0 {
			m.Bytes += partBytes[p] / uint64(len(part)) * uint64(len(pm.Slots))
		}
	}
	if m.Total > 0 {
		m.Fraction = float64(m.Slots) / float64(m.Total)
	}
	return m
}
