package shardrpc

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/redoubt-io/redoubt/internal/store"
)

// Service is the service name the node registers Server.Handle under.
const Service = "shard"

// ServerConfig bounds what peers may hold on this node.
type ServerConfig struct {
	// SessionTimeout is how long a write session may see no call before it
	// is aborted and its temp file removed. A writer node that died must
	// not leave open files behind; a live writer sends its next append
	// within one chunk's coding time, far below a minute.
	SessionTimeout time.Duration
	// MaxSessions bounds the open write sessions of all peers together.
	// Each holds a file and the store's write buffer (1 MiB by default),
	// so 256 sessions cost at most about 256 MiB: room for dozens of
	// concurrent PUTs, each writing a few shards to this node.
	MaxSessions int
	// MaxData bounds the data bytes of one append or one read. The client
	// sends at most ClientConfig.AppendSize or ReadSize per call, which
	// must not exceed it; 4 MiB leaves room for larger chunks while one
	// request stays a bounded allocation.
	MaxData int
}

// DefaultServerConfig returns the configuration described on each field.
func DefaultServerConfig() ServerConfig {
	return ServerConfig{SessionTimeout: 60 * time.Second, MaxSessions: 256, MaxData: 4 << 20}
}

// Validate reports whether c can be used.
func (c ServerConfig) Validate() error {
	if c.SessionTimeout <= 0 {
		return fmt.Errorf("shardrpc: session timeout %v must be positive", c.SessionTimeout)
	}
	if c.MaxSessions < 1 {
		return fmt.Errorf("shardrpc: max sessions %d must be at least 1", c.MaxSessions)
	}
	if c.MaxData < 4<<10 || c.MaxData > 64<<20 {
		return fmt.Errorf("shardrpc: max data %d outside [4 KiB, 64 MiB]", c.MaxData)
	}
	return nil
}

// Server serves this node's drives to peers. See the package doc.
type Server struct {
	cfg    ServerConfig
	drives map[string]*store.Drive
	order  []*store.Drive
	log    *slog.Logger

	mu struct {
		sync.Mutex
		sessions map[uint64]*session
		closed   bool
	}
}

// session is one remote Writer. mu serialises its calls: a store Writer
// belongs to one goroutine at a time.
type session struct {
	id    uint64
	from  string
	drive string
	name  store.Name
	timer *time.Timer

	mu       sync.Mutex
	w        *store.Writer // nil once committed, aborted or expired
	off      int64         // data bytes appended so far
	lastUsed time.Time
}

// NewServer returns a server of drives. A configuration that does not
// Validate is logged and replaced by DefaultServerConfig. Call Close to
// abort the sessions still open.
func NewServer(drives []*store.Drive, cfg ServerConfig, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		logger.Error("invalid shard server configuration; using defaults", "err", err)
		cfg = DefaultServerConfig()
	}
	s := &Server{cfg: cfg, drives: make(map[string]*store.Drive, len(drives)), log: logger}
	for _, d := range drives {
		s.drives[d.ID()] = d
		s.order = append(s.order, d)
	}
	s.mu.sessions = map[uint64]*session{}
	return s
}

// Sessions is the number of open write sessions.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.mu.sessions)
}

// Close aborts every open session and refuses new ones. Calls in flight
// finish first.
func (s *Server) Close() {
	s.mu.Lock()
	s.mu.closed = true
	all := make([]*session, 0, len(s.mu.sessions))
	for _, ss := range s.mu.sessions {
		all = append(all, ss)
	}
	clear(s.mu.sessions)
	s.mu.Unlock()
	for _, ss := range all {
		ss.timer.Stop()
		ss.mu.Lock()
		ss.abortLocked()
		ss.mu.Unlock()
	}
}

// callError is a failure with its wire class.
type callError struct {
	status status
	err    error
}

func (e *callError) Error() string { return e.err.Error() }
func (e *callError) Unwrap() error { return e.err }

func fail(st status, format string, args ...any) error {
	return &callError{status: st, err: fmt.Errorf(format, args...)}
}

// classify maps a store error to its wire class.
func classify(err error) status {
	var ce *callError
	switch {
	case errors.As(err, &ce):
		return ce.status
	case errors.Is(err, store.ErrDriveFailed):
		return statusDriveFailed
	case errors.Is(err, store.ErrCorrupt):
		return statusCorrupt
	case errors.Is(err, store.ErrNotFound):
		return statusNotFound
	case errors.Is(err, store.ErrInvalidName):
		return statusInvalidName
	}
	return statusIO
}

// Handle serves one request from node from. Failures are encoded in the
// response with their class; the returned error is always nil, so that the
// class survives any transport.
func (s *Server) Handle(ctx context.Context, from string, req []byte) ([]byte, error) {
	if len(req) > s.cfg.MaxData+maxHeader {
		return encodeError(statusTooLarge, fmt.Sprintf("request of %d bytes exceeds %d", len(req), s.cfg.MaxData+maxHeader)), nil
	}
	r, err := decodeRequest(req)
	if err != nil {
		return encodeError(statusBadRequest, err.Error()), nil
	}
	resp, err := s.serve(ctx, from, &r)
	if err != nil {
		return encodeError(classify(err), err.Error()), nil
	}
	return resp, nil
}

func (s *Server) serve(ctx context.Context, from string, r *request) ([]byte, error) {
	switch r.Op {
	case opCreate:
		return s.create(ctx, from, r)
	case opAppend, opCommit:
		return s.appendData(ctx, from, r)
	case opAbort:
		if ss := s.take(from, r.Session); ss != nil {
			ss.mu.Lock()
			ss.abortLocked()
			ss.mu.Unlock()
		}
		// Aborting a session that already ended is not an error: the
		// outcome the caller wants holds.
		return encodeOK(opAbort, nil), nil
	case opRead:
		return s.read(ctx, r)
	case opStat:
		d, err := s.drive(r.Drive)
		if err != nil {
			return nil, err
		}
		rd, err := d.OpenShard(ctx, r.Name)
		if err != nil {
			return nil, err
		}
		size := rd.Size()
		rd.Close()
		return encodeOK(opStat, &response{Size: size}), nil
	case opRemove:
		d, err := s.drive(r.Drive)
		if err != nil {
			return nil, err
		}
		if err := d.Remove(ctx, r.Name); err != nil {
			return nil, err
		}
		return encodeOK(opRemove, nil), nil
	case opDrives:
		if len(s.order) > maxDrives {
			return nil, fail(statusIO, "%d drives exceed the %d a response can carry", len(s.order), maxDrives)
		}
		st := make([]store.Stats, len(s.order))
		for i, d := range s.order {
			st[i] = d.Stats()
		}
		return encodeOK(opDrives, &response{Drives: st}), nil
	}
	return nil, fail(statusBadRequest, "unknown op %d", r.Op)
}

func (s *Server) drive(id string) (*store.Drive, error) {
	d, ok := s.drives[id]
	if !ok {
		return nil, fail(statusDriveFailed, "no drive %q on this node: %w", id, store.ErrDriveFailed)
	}
	return d, nil
}

func (s *Server) create(ctx context.Context, from string, r *request) ([]byte, error) {
	d, err := s.drive(r.Drive)
	if err != nil {
		return nil, err
	}
	// Reserve the slot first so that a burst of creates cannot overshoot
	// MaxSessions while files are being opened.
	ss := &session{from: from, drive: r.Drive, name: r.Name, lastUsed: time.Now()}
	s.mu.Lock()
	switch {
	case s.mu.closed:
		s.mu.Unlock()
		return nil, fail(statusBusy, "server closed")
	case len(s.mu.sessions) >= s.cfg.MaxSessions:
		s.mu.Unlock()
		return nil, fail(statusBusy, "%d write sessions open, the most allowed", s.cfg.MaxSessions)
	}
	for ss.id == 0 || s.mu.sessions[ss.id] != nil {
		ss.id = newSessionID()
	}
	s.mu.sessions[ss.id] = ss
	ss.timer = time.AfterFunc(s.cfg.SessionTimeout, func() { s.expire(ss) })
	ss.mu.Lock() // no call may use the session before its writer exists
	s.mu.Unlock()

	w, err := d.Create(ctx, r.Name)
	if err != nil {
		ss.mu.Unlock()
		s.take(from, ss.id)
		return nil, err
	}
	ss.w = w
	ss.mu.Unlock()
	return encodeOK(opCreate, &response{Session: ss.id}), nil
}

// newSessionID draws a random ID, so that IDs are not reused across
// restarts of this node: a writer that outlived a restart gets
// statusUnknownSession, never someone else's file.
func newSessionID() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return binary.LittleEndian.Uint64(b[:])
}

// take removes and returns the session id of node from, or nil.
func (s *Server) take(from string, id uint64) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.mu.sessions[id]
	if ss == nil || ss.from != from {
		return nil
	}
	delete(s.mu.sessions, id)
	ss.timer.Stop()
	return ss
}

func (s *Server) lookup(from string, id uint64) (*session, error) {
	s.mu.Lock()
	ss := s.mu.sessions[id]
	s.mu.Unlock()
	// Sessions are private to the node that opened them.
	if ss == nil || ss.from != from {
		return nil, fail(statusUnknownSession, "no write session %x for node %s (ended, expired, or this node restarted)", id, from)
	}
	return ss, nil
}

func (s *Server) appendData(ctx context.Context, from string, r *request) ([]byte, error) {
	if len(r.Data) > s.cfg.MaxData {
		return nil, fail(statusTooLarge, "append of %d bytes exceeds %d", len(r.Data), s.cfg.MaxData)
	}
	ss, err := s.lookup(from, r.Session)
	if err != nil {
		return nil, err
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.w == nil {
		return nil, fail(statusUnknownSession, "write session %x has ended", r.Session)
	}
	ss.lastUsed = time.Now()
	// The offset catches a lost or repeated append (a retried call): the
	// shard would be silently wrong otherwise.
	if r.Off != ss.off {
		err := fail(statusBadRequest, "append at offset %d, session %x is at %d", r.Off, r.Session, ss.off)
		s.endLocked(ss)
		return nil, err
	}
	if _, err := ss.w.Write(r.Data); err != nil {
		s.endLocked(ss)
		return nil, err
	}
	ss.off += int64(len(r.Data))
	if r.Op == opAppend {
		return encodeOK(opAppend, nil), nil
	}
	err = ss.w.Commit(ctx)
	ss.w = nil
	s.take(from, ss.id)
	if err != nil {
		return nil, err
	}
	return encodeOK(opCommit, nil), nil
}

// endLocked aborts a failed session and forgets it: its writer's error is
// sticky, so keeping it would only hold a file open.
func (s *Server) endLocked(ss *session) {
	ss.abortLocked()
	s.take(ss.from, ss.id)
}

func (ss *session) abortLocked() {
	if ss.w != nil {
		ss.w.Abort()
		ss.w = nil
	}
}

// expire runs when a session's timer fires; a session used since is given
// the rest of its timeout instead.
func (s *Server) expire(ss *session) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.w == nil {
		return
	}
	if idle := time.Since(ss.lastUsed); idle < s.cfg.SessionTimeout {
		ss.timer.Reset(s.cfg.SessionTimeout - idle)
		return
	}
	s.log.Warn("write session expired; shard discarded", "session", fmt.Sprintf("%x", ss.id),
		"from", ss.from, "drive", ss.drive, "shard", ss.name.String(), "bytes", ss.off)
	s.endLocked(ss)
}

func (s *Server) read(ctx context.Context, r *request) ([]byte, error) {
	if r.Len > int64(s.cfg.MaxData) {
		return nil, fail(statusTooLarge, "read of %d bytes exceeds %d", r.Len, s.cfg.MaxData)
	}
	d, err := s.drive(r.Drive)
	if err != nil {
		return nil, err
	}
	// Opened per call, not cached: opening costs about 10 µs
	// (BenchmarkRead4KiB/local-open-per-read against local), small beside
	// a network round trip, and a cached reader would keep serving a
	// removed or replaced shard.
	rd, err := d.OpenShard(ctx, r.Name)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	size := rd.Size()
	n := int64(0)
	if r.Off < size {
		n = min(r.Len, size-r.Off)
	}
	hdr := binary.AppendUvarint([]byte{wireVersion, byte(statusOK)}, uint64(size))
	out := make([]byte, len(hdr)+int(n))
	copy(out, hdr)
	if n > 0 {
		got, err := rd.ReadAt(out[len(hdr):], r.Off)
		if err != nil && !(errors.Is(err, io.EOF) && int64(got) == n) {
			return nil, err
		}
	}
	return out, nil
}
