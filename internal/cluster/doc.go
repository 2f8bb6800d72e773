// Package cluster makes a Redoubt node a member of a cluster: it gives the
// node an identity, connects it to the others, keeps the cluster's own
// records, and follows the layout that says where data and metadata live.
//
// Contract:
//
//  1. Identity and admission. A node's ID comes from its ed25519 key (kept
//     on every drive, so losing one drive keeps the identity). Node-to-node
//     calls are mutual TLS pinned to node keys (package transport); only
//     holders of the cluster secret are admitted, and gossip (package
//     membership) is encrypted with a key derived from the same secret.
//  2. Joining. The first node (no Join addresses) creates the System Raft
//     group with itself as voter. Another node asks any member to admit it
//     (service "join"); the member checks that the node joins under its own
//     authenticated ID, records it in the System partition and answers with
//     the nodes it knows. The System leader then makes it a voter while the
//     group has fewer than five. A node restarted from its own Raft state
//     does not need to join again.
//  3. Layout. Layouts (package layout) are committed in the System partition
//     under one key, each the previous one plus staged edits, by a
//     conditional commit, so two concurrent applies cannot both win. The
//     first layout is made by the System leader once BootstrapExpect nodes
//     have joined; a node that joins later is staged for addition and waits
//     for an operator's apply. Every node polls the layout and, for each new
//     version: hosts the partition groups the layout gives it (with the
//     layout's voters for the first version, else empty, to be filled by
//     the group's leader), routes requests for the others to their members,
//     and learns every node's drives. The leader of each group brings its
//     members in line with the layout one change at a time: a new member
//     joins as a learner and is promoted once caught up; a dropped voter
//     goes only while enough live voters remain (handoverStep). Data
//     follows: Relocation says where a stored part's shards belong under
//     a layout, and each node moves the data of the groups it leads
//     (package node).
//  4. Data placement. Place(p, id) lists the drives a new object part of
//     partition p goes to: the layout's drives for p, then every other drive
//     of the layout, those on nodes not yet used first, so a write can go
//     around nodes that are down. Drive(id) resolves any drive a stored Ref
//     names, local or remote (package shardrpc).
//  5. Meta is the cluster's metadata (package raftmeta), safe to call from
//     any goroutine; after Close begins it answers meta.ErrUnavailable.
//
// Start returns once the node is part of the System group; Close stops
// every goroutine the package started.
package cluster
