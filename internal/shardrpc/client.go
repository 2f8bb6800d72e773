package shardrpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/redoubt-io/redoubt/internal/store"
)

// Caller sends one request to service on node and returns its response.
// The node wiring adapts the authenticated transport to it. An error means
// the call did not complete (unreachable node, broken connection,
// cancelled context): the handler's own failures come back inside the
// response. Call must not modify req, nor keep it after returning: the
// caller reuses it.
type Caller interface {
	Call(ctx context.Context, node string, service string, req []byte) ([]byte, error)
}

// Errors returned (wrapped) by the client, next to the store sentinels.
var (
	// ErrUnknownSession: the write session ended on the server (expired,
	// aborted, failed, or the server restarted). Also wraps
	// store.ErrDriveFailed: the shard cannot be finished there.
	ErrUnknownSession = errors.New("unknown write session")
	// ErrBusy: the server holds as many write sessions as it allows. Also
	// wraps store.ErrDriveFailed.
	ErrBusy = errors.New("too many write sessions")
	// ErrTooLarge: a request exceeded the server's MaxData. Also wraps
	// store.ErrDriveFailed.
	ErrTooLarge = errors.New("request too large")
	// ErrBadMessage: a request or response could not be decoded, or an
	// append arrived out of order. Also wraps store.ErrDriveFailed.
	ErrBadMessage = errors.New("malformed message")
	// ErrRemoteIO: the remote drive failed the operation without being
	// marked failed (as a local store error that wraps no sentinel).
	ErrRemoteIO = errors.New("remote drive I/O error")
)

// ClientConfig tunes how a RemoteDrive splits its traffic.
type ClientConfig struct {
	// AppendSize is the bytes a ShardWriter gathers before sending them.
	// Larger appends mean fewer round trips; 1 MiB is one data shard of the
	// default chunk, so a chunk's shard costs one call. Must not exceed the
	// server's MaxData.
	AppendSize int
	// ReadSize is the most bytes one read call fetches; a larger ReadAt is
	// split. Same trade-off and bound as AppendSize.
	ReadSize int
	// AbortTimeout bounds the best-effort abort call of ShardWriter.Abort;
	// if it fails the server's session timeout cleans up.
	AbortTimeout time.Duration
}

// DefaultClientConfig returns the configuration described on each field.
func DefaultClientConfig() ClientConfig {
	return ClientConfig{AppendSize: 1 << 20, ReadSize: 1 << 20, AbortTimeout: 5 * time.Second}
}

// Validate reports whether c can be used.
func (c ClientConfig) Validate() error {
	if c.AppendSize < 4<<10 || c.AppendSize > 64<<20 {
		return fmt.Errorf("shardrpc: append size %d outside [4 KiB, 64 MiB]", c.AppendSize)
	}
	if c.ReadSize < 4<<10 || c.ReadSize > 64<<20 {
		return fmt.Errorf("shardrpc: read size %d outside [4 KiB, 64 MiB]", c.ReadSize)
	}
	if c.AbortTimeout <= 0 {
		return fmt.Errorf("shardrpc: abort timeout %v must be positive", c.AbortTimeout)
	}
	return nil
}

// RemoteDrive is a drive of another node, reached through a Caller. It is
// safe for concurrent use.
type RemoteDrive struct {
	c       Caller
	node    string
	drive   string
	cfg     ClientConfig
	offline atomic.Bool // the zero value is online: unknown counts as healthy
}

// NewRemoteDrive returns drive driveID of node. A configuration that does
// not Validate is replaced by DefaultClientConfig.
func NewRemoteDrive(c Caller, node string, driveID string, cfg ClientConfig) *RemoteDrive {
	if cfg.Validate() != nil {
		cfg = DefaultClientConfig()
	}
	return &RemoteDrive{c: c, node: node, drive: driveID, cfg: cfg}
}

func (d *RemoteDrive) ID() string   { return d.drive }
func (d *RemoteDrive) Node() string { return d.node }
func (d *RemoteDrive) Online() bool { return !d.offline.Load() }

func (d *RemoteDrive) String() string { return d.node + "/" + d.drive }

// call sends r and decodes the answer, turning every failure into an error
// of its class and updating Online.
func (d *RemoteDrive) call(ctx context.Context, r *request) (response, error) {
	return d.callEncoded(ctx, r.Op, r.encode())
}

func (d *RemoteDrive) callEncoded(ctx context.Context, o op, msg []byte) (response, error) {
	out, err := d.c.Call(ctx, d.node, Service, msg)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			// The caller gave up; that says nothing about the drive.
			return response{}, fmt.Errorf("shardrpc: %s on %s: %w", o, d, cerr)
		}
		d.offline.Store(true)
		return response{}, fmt.Errorf("shardrpc: %s on %s: %w: %w", o, d, store.ErrDriveFailed, err)
	}
	resp, err := decodeResponse(o, out)
	if err != nil {
		d.offline.Store(true)
		return response{}, fmt.Errorf("shardrpc: %s on %s: %w: %w", o, d, store.ErrDriveFailed, err)
	}
	d.offline.Store(resp.Status == statusDriveFailed)
	if resp.Status == statusOK {
		return resp, nil
	}
	return response{}, remoteError(o, d, resp)
}

func remoteError(o op, d *RemoteDrive, resp response) error {
	var class, also error
	switch resp.Status {
	case statusNotFound:
		class = store.ErrNotFound
	case statusCorrupt:
		class = store.ErrCorrupt
	case statusDriveFailed:
		class = store.ErrDriveFailed
	case statusInvalidName:
		class = store.ErrInvalidName
	case statusBadRequest:
		class, also = ErrBadMessage, store.ErrDriveFailed
	case statusUnknownSession:
		class, also = ErrUnknownSession, store.ErrDriveFailed
	case statusBusy:
		class, also = ErrBusy, store.ErrDriveFailed
	case statusTooLarge:
		class, also = ErrTooLarge, store.ErrDriveFailed
	default:
		class = ErrRemoteIO
	}
	if also != nil {
		return fmt.Errorf("shardrpc: %s on %s: %w: %w: %s", o, d, class, also, resp.Text)
	}
	return fmt.Errorf("shardrpc: %s on %s: %w: %s", o, d, class, resp.Text)
}

// Refresh asks the node for its drives' states and updates Online.
func (d *RemoteDrive) Refresh(ctx context.Context) error {
	st, err := d.states(ctx)
	if err != nil {
		return err
	}
	for _, s := range st {
		if s.ID == d.drive {
			d.offline.Store(s.State != store.Online)
			return nil
		}
	}
	d.offline.Store(true)
	return fmt.Errorf("shardrpc: node %s has no drive %s: %w", d.node, d.drive, store.ErrDriveFailed)
}

func (d *RemoteDrive) states(ctx context.Context) ([]store.Stats, error) {
	resp, err := d.call(ctx, &request{Op: opDrives})
	if err != nil {
		return nil, err
	}
	return resp.Drives, nil
}

// DriveStates returns the state and counters of every drive of node, for
// status pages. A transport failure wraps store.ErrDriveFailed.
func DriveStates(ctx context.Context, c Caller, node string) ([]store.Stats, error) {
	return (&RemoteDrive{c: c, node: node, cfg: DefaultClientConfig()}).states(ctx)
}

// Stat returns the data length of a committed shard.
func (d *RemoteDrive) Stat(ctx context.Context, name store.Name) (int64, error) {
	resp, err := d.call(ctx, &request{Op: opStat, Drive: d.drive, Name: name})
	if err != nil {
		return 0, err
	}
	return resp.Size, nil
}

// Remove deletes a shard. A missing shard is not an error.
func (d *RemoteDrive) Remove(ctx context.Context, name store.Name) error {
	_, err := d.call(ctx, &request{Op: opRemove, Drive: d.drive, Name: name})
	return err
}

// Create opens a write session on the remote drive. The returned writer
// sends its appends under ctx, which must outlive it.
func (d *RemoteDrive) Create(ctx context.Context, name store.Name) (ShardWriter, error) {
	if err := name.Validate(); err != nil {
		return nil, err
	}
	resp, err := d.call(ctx, &request{Op: opCreate, Drive: d.drive, Name: name})
	if err != nil {
		return nil, err
	}
	msg := make([]byte, appendHeaderMax+d.cfg.AppendSize)
	return &remoteWriter{d: d, ctx: ctx, session: resp.Session, msg: msg, buf: msg[appendHeaderMax:appendHeaderMax]}, nil
}

// remoteWriter buffers up to AppendSize bytes per append call. The buffer
// sits behind room for the append's header, so that a message is framed
// in place rather than copied.
type remoteWriter struct {
	d       *RemoteDrive
	ctx     context.Context
	session uint64
	msg     []byte // header room, then buf's array
	buf     []byte // data not yet sent
	off     int64  // bytes acknowledged by the server
	err     error  // sticky: once set, every call returns it
	ended   bool   // committed or aborted
}

var errWriterClosed = errors.New("shardrpc: writer closed")

func (w *remoteWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n := len(p)
	for len(p) > 0 {
		c := min(len(p), cap(w.buf)-len(w.buf))
		w.buf = append(w.buf, p[:c]...)
		p = p[c:]
		if len(w.buf) == cap(w.buf) {
			if err := w.send(w.ctx, opAppend); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (w *remoteWriter) send(ctx context.Context, o op) error {
	var hb [appendHeaderMax]byte
	h := appendHeader(hb[:0], o, w.session, w.off)
	start := appendHeaderMax - len(h)
	copy(w.msg[start:], h)
	_, err := w.d.callEncoded(ctx, o, w.msg[start:appendHeaderMax+len(w.buf)])
	if err != nil {
		w.err = err
		return err
	}
	w.off += int64(len(w.buf))
	w.buf = w.buf[:0]
	return nil
}

// Commit sends what is buffered and commits in the same call.
func (w *remoteWriter) Commit(ctx context.Context) error {
	if w.err != nil {
		w.Abort()
		return w.err
	}
	err := w.send(ctx, opCommit)
	if err != nil {
		// The server ends a session whose commit failed; the abort covers a
		// call that never reached it.
		w.Abort()
		return err
	}
	w.err, w.ended, w.buf, w.msg = errWriterClosed, true, nil, nil
	return nil
}

// Abort ends the session, best effort: if the server cannot be reached,
// its session timeout removes the temp file.
func (w *remoteWriter) Abort() {
	if w.ended {
		return
	}
	w.ended, w.buf, w.msg = true, nil, nil
	if w.err == nil {
		w.err = errWriterClosed
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), w.d.cfg.AbortTimeout)
	defer cancel()
	// Its failure changes nothing for the caller.
	_, _ = w.d.c.Call(ctx, w.d.node, Service, (&request{Op: opAbort, Session: w.session}).encode())
}

// OpenShard checks that the shard exists and learns its size; reads go to
// the server on each ReadAt, under ctx, which must outlive the reader.
func (d *RemoteDrive) OpenShard(ctx context.Context, name store.Name) (ShardReader, error) {
	if err := name.Validate(); err != nil {
		return nil, err
	}
	size, err := d.Stat(ctx, name)
	if err != nil {
		return nil, err
	}
	return &remoteReader{d: d, ctx: ctx, name: name, size: size}, nil
}

type remoteReader struct {
	d      *RemoteDrive
	ctx    context.Context
	name   store.Name
	size   int64
	closed atomic.Bool
}

func (r *remoteReader) Size() int64 { return r.size }

func (r *remoteReader) Close() error {
	r.closed.Store(true)
	return nil
}

// ReadAt fetches exactly the range asked for, in calls of at most ReadSize.
func (r *remoteReader) ReadAt(p []byte, off int64) (int, error) {
	if r.closed.Load() {
		return 0, fmt.Errorf("shardrpc: read %s on %s: %w", r.name, r.d, os.ErrClosed)
	}
	if off < 0 {
		return 0, fmt.Errorf("shardrpc: read %s: negative offset %d", r.name, off)
	}
	done := 0
	for done < len(p) {
		want := min(len(p)-done, r.d.cfg.ReadSize)
		resp, err := r.d.call(r.ctx, &request{Op: opRead, Drive: r.d.drive, Name: r.name,
			Off: off + int64(done), Len: int64(want)})
		if err != nil {
			return done, err
		}
		if len(resp.Data) > want {
			r.d.offline.Store(true)
			return done, fmt.Errorf("shardrpc: read %s on %s: %w: %w: %d bytes for %d asked",
				r.name, r.d, store.ErrDriveFailed, ErrBadMessage, len(resp.Data), want)
		}
		done += copy(p[done:], resp.Data)
		if len(resp.Data) < want {
			return done, io.EOF
		}
	}
	return done, nil
}
