package placement

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/zeebo/xxh3"
)

// MaxShards bounds K+M: Reed-Solomon over GF(2^8) allows 256, but stripes
// wider than this cost more to rebuild than they save in overhead.
const MaxShards = 32

// ErrInvalid is returned (wrapped) for a policy or flag that cannot be used.
var ErrInvalid = errors.New("invalid redundancy policy")

// Policy is the redundancy of stored data. See the package doc.
type Policy struct {
	K, M   int
	Mirror bool
}

// Shards is the number of shards (or copies) written per chunk.
func (p Policy) Shards() int { return p.K + p.M }

// WriteQuorum is how many shards must be durable before a write succeeds:
// K+1 of K+M for erasure coding, a majority of the copies for mirroring,
// and the one copy for a single copy.
func (p Policy) WriteQuorum() int {
	switch {
	case p.Shards() == 1:
		return 1
	case p.Mirror:
		return p.Shards()/2 + 1
	default:
		return p.K + 1
	}
}

// Tolerates is how many shards of a chunk may be lost without losing it.
func (p Policy) Tolerates() int { return p.M }

// Overhead is the bytes stored per byte of data.
func (p Policy) Overhead() float64 { return float64(p.K+p.M) / float64(p.K) }

func (p Policy) String() string {
	switch {
	case p.K == 1 && p.M == 0:
		return "single copy"
	case p.Mirror:
		return fmt.Sprintf("mirror x%d", p.M+1)
	default:
		return fmt.Sprintf("EC %d+%d", p.K, p.M)
	}
}

// Validate reports whether p can be used.
func (p Policy) Validate() error {
	switch {
	case p.K < 1 || p.M < 0:
		return fmt.Errorf("%w: k=%d m=%d", ErrInvalid, p.K, p.M)
	case p.Mirror && p.K != 1:
		return fmt.Errorf("%w: a mirror has k=1, got k=%d", ErrInvalid, p.K)
	case !p.Mirror && p.M == 0 && p.K != 1:
		return fmt.Errorf("%w: EC %d+0 has no redundancy and no use", ErrInvalid, p.K)
	case p.K+p.M > MaxShards:
		return fmt.Errorf("%w: %d shards, at most %d", ErrInvalid, p.K+p.M, MaxShards)
	}
	return nil
}

// ParseEC parses an erasure-coding flag "k+m", e.g. "2+2".
func ParseEC(s string) (Policy, error) {
	ks, ms, ok := strings.Cut(strings.TrimSpace(s), "+")
	if !ok {
		return Policy{}, fmt.Errorf("%w: %q is not k+m", ErrInvalid, s)
	}
	k, err1 := strconv.Atoi(strings.TrimSpace(ks))
	m, err2 := strconv.Atoi(strings.TrimSpace(ms))
	if err1 != nil || err2 != nil {
		return Policy{}, fmt.Errorf("%w: %q is not k+m", ErrInvalid, s)
	}
	p := Policy{K: k, M: m}
	if err := p.Validate(); err != nil {
		return Policy{}, err
	}
	if m == 0 {
		return Policy{}, fmt.Errorf("%w: %q has no parity", ErrInvalid, s)
	}
	return p, nil
}

// Replicas returns the policy keeping n full copies (n=1: a single copy).
func Replicas(n int) (Policy, error) {
	p := Policy{K: 1, M: n - 1, Mirror: true}
	if err := p.Validate(); err != nil {
		return Policy{}, fmt.Errorf("replicas %d: %w", n, err)
	}
	return p, nil
}

// Parse accepts the forms String produces and the flag forms: "2+2",
// "EC 2+2", "mirror x2", "x3", "single copy".
func Parse(s string) (Policy, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	switch {
	case t == "single copy" || t == "single":
		return Replicas(1)
	case strings.HasPrefix(t, "mirror"):
		t = strings.TrimSpace(strings.TrimPrefix(t, "mirror"))
		fallthrough
	case strings.HasPrefix(t, "x"):
		n, err := strconv.Atoi(strings.TrimPrefix(t, "x"))
		if err != nil {
			return Policy{}, fmt.Errorf("%w: %q", ErrInvalid, s)
		}
		return Replicas(n)
	case strings.HasPrefix(t, "ec"):
		return ParseEC(strings.TrimPrefix(t, "ec"))
	}
	return ParseEC(t)
}

// DefaultPolicy is the policy for a node with the given number of drives.
// Beyond three drives every policy survives two lost drives; from six up it
// takes M=3 when the overhead stays within 1.5, else M=2, and uses every
// drive up to MaxShards/2 shards so a stripe never grows unwieldy.
func DefaultPolicy(drives int) Policy {
	switch {
	case drives <= 1:
		return Policy{K: 1, M: 0, Mirror: true}
	case drives == 2:
		return Policy{K: 1, M: 1, Mirror: true}
	case drives == 3:
		return Policy{K: 2, M: 1}
	case drives == 4:
		return Policy{K: 2, M: 2}
	case drives == 5:
		return Policy{K: 3, M: 2}
	}
	n := min(drives, MaxShards/2)
	m := 2
	if 2*n <= 3*(n-3) { // (n)/(n-3) <= 1.5
		m = 3
	}
	return Policy{K: n - m, M: m}
}

// PartitionOf returns the partition of (bucket, key) among partitions
// partitions; it returns 0 when partitions < 1. The hash input is the
// bucket's length as 8 little-endian bytes, the bucket, then the key, so no
// two distinct pairs share an input.
func PartitionOf(bucket, key string, partitions int) uint32 {
	if partitions < 1 {
		return 0
	}
	return uint32(KeyHash(bucket, key) % uint64(partitions))
}

// KeyHash is the 64-bit hash PartitionOf reduces.
func KeyHash(bucket, key string) uint64 {
	var stack [256]byte
	n := 8 + len(bucket) + len(key)
	var b []byte
	if n <= len(stack) {
		b = stack[:n]
	} else {
		b = make([]byte, n)
	}
	binary.LittleEndian.PutUint64(b, uint64(len(bucket)))
	copy(b[8:], bucket)
	copy(b[8+len(bucket):], key)
	return xxh3.Hash(b)
}
