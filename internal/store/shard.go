package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/redoubt-io/redoubt/internal/vfs"
)

// Shard file format, version 2 (all integers little-endian):
//
//	0  magic "RDBSHARD"
//	8  u16 format version (2)
//	10 u8  checksum algorithm (1 = CRC-32C)
//	11 u8  length n of the ref ID (8..64)
//	12 u32 block size
//	16 u64 data length
//	24 u16 shard index (0..255)
//	26 u16 reserved, 0
//	28 64 bytes: the ref ID (n lower-case hex digits), then zeros
//	92 u32 CRC-32C of bytes 0..92
//	96 blocks: block b is min(block size, remaining) data bytes followed by
//	   u32 CRC-32C(u8 n || ref ID || u16 shard index || u64 b || data)
//
// The header names the shard the file was written as, so a well-formed
// file of another ref or another shard index found under this name (a
// misdirected write or rename, a restored backup) is refused when opened
// (ErrMisplaced; TestMisplacedFileRefusedOnOpen). The block checksums bind
// the same name and the block number, so a block copied from another file
// or from another position fails even under a rewritten header
// (TestBlockFromElsewhereFails, TestRewrittenHeaderFailsEveryBlock).
// The name is hashed once per file: the CRC state after it is the seed of
// every block's checksum, which therefore costs what it did in version 1
// (BenchmarkBlockSum64KiB). As a CRC detects every burst of up to 32
// bits, a block moved to another block number below 2^32, or to another
// shard index of the same ref, always fails; one from another ref fails
// unless the two refs' 32-bit seeds happen to be equal (a chance of 2^-32
// per pair), and its header is refused first.
//
// Version 1 files (written before the binding) are still read: a 32-byte
// header (magic, version 1, algorithm, a zero byte, block size, data
// length, four zero bytes, CRC-32C of bytes 0..28), then blocks whose
// checksum is CRC-32C(u64 b || data), which is the version 2 checksum with
// an empty seed. Their blocks and length are checked; whose shard they
// are cannot be (TestLegacyShardStillReadable).
const (
	HeaderSize     = 96 // of the current format
	ShardFormat    = 2
	ChecksumCRC32C = 1

	headerSizeV1       = 32
	shardFormatV1      = 1
	crcSize            = 4
	magic              = "RDBSHARD"
	maxShardIndex      = 255
	minIDLen, maxIDLen = 8, 64
	idOff              = 28 // of the ref ID in a version 2 header
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrMisplaced is wrapped, with ErrCorrupt, by the error of opening a
// well-formed shard file that names another ref ID or shard index than
// the one asked for; errors.As finds a *MisplacedError in it.
var ErrMisplaced = errors.New("shard file belongs to another shard")

// MisplacedError reports a shard file found under Want's name that was
// written as Found.
type MisplacedError struct {
	Want, Found Name
	Drive       string // the drive's path
}

func (e *MisplacedError) Error() string {
	return fmt.Sprintf("store: %s on drive %s holds shard %s: %v", e.Want, e.Drive, e.Found, ErrMisplaced)
}

// Unwrap makes the error both ErrMisplaced and ErrCorrupt: every reader
// that handles corruption (reconstructs around it, counts it, repairs it)
// handles a misplaced file alike (TestForeignShardFiles in package blocks).
func (e *MisplacedError) Unwrap() []error { return []error{ErrMisplaced, ErrCorrupt} }

// Header is the decoded header of a shard file.
type Header struct {
	Version   int
	Algorithm int
	BlockSize int
	DataLen   int64
	// ID and Shard name the shard the file was written as; a version 1
	// file does not record them (ID is "").
	ID    string
	Shard int
}

// Size is the bytes of the header itself.
func (h Header) Size() int {
	if h.Version == shardFormatV1 {
		return headerSizeV1
	}
	return HeaderSize
}

// blocks is the number of blocks holding DataLen bytes.
func (h Header) blocks() int64 {
	return (h.DataLen + int64(h.BlockSize) - 1) / int64(h.BlockSize)
}

// FileSize is the size of a well-formed file with this header.
func (h Header) FileSize() int64 { return int64(h.Size()) + h.DataLen + h.blocks()*crcSize }

// encode writes the header into b, which holds at least h.Size() bytes.
func (h Header) encode(b []byte) {
	b = b[:h.Size()]
	clear(b)
	copy(b[0:8], magic)
	binary.LittleEndian.PutUint16(b[8:], uint16(h.Version))
	b[10] = byte(h.Algorithm)
	binary.LittleEndian.PutUint32(b[12:], uint32(h.BlockSize))
	binary.LittleEndian.PutUint64(b[16:], uint64(h.DataLen))
	if h.Version != shardFormatV1 {
		b[11] = byte(len(h.ID))
		binary.LittleEndian.PutUint16(b[24:], uint16(h.Shard))
		copy(b[idOff:idOff+maxIDLen], h.ID)
	}
	end := len(b) - crcSize
	binary.LittleEndian.PutUint32(b[end:], crc32.Checksum(b[:end], castagnoli))
}

// DecodeHeader parses and verifies a shard file header of either format
// version. b may run past the header; the header's own size is h.Size().
func DecodeHeader(b []byte) (Header, error) {
	if len(b) < 10 {
		return Header{}, fmt.Errorf("header of %d bytes: %w", len(b), ErrCorrupt)
	}
	if string(b[0:8]) != magic {
		return Header{}, fmt.Errorf("bad magic: %w", ErrCorrupt)
	}
	h := Header{Version: int(binary.LittleEndian.Uint16(b[8:]))}
	if h.Version != ShardFormat && h.Version != shardFormatV1 {
		return Header{}, fmt.Errorf("shard format %d unsupported: %w", h.Version, ErrCorrupt)
	}
	size := h.Size()
	if len(b) < size {
		return Header{}, fmt.Errorf("format %d header of %d bytes, want %d: %w", h.Version, len(b), size, ErrCorrupt)
	}
	b = b[:size]
	end := size - crcSize
	if crc32.Checksum(b[:end], castagnoli) != binary.LittleEndian.Uint32(b[end:]) {
		return Header{}, fmt.Errorf("header checksum mismatch: %w", ErrCorrupt)
	}
	h.Algorithm = int(b[10])
	h.BlockSize = int(binary.LittleEndian.Uint32(b[12:]))
	h.DataLen = int64(binary.LittleEndian.Uint64(b[16:]))
	switch {
	case h.Algorithm != ChecksumCRC32C:
		return Header{}, fmt.Errorf("checksum algorithm %d unsupported: %w", h.Algorithm, ErrCorrupt)
	case h.BlockSize < 512 || h.BlockSize > 16<<20:
		return Header{}, fmt.Errorf("block size %d: %w", h.BlockSize, ErrCorrupt)
	case h.DataLen < 0 || h.DataLen > 1<<50:
		return Header{}, fmt.Errorf("data length %d: %w", h.DataLen, ErrCorrupt)
	}
	if h.Version == shardFormatV1 {
		if b[11] != 0 || binary.LittleEndian.Uint32(b[24:]) != 0 {
			return Header{}, fmt.Errorf("reserved header bytes set: %w", ErrCorrupt)
		}
		return h, nil
	}
	n := int(b[11])
	h.Shard = int(binary.LittleEndian.Uint16(b[24:]))
	switch {
	case n < minIDLen || n > maxIDLen:
		return Header{}, fmt.Errorf("ref ID of %d bytes: %w", n, ErrCorrupt)
	case h.Shard > maxShardIndex:
		return Header{}, fmt.Errorf("shard index %d: %w", h.Shard, ErrCorrupt)
	case binary.LittleEndian.Uint16(b[26:]) != 0 || !allZero(b[idOff+n:end]):
		return Header{}, fmt.Errorf("reserved header bytes set: %w", ErrCorrupt)
	}
	h.ID = string(b[idOff : idOff+n])
	if !validID(h.ID) {
		return Header{}, fmt.Errorf("ref ID %q is not lower-case hex: %w", h.ID, ErrCorrupt)
	}
	return h, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// bindSeed is the CRC-32C of what a version 2 file's block checksums bind
// besides the block number: the length of the ref ID, the ID and the
// shard index. It is the state every block's checksum starts from.
func bindSeed(n Name) uint32 {
	var b [1 + maxIDLen + 2]byte
	b[0] = byte(len(n.ID))
	k := 1 + copy(b[1:1+maxIDLen], n.ID)
	binary.LittleEndian.PutUint16(b[k:], uint16(n.Shard))
	return crc32.Checksum(b[:k+2], castagnoli)
}

// blockSum is the checksum of block idx holding data, continuing from
// seed: bindSeed of the shard for version 2, 0 for version 1.
func blockSum(seed uint32, idx int64, data []byte) uint32 {
	var ib [8]byte
	binary.LittleEndian.PutUint64(ib[:], uint64(idx))
	return crc32.Update(crc32.Update(seed, castagnoli, ib[:]), castagnoli, data)
}

// Name names one shard file: shard Shard of the data ID.
type Name struct {
	ID    string // lower-case hex, 8..64 characters
	Shard int    // 0..255
}

func (n Name) String() string { return n.ID + "." + strconv.Itoa(n.Shard) }

// Validate reports whether n can name a file.
func (n Name) Validate() error {
	if !validID(n.ID) || n.Shard < 0 || n.Shard > maxShardIndex {
		return fmt.Errorf("store: %q shard %d: %w", n.ID, n.Shard, ErrInvalidName)
	}
	return nil
}

func validID(id string) bool {
	if len(id) < minIDLen || len(id) > maxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func (d *Drive) shardDir(n Name) string {
	return filepath.Join(d.path, shardsDir, n.ID[0:2], n.ID[2:4])
}

func (d *Drive) shardPath(n Name) (string, error) {
	if err := n.Validate(); err != nil {
		return "", err
	}
	return filepath.Join(d.shardDir(n), n.String()), nil
}

var bufPool sync.Pool // *[]byte of varying capacity

func getBuf(n int) *[]byte {
	if v, ok := bufPool.Get().(*[]byte); ok && cap(*v) >= n {
		*v = (*v)[:n]
		return v
	}
	b := make([]byte, n)
	return &b
}

func putBuf(b *[]byte) { bufPool.Put(b) }

// Writer streams one shard file. Bytes written are not durable, nor
// visible to readers, until Commit returns nil.
type Writer struct {
	d     *Drive
	name  Name
	final string
	f     vfs.File
	tmp   string

	bs      int
	seed    uint32  // bindSeed(name)
	buf     *[]byte // staged blocks with their checksums
	staged  int     // bytes of buf in use
	fill    int     // data bytes in the current (last, open) block
	block   int64   // index of the current block
	dataLen int64
	off     int64 // file offset of buf[0]
	synced  int64 // file offset up to which writeback was started
	err     error
}

// Create starts a shard file. Call Commit or Abort.
func (d *Drive) Create(ctx context.Context, name Name) (*Writer, error) {
	if err := d.usable(ctx); err != nil {
		return nil, err
	}
	final, err := d.shardPath(name)
	if err != nil {
		return nil, err
	}
	if err := d.Room(); err != nil {
		return nil, fmt.Errorf("store: create %s: %w", name, err)
	}
	tmp := filepath.Join(d.tmpPath(), name.String()+"."+strconv.FormatUint(d.tmpSeq.Add(1), 10))
	f, err := d.fs.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, d.ioError("create "+name.String(), err)
	}
	bs := d.cfg.BlockSize
	per := bs + crcSize
	size := max(1, d.cfg.WriteBuffer/bs) * per
	return &Writer{d: d, name: name, final: final, f: f, tmp: tmp, bs: bs, seed: bindSeed(name), buf: getBuf(size), off: HeaderSize}, nil
}

// Write appends p to the shard's data.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n := len(p)
	buf := *w.buf
	for len(p) > 0 {
		if w.fill == w.bs {
			w.sealBlock()
		}
		// A block never spans two flushes: its checksum covers buf only.
		if w.fill == 0 && w.staged+w.bs+crcSize > len(buf) {
			if err := w.flush(); err != nil {
				return 0, err
			}
		}
		c := copy(buf[w.staged:w.staged+w.bs-w.fill], p)
		w.staged += c
		w.fill += c
		w.dataLen += int64(c)
		p = p[c:]
	}
	return n, nil
}

// sealBlock appends the checksum of the full current block.
func (w *Writer) sealBlock() {
	buf := *w.buf
	start := w.staged - w.fill
	binary.LittleEndian.PutUint32(buf[w.staged:], blockSum(w.seed, w.block, buf[start:w.staged]))
	w.staged += crcSize
	w.block++
	w.fill = 0
}

func (w *Writer) flush() error {
	if w.staged == 0 {
		return nil
	}
	// Writers that started with room stop at half the reserve, so that
	// many large writes under way cannot take what the reserve keeps
	// (TestDriveReserve).
	if err := w.d.roomAbove(w.d.cfg.Reserve / 2); err != nil {
		w.err = fmt.Errorf("store: write %s: %w", w.name, err)
		return w.err
	}
	if _, err := w.f.WriteAt((*w.buf)[:w.staged], w.off); err != nil {
		w.err = w.d.ioError("write "+w.name.String(), err)
		return w.err
	}
	w.off += int64(w.staged)
	w.staged = 0
	if w.off-w.synced >= writebackEvery {
		w.f.StartWriteback(w.synced, w.off-w.synced)
		w.synced = w.off
	}
	return nil
}

// Commit makes the shard durable under its name, replacing any older file.
func (w *Writer) Commit(ctx context.Context) error {
	defer w.release()
	if w.err != nil {
		w.abort()
		return w.err
	}
	if err := ctx.Err(); err != nil {
		w.abort()
		return err
	}
	if w.fill > 0 {
		w.sealBlock()
	}
	if err := w.flush(); err != nil {
		w.abort()
		return err
	}
	var hb [HeaderSize]byte
	Header{Version: ShardFormat, Algorithm: ChecksumCRC32C, BlockSize: w.bs, DataLen: w.dataLen,
		ID: w.name.ID, Shard: w.name.Shard}.encode(hb[:])
	err := func() error {
		if _, err := w.f.WriteAt(hb[:], 0); err != nil {
			return err
		}
		if err := w.f.Sync(); err != nil {
			// After a failed fsync the kernel may have dropped the dirty
			// pages: nothing on this drive can be trusted to be durable.
			w.d.ioErrors.Add(1)
			w.d.fail(fmt.Errorf("fsync failed: %w", err))
			return err
		}
		if !w.d.cfg.KeepWrittenCache {
			dropCache(w.f)
		}
		return nil
	}()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f = nil
	if err == nil {
		err = w.d.mkdirs(w.name)
	}
	if err == nil {
		err = w.d.fs.Rename(w.tmp, w.final)
	}
	if err == nil {
		err = w.d.fs.SyncDir(filepath.Dir(w.final))
	}
	if err != nil {
		w.d.fs.Remove(w.tmp)
		if w.d.State() == Failed {
			return fmt.Errorf("store: commit %s: %w: %w", w.name, ErrDriveFailed, err)
		}
		return w.d.ioError("commit "+w.name.String(), err)
	}
	return nil
}

// Abort discards the shard. It is safe after Commit (it does nothing).
func (w *Writer) Abort() {
	w.abort()
	w.release()
}

func (w *Writer) abort() {
	if w.f != nil {
		w.f.Close()
		w.f = nil
		w.d.fs.Remove(w.tmp)
	}
	if w.err == nil {
		w.err = errors.New("store: writer closed")
	}
}

func (w *Writer) release() {
	if w.buf != nil {
		putBuf(w.buf)
		w.buf = nil
	}
	if w.err == nil {
		w.err = errors.New("store: writer closed")
	}
}

// mkdirs creates the shard's two directory levels, fsyncing the parent of
// each one created so the new entry survives a crash.
func (d *Drive) mkdirs(n Name) error {
	root := filepath.Join(d.path, shardsDir)
	dirs := []string{root, filepath.Join(root, n.ID[0:2]), d.shardDir(n)}
	for i, dir := range dirs {
		err := d.fs.Mkdir(dir, 0o755)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return err
		}
		parent := d.path
		if i > 0 {
			parent = dirs[i-1]
		}
		if err := d.fs.SyncDir(parent); err != nil {
			return err
		}
	}
	return nil
}

// Reader reads a shard file, verifying every block it touches. ReadAt is
// safe for concurrent use.
type Reader struct {
	d       *Drive
	name    Name
	f       vfs.File
	h       Header
	dataOff int64  // where block 0 starts
	seed    uint32 // of every block's checksum: bindSeed(name), or 0 for version 1
}

// OpenShard opens a shard file and verifies its header and size. A file
// whose header names another shard than name (a ref ID or a shard index
// it was not written as) is refused with a *MisplacedError, which wraps
// ErrMisplaced and ErrCorrupt; blocks are then checked against name, not
// against what the header claims.
func (d *Drive) OpenShard(ctx context.Context, name Name) (*Reader, error) {
	if err := d.usable(ctx); err != nil {
		return nil, err
	}
	p, err := d.shardPath(name)
	if err != nil {
		return nil, err
	}
	f, err := d.fs.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, d.notFound("open", name, err)
	}
	if err != nil {
		return nil, d.ioError("open "+name.String(), err)
	}
	d.shardsRead.Add(1)
	var hb [HeaderSize]byte
	h, err := func() (Header, error) {
		fi, err := f.Stat()
		if err != nil {
			return Header{}, d.ioError("stat "+name.String(), err)
		}
		// A version 1 header is shorter; a short read is judged by the
		// decoder.
		n, err := f.ReadAt(hb[:], 0)
		if err != nil && !errors.Is(err, io.EOF) {
			return Header{}, d.ioError("read "+name.String(), err)
		}
		h, err := DecodeHeader(hb[:n])
		if err != nil {
			return Header{}, err
		}
		if h.Version != shardFormatV1 && (h.ID != name.ID || h.Shard != name.Shard) {
			return Header{}, &MisplacedError{Want: name, Found: Name{ID: h.ID, Shard: h.Shard}, Drive: d.path}
		}
		if h.FileSize() != fi.Size() {
			return Header{}, fmt.Errorf("file has %d bytes, header implies %d: %w", fi.Size(), h.FileSize(), ErrCorrupt)
		}
		return h, nil
	}()
	if err != nil {
		f.Close()
		if errors.Is(err, ErrCorrupt) {
			d.countCorrupt(1)
			if errors.Is(err, ErrMisplaced) {
				return nil, err // names the shard and the drive itself
			}
			return nil, fmt.Errorf("store: %s on drive %s: %w", name, d.path, err)
		}
		return nil, err
	}
	r := &Reader{d: d, name: name, f: f, h: h, dataOff: int64(h.Size())}
	if h.Version != shardFormatV1 {
		r.seed = bindSeed(name)
	}
	return r, nil
}

// Size is the shard's data length.
func (r *Reader) Size() int64 { return r.h.DataLen }

// Header returns the file's header.
func (r *Reader) Header() Header { return r.h }

// Drive is the drive the shard is on.
func (r *Reader) Drive() *Drive { return r.d }

// Close releases the file.
func (r *Reader) Close() error { return r.f.Close() }

// writebackEvery is how many bytes a Writer lets accumulate before it
// starts their writeback; see startWriteback.
const writebackEvery = 4 << 20

// readSpan bounds the bytes one ReadAt call stages at a time.
const readSpan = 1 << 20

// ReadAt reads len(p) data bytes at off, as io.ReaderAt, verifying every
// block involved. A bad block returns an error wrapping ErrCorrupt.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("store: negative offset %d", off)
	}
	if off >= r.h.DataLen {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	want := len(p)
	var eof error
	if rest := r.h.DataLen - off; int64(want) > rest {
		want = int(rest)
		eof = io.EOF
	}
	bs := int64(r.h.BlockSize)
	per := bs + crcSize
	spanBlocks := max(1, readSpan/per)
	bufp := getBuf(int(spanBlocks * per))
	defer putBuf(bufp)
	buf := *bufp
	done := 0
	for done < want {
		pos := off + int64(done)
		first := pos / bs
		last := (off + int64(want) - 1) / bs
		last = min(last, first+spanBlocks-1)
		// The last block of the file may be short.
		end := min((last+1)*bs, r.h.DataLen)
		phys := r.dataOff + first*per
		n := int(end - first*bs + (last-first+1)*crcSize)
		if _, err := r.f.ReadAt(buf[:n], phys); err != nil {
			if errors.Is(err, io.EOF) {
				r.d.countCorrupt(1)
				return done, fmt.Errorf("store: %s on drive %s: truncated: %w", r.name, r.d.path, ErrCorrupt)
			}
			return done, r.d.ioError("read "+r.name.String(), err)
		}
		b := buf[:n]
		for blk := first; blk <= last; blk++ {
			dl := int(min(bs, r.h.DataLen-blk*bs))
			data := b[:dl]
			sum := binary.LittleEndian.Uint32(b[dl:])
			if blockSum(r.seed, blk, data) != sum {
				r.d.countCorrupt(1)
				return done, fmt.Errorf("store: %s on drive %s: block %d checksum mismatch: %w", r.name, r.d.path, blk, ErrCorrupt)
			}
			lo := 0
			if blk == first {
				lo = int(pos - first*bs)
			}
			done += copy(p[done:want], data[lo:])
			b = b[dl+crcSize:]
		}
	}
	return done, eof
}

// Verify reads and checks every block; it returns the number of bad blocks
// found and an error wrapping ErrCorrupt if there were any.
func (r *Reader) Verify(ctx context.Context) (bad int, err error) {
	bs := int64(r.h.BlockSize)
	per := bs + crcSize
	spanBlocks := max(1, readSpan/per)
	bufp := getBuf(int(spanBlocks * per))
	defer putBuf(bufp)
	buf := *bufp
	nblocks := r.h.blocks()
	for first := int64(0); first < nblocks; first += spanBlocks {
		if err := ctx.Err(); err != nil {
			return bad, err
		}
		last := min(first+spanBlocks, nblocks) - 1
		end := min((last+1)*bs, r.h.DataLen)
		n := int(end - first*bs + (last-first+1)*crcSize)
		if _, err := r.f.ReadAt(buf[:n], r.dataOff+first*per); err != nil {
			if errors.Is(err, io.EOF) {
				// Cut short since it was opened.
				r.d.countCorrupt(1)
				return bad + 1, fmt.Errorf("store: %s on drive %s: truncated: %w", r.name, r.d.path, ErrCorrupt)
			}
			return bad, r.d.ioError("verify "+r.name.String(), err)
		}
		b := buf[:n]
		for blk := first; blk <= last; blk++ {
			dl := int(min(bs, r.h.DataLen-blk*bs))
			if blockSum(r.seed, blk, b[:dl]) != binary.LittleEndian.Uint32(b[dl:]) {
				bad++
			}
			b = b[dl+crcSize:]
		}
	}
	if bad > 0 {
		r.d.countCorrupt(bad)
		return bad, fmt.Errorf("store: %s on drive %s: %d bad blocks: %w", r.name, r.d.path, bad, ErrCorrupt)
	}
	return 0, nil
}
