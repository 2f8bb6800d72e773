package shardrpc

import (
	"encoding/binary"
	"fmt"

	"github.com/redoubt-io/redoubt/internal/store"
)

// Wire format, version 1. Every message starts with the version byte.
//
// Request:  u8 version, u8 op, then the op's fields in this order:
//
//	create  drive, name
//	append  session, off, data
//	commit  session, off, data       (append the tail, then commit)
//	abort   session
//	read    drive, name, off, len
//	stat    drive, name
//	remove  drive, name
//	drives  (nothing)
//
// Response: u8 version, u8 status. A status other than statusOK is followed
// by the error text (the rest of the message). statusOK is followed by the
// op's result:
//
//	create  u64 session (little-endian)
//	read    size, data
//	stat    size
//	drives  count, then per drive: id, path, slot, u8 state,
//	        u8 needs-repair, reads, corrupt blocks, I/O errors,
//	        used, total, free bytes
//	others  (nothing)
//
// A drive, path or ID is a uvarint length then bytes; a name is an ID then
// a uvarint shard number; session is a uvarint; off, len, size, slot and the
// counters are uvarints. data is the rest of the message, so it is never
// copied to be framed. Every decoder rejects trailing bytes.
const wireVersion = 1

type op byte

const (
	opCreate op = iota + 1
	opAppend
	opCommit
	opAbort
	opRead
	opStat
	opRemove
	opDrives
	opMax // one past the last op
)

var opNames = [...]string{"", "create", "append", "commit", "abort", "read", "stat", "remove", "drives"}

func (o op) String() string {
	if o > 0 && o < opMax {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", byte(o))
}

// status is the class of a handler's result. Classes, not error values,
// cross the wire: the transport carries only bytes.
type status byte

const (
	statusOK status = iota
	statusNotFound
	statusCorrupt
	statusDriveFailed
	statusInvalidName
	statusBadRequest
	statusUnknownSession
	statusBusy
	statusTooLarge
	statusIO // any other error of the remote drive
	statusMax
)

const (
	maxStringLen = 255  // drive IDs, paths and shard IDs
	maxErrorText = 1024 // error text carried in a response
	maxDrives    = 4096 // drives in one drive-states response
)

// request is a decoded request. Data aliases the message it came from.
type request struct {
	Op      op
	Drive   string
	Name    store.Name
	Session uint64
	Off     int64
	Len     int64
	Data    []byte
}

// response is a decoded response. Data aliases the message it came from.
type response struct {
	Status  status
	Text    string // error text when Status is not statusOK
	Session uint64
	Size    int64
	Data    []byte
	Drives  []store.Stats
}

// maxHeader bounds the encoded size of a request's fields other than Data.
const maxHeader = 2 + 2*(binary.MaxVarintLen64+maxStringLen) + 3*binary.MaxVarintLen64

func (r *request) encode() []byte {
	b := make([]byte, 0, maxHeader+len(r.Data))
	b = append(b, wireVersion, byte(r.Op))
	switch r.Op {
	case opCreate, opStat, opRemove:
		b = appendString(b, r.Drive)
		b = appendName(b, r.Name)
	case opAppend, opCommit:
		b = appendHeader(b[:0], r.Op, r.Session, r.Off)
		b = append(b, r.Data...)
	case opAbort:
		b = binary.AppendUvarint(b, r.Session)
	case opRead:
		b = appendString(b, r.Drive)
		b = appendName(b, r.Name)
		b = binary.AppendUvarint(b, uint64(r.Off))
		b = binary.AppendUvarint(b, uint64(r.Len))
	}
	return b
}

func decodeRequest(b []byte) (request, error) {
	d := decoder{b: b}
	var r request
	if v := d.byte(); d.err == nil && v != wireVersion {
		return r, fmt.Errorf("%w: wire version %d, want %d", ErrBadMessage, v, wireVersion)
	}
	r.Op = op(d.byte())
	if d.err == nil && (r.Op == 0 || r.Op >= opMax) {
		return r, fmt.Errorf("%w: unknown op %d", ErrBadMessage, byte(r.Op))
	}
	switch r.Op {
	case opCreate, opStat, opRemove:
		r.Drive = d.string("drive")
		r.Name = d.name()
	case opAppend, opCommit:
		r.Session = d.uvarint("session")
		r.Off = d.int63("offset")
		r.Data = d.rest()
	case opAbort:
		r.Session = d.uvarint("session")
	case opRead:
		r.Drive = d.string("drive")
		r.Name = d.name()
		r.Off = d.int63("offset")
		r.Len = d.int63("length")
	}
	if err := d.end(); err != nil {
		return request{}, fmt.Errorf("%s request: %w", r.Op, err)
	}
	return r, nil
}

// encodeError returns the response for a failed call.
func encodeError(s status, text string) []byte {
	if len(text) > maxErrorText {
		text = text[:maxErrorText]
	}
	b := make([]byte, 0, 2+len(text))
	return append(append(b, wireVersion, byte(s)), text...)
}

// encodeOK returns the response of a successful call of op o. Read
// responses are built by the server directly, to read into them in place.
func encodeOK(o op, r *response) []byte {
	b := []byte{wireVersion, byte(statusOK)}
	switch o {
	case opCreate:
		b = binary.LittleEndian.AppendUint64(b, r.Session)
	case opRead:
		b = binary.AppendUvarint(b, uint64(r.Size))
		b = append(b, r.Data...)
	case opStat:
		b = binary.AppendUvarint(b, uint64(r.Size))
	case opDrives:
		b = binary.AppendUvarint(b, uint64(len(r.Drives)))
		for _, s := range r.Drives {
			b = appendString(b, s.ID)
			b = appendString(b, s.Path)
			b = binary.AppendUvarint(b, uint64(s.Slot))
			b = append(b, byte(s.State), boolByte(s.NeedsRepair))
			for _, v := range [...]uint64{s.ShardsRead, s.CorruptBlocks, s.IOErrors, s.UsedBytes, s.TotalBytes, s.FreeBytes} {
				b = binary.AppendUvarint(b, v)
			}
		}
	}
	return b
}

// decodeResponse decodes the response to a request of op o.
func decodeResponse(o op, b []byte) (response, error) {
	d := decoder{b: b}
	var r response
	if v := d.byte(); d.err == nil && v != wireVersion {
		return r, fmt.Errorf("%w: wire version %d, want %d", ErrBadMessage, v, wireVersion)
	}
	r.Status = status(d.byte())
	if d.err != nil {
		return response{}, fmt.Errorf("%s response: %w", o, d.err)
	}
	if r.Status >= statusMax {
		return response{}, fmt.Errorf("%s response: %w: unknown status %d", o, ErrBadMessage, byte(r.Status))
	}
	if r.Status != statusOK {
		rest := d.rest()
		if len(rest) > maxErrorText {
			return response{}, fmt.Errorf("%s response: %w: error text of %d bytes", o, ErrBadMessage, len(rest))
		}
		r.Text = string(rest)
		return r, nil
	}
	switch o {
	case opCreate:
		r.Session = d.u64("session")
	case opRead:
		r.Size = d.int63("size")
		r.Data = d.rest()
	case opStat:
		r.Size = d.int63("size")
	case opDrives:
		n := d.uvarint("drive count")
		if d.err == nil && n > maxDrives {
			d.fail("%d drives", n)
		}
		for i := uint64(0); d.err == nil && i < n; i++ {
			var s store.Stats
			s.ID = d.string("drive")
			s.Path = d.string("path")
			slot := d.uvarint("slot")
			if d.err == nil && slot >= maxDrives {
				d.fail("slot %d", slot)
			}
			s.Slot = int(slot)
			s.State = store.State(d.byte())
			if d.err == nil && s.State != store.Online && s.State != store.Failed {
				d.fail("drive state %d", s.State)
			}
			nr := d.byte()
			if d.err == nil && nr > 1 {
				d.fail("needs-repair flag %d", nr)
			}
			s.NeedsRepair = nr == 1
			s.ShardsRead = d.uvarint("reads")
			s.CorruptBlocks = d.uvarint("corrupt blocks")
			s.IOErrors = d.uvarint("I/O errors")
			s.UsedBytes = d.uvarint("used bytes")
			s.TotalBytes = d.uvarint("total bytes")
			s.FreeBytes = d.uvarint("free bytes")
			r.Drives = append(r.Drives, s)
		}
	}
	if err := d.end(); err != nil {
		return response{}, fmt.Errorf("%s response: %w", o, err)
	}
	return r, nil
}

// appendHeaderMax bounds the bytes before the data of an append or commit.
const appendHeaderMax = 2 + 2*binary.MaxVarintLen64

// appendHeader appends the fields of an append or commit before its data.
func appendHeader(b []byte, o op, session uint64, off int64) []byte {
	b = append(b, wireVersion, byte(o))
	b = binary.AppendUvarint(b, session)
	return binary.AppendUvarint(b, uint64(off))
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendName(b []byte, n store.Name) []byte {
	b = appendString(b, n.ID)
	return binary.AppendUvarint(b, uint64(n.Shard))
}

// decoder reads fields in order; the first error sticks and later reads
// return zero values, so a decode function checks once at the end.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrBadMessage, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) u64(what string) uint64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.fail("truncated %s", what)
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad %s", what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// int63 reads a uvarint that must fit an int64.
func (d *decoder) int63(what string) int64 {
	v := d.uvarint(what)
	if d.err == nil && v > 1<<63-1 {
		d.fail("%s %d overflows", what, v)
		return 0
	}
	return int64(v)
}

func (d *decoder) string(what string) string {
	n := d.uvarint(what + " length")
	if d.err != nil {
		return ""
	}
	if n > maxStringLen || n > uint64(len(d.b)) {
		d.fail("%s of %d bytes", what, n)
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// name reads a shard name. Its validity as a file name is the store's to
// judge, so a bad one gets the store's precise error.
func (d *decoder) name() store.Name {
	id := d.string("shard ID")
	sh := d.uvarint("shard number")
	if d.err == nil && sh > 1<<16 {
		d.fail("shard number %d", sh)
	}
	return store.Name{ID: id, Shard: int(sh)}
}

func (d *decoder) rest() []byte {
	if d.err != nil {
		return nil
	}
	v := d.b
	d.b = nil
	return v
}

func (d *decoder) end() error {
	if d.err == nil && len(d.b) > 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	return d.err
}
