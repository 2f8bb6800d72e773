package erasure

import (
	"errors"
	"fmt"

	"github.com/klauspost/reedsolomon"
)

var (
	// ErrTooFewShards is returned by Reconstruct when fewer shards are
	// present than the code needs.
	ErrTooFewShards = errors.New("too few shards to reconstruct")
	// ErrShardSize is returned when shards disagree in size or do not match
	// the chunk length.
	ErrShardSize = errors.New("shard size mismatch")
)

// Coder codes chunks into shards. See the package doc for buffer ownership.
type Coder interface {
	// DataShards is k: how many shards rebuild a chunk.
	DataShards() int
	// ParityShards is m: how many shards may be lost.
	ParityShards() int
	// Shards is k+m.
	Shards() int
	// ShardSize is the size of every shard of a chunk of n bytes.
	ShardSize(n int) int
	// StripeSize is the capacity a chunk buffer of n bytes needs for Encode
	// to code it in place.
	StripeSize(n int) int
	// Encode sets shards[0..k+m) to the shards of chunk (len(chunk) > 0).
	// len(shards) must be k+m.
	Encode(chunk []byte, shards [][]byte) error
	// Reconstruct fills in every missing (zero-length) shard of a chunk of n
	// bytes from the present ones. With dataOnly it rebuilds only the data
	// shards.
	Reconstruct(shards [][]byte, n int, dataOnly bool) error
	// Join copies the n bytes of the chunk from the data shards into dst,
	// which must hold n bytes.
	Join(dst []byte, shards [][]byte, n int) error
}

// New returns a Reed-Solomon coder with k data and m parity shards.
func New(k, m int) (Coder, error) {
	if k < 1 || m < 1 || k+m > 256 {
		return nil, fmt.Errorf("erasure: invalid code %d+%d", k, m)
	}
	enc, err := reedsolomon.New(k, m)
	if err != nil {
		return nil, fmt.Errorf("erasure: %d+%d: %w", k, m, err)
	}
	return &rs{k: k, m: m, enc: enc}, nil
}

// NewMirror returns a coder keeping copies full copies of each chunk.
func NewMirror(copies int) (Coder, error) {
	if copies < 1 || copies > 256 {
		return nil, fmt.Errorf("erasure: invalid mirror of %d copies", copies)
	}
	return mirror{n: copies}, nil
}

type rs struct {
	k, m int
	enc  reedsolomon.Encoder
}

func (c *rs) DataShards() int      { return c.k }
func (c *rs) ParityShards() int    { return c.m }
func (c *rs) Shards() int          { return c.k + c.m }
func (c *rs) ShardSize(n int) int  { return (n + c.k - 1) / c.k }
func (c *rs) StripeSize(n int) int { return c.ShardSize(n) * (c.k + c.m) }

func (c *rs) Encode(chunk []byte, shards [][]byte) error {
	n := len(chunk)
	if n == 0 || len(shards) != c.k+c.m {
		return fmt.Errorf("erasure: encode %d bytes into %d shards: %w", n, len(shards), ErrShardSize)
	}
	s := c.ShardSize(n)
	buf := chunk
	if cap(buf) < s*(c.k+c.m) {
		buf = make([]byte, s*(c.k+c.m))
		copy(buf, chunk)
	}
	buf = buf[:s*(c.k+c.m)]
	clear(buf[n : s*c.k])
	for i := range shards {
		shards[i] = buf[i*s : (i+1)*s : (i+1)*s]
	}
	if err := c.enc.Encode(shards); err != nil {
		return fmt.Errorf("erasure: encode: %w", err)
	}
	return nil
}

func (c *rs) Reconstruct(shards [][]byte, n int, dataOnly bool) error {
	if len(shards) != c.k+c.m {
		return fmt.Errorf("erasure: %d shards for %d+%d: %w", len(shards), c.k, c.m, ErrShardSize)
	}
	s := c.ShardSize(n)
	present := 0
	for _, sh := range shards {
		switch len(sh) {
		case 0:
		case s:
			present++
		default:
			return fmt.Errorf("erasure: shard of %d bytes, want %d: %w", len(sh), s, ErrShardSize)
		}
	}
	if present < c.k {
		return fmt.Errorf("erasure: %d of %d shards present, need %d: %w", present, c.k+c.m, c.k, ErrTooFewShards)
	}
	if present == c.k+c.m {
		return nil
	}
	var err error
	if dataOnly {
		err = c.enc.ReconstructData(shards)
	} else {
		err = c.enc.Reconstruct(shards)
	}
	if err != nil {
		return fmt.Errorf("erasure: reconstruct: %w", err)
	}
	return nil
}

func (c *rs) Join(dst []byte, shards [][]byte, n int) error {
	s := c.ShardSize(n)
	if len(dst) < n || len(shards) < c.k {
		return fmt.Errorf("erasure: join %d bytes: %w", n, ErrShardSize)
	}
	off := 0
	for i := 0; i < c.k && off < n; i++ {
		if len(shards[i]) != s {
			return fmt.Errorf("erasure: join: data shard %d missing: %w", i, ErrTooFewShards)
		}
		off += copy(dst[off:n], shards[i])
	}
	return nil
}

type mirror struct{ n int }

func (c mirror) DataShards() int      { return 1 }
func (c mirror) ParityShards() int    { return c.n - 1 }
func (c mirror) Shards() int          { return c.n }
func (c mirror) ShardSize(n int) int  { return n }
func (c mirror) StripeSize(n int) int { return n }

func (c mirror) Encode(chunk []byte, shards [][]byte) error {
	if len(chunk) == 0 || len(shards) != c.n {
		return fmt.Errorf("erasure: mirror %d bytes into %d shards: %w", len(chunk), len(shards), ErrShardSize)
	}
	for i := range shards {
		shards[i] = chunk[:len(chunk):len(chunk)]
	}
	return nil
}

// Reconstruct makes the missing copies alias a present one: copies are
// read-only, so sharing is safe and saves a copy.
func (c mirror) Reconstruct(shards [][]byte, n int, dataOnly bool) error {
	if len(shards) != c.n {
		return fmt.Errorf("erasure: %d shards for mirror x%d: %w", len(shards), c.n, ErrShardSize)
	}
	var src []byte
	for _, sh := range shards {
		if len(sh) == n && n > 0 {
			src = sh
			break
		}
	}
	if src == nil {
		return fmt.Errorf("erasure: no copy of %d bytes present: %w", n, ErrTooFewShards)
	}
	for i, sh := range shards {
		if len(sh) == 0 {
			shards[i] = src
			if dataOnly {
				break
			}
		}
	}
	return nil
}

func (c mirror) Join(dst []byte, shards [][]byte, n int) error {
	for _, sh := range shards {
		if len(sh) == n && len(dst) >= n {
			copy(dst, sh)
			return nil
		}
	}
	return fmt.Errorf("erasure: join: %w", ErrTooFewShards)
}
