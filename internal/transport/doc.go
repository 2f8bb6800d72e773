// Package transport carries requests between Redoubt nodes: who a node
// is, who may talk to it, and one multiplexed, encrypted connection per
// peer.
//
// Contract:
//
//  1. Identity. A node is an ed25519 key pair kept in a key file (JSON,
//     "format": 1, mode 0600) created on first start by
//     LoadOrCreateIdentity and re-read afterwards. Its NodeID is the
//     lowercase hex of the first 16 bytes of SHA-256 of the public key. A
//     key file that is corrupt, foreign, of another format or readable by
//     others is an error wrapping ErrIdentity; it is never replaced.
//  2. Authentication. Connections are TLS 1.3 only, both sides presenting
//     a self-signed certificate of their node key, generated in memory at
//     Listen. No CA is involved: a caller that names the peer's NodeID
//     pins it, and a different key fails the call with ErrPinning. A
//     caller that knows only an address (first contact with a seed)
//     learns the NodeID from the handshake (Hello).
//  3. Admission. After the handshake each side proves it knows the
//     cluster secret with an HMAC bound to the TLS session (see
//     admission.go). The acceptor reads nothing else from a peer that
//     fails; the refusal is logged with the remote address and claimed
//     NodeID, counted in Stats().Refused, and the dialer's Call fails with
//     ErrRefused. TLS and admission together are bounded by
//     Config.HandshakeTimeout.
//  4. Calls. Call sends one request to a named service and waits for the
//     answer. Many Calls share one connection per peer (whichever side
//     dialed it); a broken connection is replaced by the next Call. Errors:
//     a *RemoteError when the peer answered with an error (its handler's,
//     or ErrUnknownService); ErrUnreachable when dialing, the connection
//     or a deadline failed; ErrRefused and ErrPinning as above; the
//     caller's own context.Canceled. A Call whose context ends returns at
//     once and asks the peer to cancel the handler.
//  5. Handlers run concurrently, one goroutine per request, at most
//     Config.MaxInflight per connection; their context ends when the
//     caller cancels, the caller's deadline (sent with the request) or
//     CallTimeout passes, the connection breaks or the Net closes. Close
//     waits for them.
//  6. Messages. Send queues a one-way message to a service and returns
//     without an answer; the peer handles a connection's messages in the
//     order they arrived, one at a time, in its read loop (so their
//     handlers must be quick). Send fails only when the message certainly
//     did not leave (ErrNotSent); one that left may be lost with its
//     connection, unannounced. Raft traffic uses it: Raft retries from its
//     own state, and a round trip per batch would cap its throughput.
//     Message frames exist from ALPN protocol "redoubt/2" on; TLS settles
//     on the newest protocol both sides offer, and to a peer that speaks
//     only "redoubt/1" (an older release) Send goes as a request whose
//     answer nobody waits for: delivered alike, but not in order.
//  7. Wire. Every frame starts with a version byte (see frame.go);
//     messages are bounded by Config.MaxMessage.
//
// Every method of Net is safe for concurrent use; handlers should be
// registered before the Net's address is published.
//
// MemNetwork is the in-process twin for tests of other packages: its
// endpoints implement Caller like *Net, and links can be cut, groups
// partitioned and nodes killed. It does not recover handler panics, so a
// bug in a handler fails the test that exercises it.
package transport
