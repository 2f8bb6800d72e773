// Package layout decides which drives hold each partition: the versioned
// map from the P partitions keys hash to (placement.PartitionOf) to ordered
// lists of drives across the cluster. Every node computes placement from
// the layout it holds, so routing takes no hop; the caller agrees on each
// version through Raft.
//
// It is pure: no I/O, no clock, no randomness. Compute is a deterministic
// function of its inputs (the order of the node list does not matter), and
// a Layout is never modified once built, so its methods are safe for
// concurrent use.
//
// Contract of Compute(prev, nodes, cfg):
//
//  1. The result has version prev.Version+1 (1 without prev), the same
//     partition count as prev (changing it would remap every key, so it is
//     refused with ErrPartitionsChanged), and for each partition a list of
//     Policy.Shards() distinct drives: shard i of every chunk of the
//     partition lives on element i.
//  2. Zones first, then nodes: no zone holds more than Z shards of one
//     partition and no node more than N, where Z is the least value the
//     drives per zone allow (ceil(shards/zones) when every zone has drives
//     enough; so EC 3+2 over three zones keeps at least 3 shards when a
//     zone is lost) and N is the least value that then fits. These are
//     hard: balance and movement give way to them.
//  3. Balance: each drive's fair share of the P × shards slots is
//     proportional to its capacity, except where rule 2 caps what its zone
//     or node can hold; the excess then goes, again by capacity, to drives
//     that can take it (water-filling; Layout.Usage reports the shares).
//     Every drive gets floor(share) or ceil(share) slots, so none holds more
//     than max(1.05 × share, ceil(share)).
//  4. Movement: a slot keeps its drive unless that drive is gone, the slot
//     breaks rule 2, or the drive is above its new target. Targets are
//     rounded in favour of drives already holding the larger count, and
//     freed slots are refilled by the cheapest chain of moves ending at a
//     drive below target (usually a direct move), where re-routing a slot
//     that moves anyway costs nothing. Adding one node of equal capacity to
//     N moves at most 1.1/(N+1) of the slots plus the rounding of the new
//     drives' targets, and removing a node moves exactly the slots it held,
//     as long as the caps of rule 2 stay the same and no zone reaches its
//     cap. A changed cap, or a zone whose share reaches its cap, makes rule 2
//     or 3 move more: the tests measure and bound it.
//  5. Among equally good choices a hash of (drive, partition) decides, so a
//     drive's partitions share their other shards with many different
//     drives, and a lost drive is rebuilt from many sources.
//
// Other promises:
//
//  6. MetaNodes(p) is the first MetaReplicas distinct nodes of p's list,
//     nodes of new zones first (so the group spans as many zones as the
//     shards do), extended deterministically when the list spans fewer
//     nodes.
//     SystemNodes gives the voters of the system group, spread over zones.
//  7. Diff measures the slots (and estimated bytes) a new version moves;
//     Stage collects the operator's edits of the node list.
//  8. MarshalBinary writes JSON carrying "format": 1; UnmarshalBinary
//     refuses any other format, unknown fields, and anything Validate
//     rejects.
package layout
