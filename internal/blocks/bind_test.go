package blocks

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"github.com/redoubt-io/redoubt/internal/placement"
	"github.com/redoubt-io/redoubt/internal/store"
)

// Fault injection on shard files that are well formed but not the shard
// asked for — the kind a misdirected write or rename, a restored backup or
// a relocation bug leaves — and on files cut short. A reader must never
// serve their bytes: it reconstructs around them, counts them and notes
// the ref, and Repair puts the right file back.

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkRanges reads ranges of ref that a data shard alone serves (the
// path that skips reconstruction when it can) and the whole, and wants
// exactly data.
func (e *env) checkRanges(ref Ref, data []byte) {
	e.t.Helper()
	e.mustRead(ref, data)
	for _, r := range [][2]int64{{0, 100}, {int64(testChunk) - 10, 20}, {int64(len(data)) - 33, 33}} {
		got, err := e.read(ref, r[0], r[1])
		if err != nil || !bytes.Equal(got, data[r[0]:r[0]+r[1]]) {
			e.t.Fatalf("read %s [%d, +%d): %v; bytes differ", ref.ID, r[0], r[1], err)
		}
	}
}

// The shard files of two objects of the same size, same shard index, on
// one drive, swapped: each object still reads back its own bytes, whole
// and in ranges; the swap is counted and noted for repair; Repair puts
// each file back as it was written.
func TestSwappedShardFilesOfTwoObjects(t *testing.T) {
	rng := seeded(t)
	e := newEnv(t, 4, placement.Policy{K: 2, M: 2})
	size := 5*2*testChunk + 17
	dataA := randBytes(rng, size)
	refA := e.write(dataA)
	// Another object whose data shard 0 is on the same drive: the swap
	// then hits the shard both reads start from.
	var refB Ref
	var dataB []byte
	for range 100 {
		dataB = randBytes(rng, size)
		if refB = e.write(dataB); refB.Drives[0] == refA.Drives[0] {
			break
		}
	}
	if refB.Drives[0] != refA.Drives[0] {
		t.Fatal("no second object with shard 0 on the first one's drive")
	}
	pa, pb := e.shardFile(refA, 0), e.shardFile(refB, 0)
	origA, origB := readFile(t, pa), readFile(t, pb)
	if len(origA) != len(origB) {
		t.Fatalf("shard files of %d and %d bytes", len(origA), len(origB))
	}
	writeFile(t, pa, origB)
	writeFile(t, pb, origA)

	e.checkRanges(refA, dataA)
	e.checkRanges(refB, dataB)
	if got := e.set.CorruptShards(); got < 2 {
		t.Fatalf("%d corrupt shards counted, want at least 2", got)
	}
	if need := e.set.NeedsRepair(); len(need) != 2 {
		t.Fatalf("NeedsRepair = %v, want both refs", need)
	}
	for _, ref := range []Ref{refA, refB} {
		if _, err := e.set.VerifyShard(context.Background(), ref, 0); !errors.Is(err, store.ErrMisplaced) {
			t.Fatalf("VerifyShard %s: %v, want ErrMisplaced", ref.ID, err)
		}
		if n, err := e.set.Repair(context.Background(), ref); n != 1 || err != nil {
			t.Fatalf("Repair %s = %d, %v; want 1 shard rebuilt", ref.ID, n, err)
		}
	}
	if !bytes.Equal(readFile(t, pa), origA) || !bytes.Equal(readFile(t, pb), origB) {
		t.Fatal("repair did not restore the files as written")
	}
	for _, ref := range []Ref{refA, refB} {
		if n, err := e.set.Repair(context.Background(), ref); n != 0 || err != nil {
			t.Fatalf("second Repair %s = %d, %v", ref.ID, n, err)
		}
	}
}

// setDataLen rewrites a format 2 header to say n data bytes, its checksum
// made to match, as a careless tool or a torn restore might leave it.
func setDataLen(b []byte, n int64) {
	binary.LittleEndian.PutUint64(b[16:], uint64(n))
	binary.LittleEndian.PutUint32(b[92:], crc32.Checksum(b[:92], crc32.MakeTable(crc32.Castagnoli)))
}

// Each kind of wrong file in the place of data shard 0: the read serves
// the right bytes, VerifyShard says what it is, Repair restores the file.
func TestForeignShardFiles(t *testing.T) {
	const blockSize = 1024
	rng := seeded(t)
	size := 5*2*testChunk + 17
	cases := []struct {
		name string
		// damage returns what to put at shard 0 of ref, given its
		// original file.
		damage    func(e *env, ref Ref, orig []byte) []byte
		misplaced bool
	}{
		{"shard 1's file in shard 0's place", func(e *env, ref Ref, _ []byte) []byte {
			return readFile(e.t, e.shardFile(ref, 1))
		}, true},
		{"parity shard's file in shard 0's place", func(e *env, ref Ref, _ []byte) []byte {
			return readFile(e.t, e.shardFile(ref, 3))
		}, true},
		{"restored from an older write of the same key", func(e *env, ref Ref, _ []byte) []byte {
			// The same key written before, with the same size: another
			// ref, whose shard 0 is where a backup would have it.
			older := e.write(randBytes(rng, size))
			return readFile(e.t, e.shardFile(older, 0))
		}, true},
		{"truncated inside a block", func(_ *env, _ Ref, orig []byte) []byte {
			return orig[:len(orig)/2]
		}, false},
		{"truncated to nothing", func(_ *env, _ Ref, orig []byte) []byte {
			return nil
		}, false},
		{"cut at a block boundary, header made to match", func(_ *env, _ Ref, orig []byte) []byte {
			out := bytes.Clone(orig[:store.HeaderSize+3*(blockSize+4)])
			setDataLen(out, 3*blockSize)
			return out
		}, false},
		{"a foreign file of the same length", func(_ *env, _ Ref, orig []byte) []byte {
			return randBytes(rng, len(orig))
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 4, placement.Policy{K: 2, M: 2})
			data := randBytes(rng, size)
			ref := e.write(data)
			p := e.shardFile(ref, 0)
			orig := readFile(t, p)
			writeFile(t, p, tc.damage(e, ref, orig))

			e.checkRanges(ref, data)
			if e.set.CorruptShards() == 0 {
				t.Error("the bad file was not counted")
			}
			if need := e.set.NeedsRepair(); len(need) != 1 || need[0].ID != ref.ID {
				t.Errorf("NeedsRepair = %v", need)
			}
			_, err := e.set.VerifyShard(context.Background(), ref, 0)
			if !errors.Is(err, store.ErrCorrupt) || errors.Is(err, store.ErrMisplaced) != tc.misplaced {
				t.Fatalf("VerifyShard: %v; want ErrCorrupt, ErrMisplaced %v", err, tc.misplaced)
			}
			if n, err := e.set.Repair(context.Background(), ref); n != 1 || err != nil {
				t.Fatalf("Repair = %d, %v; want 1 shard rebuilt", n, err)
			}
			if !bytes.Equal(readFile(t, p), orig) {
				t.Fatal("repair did not restore the file as written")
			}
			if _, err := e.set.VerifyShard(context.Background(), ref, 0); err != nil {
				t.Fatalf("VerifyShard after repair: %v", err)
			}
		})
	}
}

// With fewer than K shard files of its own left, an object is unreadable
// (ErrUnreadable, before any byte) rather than pieced together from
// another object's files; Repair writes nothing then.
func TestTooFewOwnShardsIsUnreadable(t *testing.T) {
	rng := seeded(t)
	e := newEnv(t, 4, placement.Policy{K: 2, M: 2})
	size := 3*2*testChunk + 5
	dataA, dataB := randBytes(rng, size), randBytes(rng, size)
	refA, refB := e.write(dataA), e.write(dataB)
	// Three of A's four shard files replaced by B's of the same index.
	var placed [][]byte
	for i := range 3 {
		b := readFile(t, e.shardFile(refB, i))
		writeFile(t, e.shardFile(refA, i), b)
		placed = append(placed, b)
	}
	if got, err := e.read(refA, 0, -1); !errors.Is(err, ErrUnreadable) || len(got) != 0 {
		t.Fatalf("read: %d bytes, %v; want none and ErrUnreadable", len(got), err)
	}
	if got, err := e.read(refA, 10, 10); !errors.Is(err, ErrUnreadable) || len(got) != 0 {
		t.Fatalf("range read: %d bytes, %v; want none and ErrUnreadable", len(got), err)
	}
	if n, err := e.set.Repair(context.Background(), refA); n != 0 || !errors.Is(err, ErrUnreadable) {
		t.Fatalf("Repair = %d, %v; want ErrUnreadable", n, err)
	}
	for i, b := range placed {
		if !bytes.Equal(readFile(t, e.shardFile(refA, i)), b) {
			t.Fatalf("a failed repair rewrote shard %d", i)
		}
	}
	e.mustRead(refB, dataB)
}

// toFormat1 rewrites a format 2 shard file as the format 1 writer wrote
// it: a 32-byte header without the shard's name, block checksums over the
// block number and bytes only.
func toFormat1(t testing.TB, b []byte, blockSize int) []byte {
	t.Helper()
	tab := crc32.MakeTable(crc32.Castagnoli)
	dataLen := int64(binary.LittleEndian.Uint64(b[16:]))
	out := make([]byte, 32, len(b))
	copy(out, b[:8])
	binary.LittleEndian.PutUint16(out[8:], 1)
	out[10] = 1
	binary.LittleEndian.PutUint32(out[12:], uint32(blockSize))
	binary.LittleEndian.PutUint64(out[16:], uint64(dataLen))
	binary.LittleEndian.PutUint32(out[28:], crc32.Checksum(out[:28], tab))
	body := b[store.HeaderSize:]
	for blk := int64(0); dataLen > 0; blk++ {
		n := min(int64(blockSize), dataLen)
		var ib [8]byte
		binary.LittleEndian.PutUint64(ib[:], uint64(blk))
		out = append(out, body[:n]...)
		out = binary.LittleEndian.AppendUint32(out, crc32.Update(crc32.Checksum(ib[:], tab), tab, body[:n]))
		body, dataLen = body[n+4:], dataLen-n
	}
	return out
}

// Data written before shard files named their shard (format 1) reads
// back and verifies; a corrupt format 1 shard is rebuilt, in format 2.
func TestFormat1ShardsReadAndRepaired(t *testing.T) {
	rng := seeded(t)
	e := newEnv(t, 4, placement.Policy{K: 2, M: 2})
	data := randBytes(rng, 4*2*testChunk+333)
	ref := e.write(data)
	for i := range 4 {
		p := e.shardFile(ref, i)
		writeFile(t, p, toFormat1(t, readFile(t, p), e.scfg.BlockSize))
	}
	e.reopen()
	e.checkRanges(ref, data)
	for i := range 4 {
		if _, err := e.set.VerifyShard(context.Background(), ref, i); err != nil {
			t.Fatalf("format 1 shard %d: %v", i, err)
		}
	}
	if n, err := e.set.Repair(context.Background(), ref); n != 0 || err != nil {
		t.Fatalf("Repair of good format 1 shards = %d, %v", n, err)
	}
	p := e.shardFile(ref, 0)
	b := readFile(t, p)
	b[40] ^= 0x08
	writeFile(t, p, b)
	e.checkRanges(ref, data)
	if n, err := e.set.Repair(context.Background(), ref); n != 1 || err != nil {
		t.Fatalf("Repair = %d, %v; want 1", n, err)
	}
	if v := binary.LittleEndian.Uint16(readFile(t, p)[8:]); v != store.ShardFormat {
		t.Fatalf("rebuilt shard has format %d, want %d", v, store.ShardFormat)
	}
	e.verifyShard(ref, 0)
}

// A remote node serving a swapped file refuses it as corrupt, so the
// reader reconstructs; repair rewrites it over the network.
func TestClusterSwappedRemoteShard(t *testing.T) {
	rng := seeded(t)
	c := newCluster(t, 1, placement.Policy{K: 3, M: 2}, nil)
	size := 4*3*testChunk + 99
	dataA, dataB := randBytes(rng, size), randBytes(rng, size)
	// One partition: the same drives, shard 0 of both on n2.
	refA, refB := c.write(2, dataA), c.write(2, dataB)
	if c.nodeOf[refA.Drives[0]] == 0 || refA.Drives[0] != refB.Drives[0] {
		t.Fatalf("shard 0 of the two refs on %s and %s, want one remote drive", refA.Drives[0], refB.Drives[0])
	}
	pa, pb := c.shardFile(refA, 0), c.shardFile(refB, 0)
	origA, origB := readFile(t, pa), readFile(t, pb)
	writeFile(t, pa, origB)
	writeFile(t, pb, origA)
	c.mustRead(refA, dataA)
	c.mustRead(refB, dataB)
	if got, err := c.read(refA, 5, 50); err != nil || !bytes.Equal(got, dataA[5:55]) {
		t.Fatalf("range read: %v", err)
	}
	if c.set.CorruptShards() < 2 {
		t.Fatalf("%d corrupt shards counted", c.set.CorruptShards())
	}
	if !c.remote[refA.Drives[0]].Online() {
		t.Fatal("a remote drive serving a misplaced file was taken offline")
	}
	for _, ref := range []Ref{refA, refB} {
		if _, err := c.set.VerifyShard(context.Background(), ref, 0); !errors.Is(err, store.ErrCorrupt) {
			t.Fatalf("VerifyShard %s: %v, want ErrCorrupt", ref.ID, err)
		}
		if n, err := c.set.Repair(context.Background(), ref); n != 1 || err != nil {
			t.Fatalf("Repair %s = %d, %v", ref.ID, n, err)
		}
	}
	if !bytes.Equal(readFile(t, pa), origA) || !bytes.Equal(readFile(t, pb), origB) {
		t.Fatal("repair did not restore the remote files as written")
	}
}
