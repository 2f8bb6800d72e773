// Package membership tells a Redoubt node which other nodes exist and
// whether they are up, by gossip (SWIM, through hashicorp/memberlist).
//
// Contract:
//
//  1. Start binds the gossip port (UDP and TCP on the same port) and returns
//     a running *Members that lists itself as Alive. Join contacts seeds and
//     merges their view; from then on every node learns of every other one
//     without further help.
//  2. All gossip is encrypted and authenticated with AES-256-GCM under a key
//     derived from the cluster secret (HKDF-SHA256, info "redoubt gossip v1").
//     A node holding another secret cannot join, and cannot be joined: its
//     packets fail to decrypt and are dropped, which memberlist logs.
//  3. List returns every node ever seen, sorted by ID, including Dead and
//     Left ones: the table is fed by memberlist's events and forgets nothing,
//     while memberlist itself forgets dead nodes after a while. A node that
//     comes back is Alive again.
//  4. A node that stops answering is Dead after the suspicion timeout (see
//     Config for the bound and its trade-off); a node that calls Leave is
//     Left. Subscribe reports join, update, fail and leave, in the order
//     this node saw them. Suspect exists as a State, but memberlist does not
//     expose its suspicions, so it is not reported yet.
//  5. Each node advertises a NodeMeta (zone and service addresses), encoded
//     with a version byte and a flags byte into at most 512 bytes
//     (memberlist's limit). UpdateMeta re-advertises it. The flags carry
//     the leave intent that tells Left from Dead (see Leave).
//  6. Probe checks that this node's gossip still works (it pings its own
//     address); Done is closed once the Members is closed, by whoever closed
//     it. A closed Members is not reopened: its owner starts a new one,
//     which may bind the same address (LocalAddr) and Join again.
//
// Every method of *Members is safe for concurrent use. Close stops gossip and
// every subscription; it does not announce a departure (call Leave first for
// a graceful exit), so the others will see the node as Dead.
package membership
