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

// Shard file format, version 1 (all integers little-endian):
//
//	0  magic "RDBSHARD"
//	8  u16 format version (1)
//	10 u8  checksum algorithm (1 = CRC-32C)
//	11 u8  reserved, 0
//	12 u32 block size
//	16 u64 data length
//	24 u32 reserved, 0
//	28 u32 CRC-32C of bytes 0..28
//	32 blocks: block i is min(block size, remaining) data bytes followed by
//	   u32 CRC-32C(u64 i || data)
//
// The block index inside the checksum catches blocks that land at the
// wrong place, not only flipped bits.
const (
	HeaderSize         = 32
	ShardFormat        = 1
	ChecksumCRC32C     = 1
	crcSize            = 4
	magic              = "RDBSHARD"
	maxShardIndex      = 255
	minIDLen, maxIDLen = 8, 64
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Header is the decoded header of a shard file.
type Header struct {
	Version   int
	Algorithm int
	BlockSize int
	DataLen   int64
}

// blocks is the number of blocks holding DataLen bytes.
func (h Header) blocks() int64 {
	return (h.DataLen + int64(h.BlockSize) - 1) / int64(h.BlockSize)
}

// FileSize is the size of a well-formed file with this header.
func (h Header) FileSize() int64 { return HeaderSize + h.DataLen + h.blocks()*crcSize }

func (h Header) encode(b []byte) {
	copy(b[0:8], magic)
	binary.LittleEndian.PutUint16(b[8:], uint16(h.Version))
	b[10] = byte(h.Algorithm)
	b[11] = 0
	binary.LittleEndian.PutUint32(b[12:], uint32(h.BlockSize))
	binary.LittleEndian.PutUint64(b[16:], uint64(h.DataLen))
	binary.LittleEndian.PutUint32(b[24:], 0)
	binary.LittleEndian.PutUint32(b[28:], crc32.Checksum(b[:28], castagnoli))
}

// DecodeHeader parses and verifies a shard file header.
func DecodeHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("header of %d bytes: %w", len(b), ErrCorrupt)
	}
	if string(b[0:8]) != magic {
		return Header{}, fmt.Errorf("bad magic: %w", ErrCorrupt)
	}
	if crc32.Checksum(b[:28], castagnoli) != binary.LittleEndian.Uint32(b[28:]) {
		return Header{}, fmt.Errorf("header checksum mismatch: %w", ErrCorrupt)
	}
	h := Header{
		Version:   int(binary.LittleEndian.Uint16(b[8:])),
		Algorithm: int(b[10]),
		BlockSize: int(binary.LittleEndian.Uint32(b[12:])),
		DataLen:   int64(binary.LittleEndian.Uint64(b[16:])),
	}
	switch {
	case h.Version != ShardFormat:
		return Header{}, fmt.Errorf("shard format %d unsupported: %w", h.Version, ErrCorrupt)
	case h.Algorithm != ChecksumCRC32C:
		return Header{}, fmt.Errorf("checksum algorithm %d unsupported: %w", h.Algorithm, ErrCorrupt)
	case h.BlockSize < 512 || h.BlockSize > 16<<20:
		return Header{}, fmt.Errorf("block size %d: %w", h.BlockSize, ErrCorrupt)
	case h.DataLen < 0 || h.DataLen > 1<<50:
		return Header{}, fmt.Errorf("data length %d: %w", h.DataLen, ErrCorrupt)
	}
	return h, nil
}

func blockSum(idx int64, data []byte) uint32 {
	var ib [8]byte
	binary.LittleEndian.PutUint64(ib[:], uint64(idx))
	return crc32.Update(crc32.Checksum(ib[:], castagnoli), castagnoli, data)
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
	tmp := filepath.Join(d.tmpPath(), name.String()+"."+strconv.FormatUint(d.tmpSeq.Add(1), 10))
	f, err := d.fs.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, d.ioError("create "+name.String(), err)
	}
	bs := d.cfg.BlockSize
	per := bs + crcSize
	size := max(1, d.cfg.WriteBuffer/bs) * per
	return &Writer{d: d, name: name, final: final, f: f, tmp: tmp, bs: bs, buf: getBuf(size), off: HeaderSize}, nil
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
	binary.LittleEndian.PutUint32(buf[w.staged:], blockSum(w.block, buf[start:w.staged]))
	w.staged += crcSize
	w.block++
	w.fill = 0
}

func (w *Writer) flush() error {
	if w.staged == 0 {
		return nil
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
	Header{Version: ShardFormat, Algorithm: ChecksumCRC32C, BlockSize: w.bs, DataLen: w.dataLen}.encode(hb[:])
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
	d    *Drive
	name Name
	f    vfs.File
	h    Header
}

// OpenShard opens a shard file and verifies its header and size.
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
		if _, err := f.ReadAt(hb[:], 0); err != nil {
			if errors.Is(err, io.EOF) {
				return Header{}, fmt.Errorf("truncated header: %w", ErrCorrupt)
			}
			return Header{}, d.ioError("read "+name.String(), err)
		}
		h, err := DecodeHeader(hb[:])
		if err != nil {
			return Header{}, err
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
			return nil, fmt.Errorf("store: %s on drive %s: %w", name, d.path, err)
		}
		return nil, err
	}
	return &Reader{d: d, name: name, f: f, h: h}, nil
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
		phys := HeaderSize + first*per
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
			if blockSum(blk, data) != sum {
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
		if _, err := r.f.ReadAt(buf[:n], HeaderSize+first*per); err != nil {
			return bad, r.d.ioError("verify "+r.name.String(), err)
		}
		b := buf[:n]
		for blk := first; blk <= last; blk++ {
			dl := int(min(bs, r.h.DataLen-blk*bs))
			if blockSum(blk, b[:dl]) != binary.LittleEndian.Uint32(b[dl:]) {
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
