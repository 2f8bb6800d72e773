package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// conn is one admitted connection, used by both sides for their calls.
// A reader goroutine dispatches responses to waiting calls and requests to
// handler goroutines; a writer goroutine drains the send queue, flushing
// when it runs empty so bursts of small frames share a TLS record.
type conn struct {
	n    *Net
	tc   *tls.Conn
	peer NodeID
	addr string // address dialed; empty for inbound connections
	// messages: the peer takes one-way message frames (it negotiated
	// "redoubt/2"); otherwise Send goes as an unanswered request.
	messages bool

	out    chan *outFrame
	done   chan struct{} // closed by close
	ctx    context.Context
	cancel context.CancelFunc
	sem    chan struct{} // bounds running handlers
	nextID atomic.Uint64

	closeOnce sync.Once
	err       error // why it closed; set before done is closed

	mu struct {
		sync.Mutex
		pending map[uint64]chan frame         // our calls awaiting an answer
		serving map[uint64]context.CancelFunc // peer's calls being handled
	}
}

type outFrame struct {
	frame
	abandoned atomic.Bool // the call gave up before the frame was written
}

func newConn(n *Net, tc *tls.Conn, peer NodeID, addr string) *conn {
	c := &conn{
		n:        n,
		tc:       tc,
		peer:     peer,
		addr:     addr,
		messages: tc.ConnectionState().NegotiatedProtocol == alpnMessages,
		out:      make(chan *outFrame, 256),
		done:     make(chan struct{}),
		sem:      make(chan struct{}, n.cfg.MaxInflight),
	}
	c.ctx, c.cancel = context.WithCancel(n.ctx)
	c.mu.pending = map[uint64]chan frame{}
	c.mu.serving = map[uint64]context.CancelFunc{}
	return c
}

func (c *conn) isClosed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// close shuts the connection once; calls waiting on it fail.
func (c *conn) close(why error) {
	c.closeOnce.Do(func() {
		c.err = why
		close(c.done)
		// The socket goes before the handlers' contexts, so a handler
		// that returns because it was cancelled cannot get its answer out:
		// its caller sees the connection lost, which is the truth.
		c.tc.Close()
		c.cancel()
		c.n.unregister(c)
		if !errors.Is(why, ErrClosed) {
			c.n.log.Debug("transport: connection closed", "peer", c.peer, "err", why)
		}
	})
}

// call sends one request and waits. sent reports whether the request
// reached the send queue, i.e. whether the peer might have seen it.
func (c *conn) call(ctx context.Context, to Peer, service string, req []byte) (resp []byte, sent bool, err error) {
	id := c.nextID.Add(1)
	ch := make(chan frame, 1)
	c.mu.Lock()
	if c.isClosed() {
		c.mu.Unlock()
		return nil, false, fmt.Errorf("%w: %s: connection closed: %w", ErrUnreachable, c.peer, c.err)
	}
	c.mu.pending[id] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.mu.pending, id)
		c.mu.Unlock()
	}
	f := &outFrame{frame: frame{kind: kindRequest, id: id, budget: budget(ctx), service: service, body: req}}
	select {
	case c.out <- f:
	case <-c.done:
		forget()
		return nil, false, fmt.Errorf("%w: %s: connection closed: %w", ErrUnreachable, c.peer, c.err)
	case <-ctx.Done():
		forget()
		return nil, false, ctxErr(ctx, to)
	}
	c.n.sent.Add(1)
	select {
	case r := <-ch:
		return c.answer(service, r)
	case <-c.done:
		select {
		case r := <-ch: // answered just before the connection went
			return c.answer(service, r)
		default:
		}
		return nil, true, fmt.Errorf("%w: %s: connection lost during call: %w", ErrUnreachable, c.peer, c.err)
	case <-ctx.Done():
		forget()
		f.abandoned.Store(true)
		// Tell the peer to stop the handler; dropped if the queue is full,
		// since the handler's own timeout bounds it anyway.
		select {
		case c.out <- &outFrame{frame: frame{kind: kindCancel, id: id}}:
		default:
		}
		return nil, true, ctxErr(ctx, to)
	}
}

// send queues one message for the peer. It fails only if the message
// certainly did not leave: the connection closed or ctx ended first.
//
// To a peer of an older release, which knows no message frames, it goes as
// a request whose answer nobody waits for (the reader drops it): handled
// alike, but not in order.
func (c *conn) send(ctx context.Context, to Peer, service string, msg []byte) error {
	f := &outFrame{frame: frame{kind: kindMessage, service: service, body: msg}}
	if !c.messages {
		f.kind, f.id = kindRequest, c.nextID.Add(1)
	}
	select {
	case c.out <- f:
		c.n.messages.Add(1)
		return nil
	case <-c.done:
		return fmt.Errorf("%w: %s: connection closed: %w", ErrUnreachable, c.peer, c.err)
	case <-ctx.Done():
		return ctxErr(ctx, to)
	}
}

// budget is the request's remaining time in whole milliseconds, rounded
// up so a short deadline does not read as "no limit".
func budget(ctx context.Context) uint32 {
	d, ok := ctx.Deadline()
	if !ok {
		return 0
	}
	ms := (time.Until(d) + time.Millisecond - 1) / time.Millisecond
	return uint32(max(1, min(ms, 1<<32-1)))
}

func (c *conn) answer(service string, r frame) ([]byte, bool, error) {
	if r.kind == kindResponse {
		return r.body, true, nil
	}
	e := &RemoteError{From: c.peer, Service: service, code: codeHandler}
	if len(r.body) > 0 {
		e.code = r.body[0]
		e.Message = string(r.body[1:])
	}
	return nil, true, e
}

func (c *conn) readLoop() {
	defer c.n.wg.Done()
	br := bufio.NewReaderSize(c.tc, 64<<10)
	for {
		f, err := readFrame(br, c.n.cfg.MaxMessage)
		if err != nil {
			if errors.Is(err, errFrame) {
				c.n.log.Warn("transport: protocol error, closing connection", "peer", c.peer, "err", err)
			}
			c.close(err)
			return
		}
		switch f.kind {
		case kindResponse, kindError:
			c.mu.Lock()
			ch := c.mu.pending[f.id]
			delete(c.mu.pending, f.id)
			c.mu.Unlock()
			if ch != nil {
				ch <- f
			}
		case kindCancel:
			c.mu.Lock()
			cancel := c.mu.serving[f.id]
			c.mu.Unlock()
			if cancel != nil {
				cancel()
			}
		case kindRequest:
			select {
			case c.sem <- struct{}{}:
			case <-c.done:
				return
			}
			limit := c.n.cfg.CallTimeout
			if f.budget > 0 {
				limit = min(limit, time.Duration(f.budget)*time.Millisecond)
			}
			ctx, cancel := context.WithTimeout(c.ctx, limit)
			c.mu.Lock()
			c.mu.serving[f.id] = cancel
			c.mu.Unlock()
			c.n.wg.Add(1)
			go c.serve(ctx, cancel, f)
		case kindMessage:
			if !c.messages {
				// What a node of an older release does too.
				c.n.log.Warn("transport: protocol error, closing connection", "peer", c.peer, "err", "message frame on a connection that did not negotiate them")
				c.close(fmt.Errorf("%w: message frame without %s", errFrame, alpnMessages))
				return
			}
			// In the read loop, so a peer's messages are handled in the
			// order it sent them; their handlers must be quick.
			c.deliver(f)
		}
	}
}

// deliver runs the handler of a one-way message. Nobody waits for it, so
// an error or a panic is only logged.
func (c *conn) deliver(f frame) {
	v, ok := c.n.handlers.Load(f.service)
	if !ok {
		c.n.log.Debug("transport: message for an unknown service", "service", f.service, "peer", c.peer)
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.n.cfg.CallTimeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			c.n.log.Error("transport: handler panicked", "service", f.service, "peer", c.peer, "panic", p, "stack", string(debug.Stack()))
		}
	}()
	c.n.served.Add(1)
	if _, err := v.(Handler)(ctx, c.peer, f.body); err != nil {
		c.n.log.Debug("transport: message handler failed", "service", f.service, "peer", c.peer, "err", err)
	}
}

func (c *conn) serve(ctx context.Context, cancel context.CancelFunc, f frame) {
	defer c.n.wg.Done()
	defer func() { <-c.sem }()
	defer func() {
		c.mu.Lock()
		delete(c.mu.serving, f.id)
		c.mu.Unlock()
		cancel()
	}()
	c.n.served.Add(1)
	resp := c.run(ctx, f)
	resp.id = f.id
	select {
	case c.out <- &outFrame{frame: resp}:
	case <-c.done:
	}
}

// run calls the handler and turns its outcome into a reply frame. A panic
// is a bug in the handler; it is logged with its stack and answered as an
// internal error instead of taking the whole node down.
func (c *conn) run(ctx context.Context, f frame) (reply frame) {
	v, ok := c.n.handlers.Load(f.service)
	if !ok {
		return errorFrame(codeUnknownService, fmt.Sprintf("no handler for service %q", f.service))
	}
	defer func() {
		if p := recover(); p != nil {
			c.n.log.Error("transport: handler panicked", "service", f.service, "peer", c.peer, "panic", p, "stack", string(debug.Stack()))
			reply = errorFrame(codeInternal, "internal error in handler")
		}
	}()
	resp, err := v.(Handler)(ctx, c.peer, f.body)
	switch {
	case err != nil:
		return errorFrame(codeHandler, err.Error())
	case len(resp) > c.n.cfg.MaxMessage:
		return errorFrame(codeTooLarge, fmt.Sprintf("response of %d bytes, limit %d", len(resp), c.n.cfg.MaxMessage))
	}
	return frame{kind: kindResponse, body: resp}
}

func errorFrame(code byte, msg string) frame {
	return frame{kind: kindError, body: append([]byte{code}, msg...)}
}

func (c *conn) writeLoop() {
	defer c.n.wg.Done()
	bw := bufio.NewWriterSize(c.tc, 64<<10)
	for {
		var f *outFrame
		select {
		case f = <-c.out:
		case <-c.done:
			return
		}
		if f.abandoned.Load() {
			continue
		}
		// A peer that stops reading must not hold the writer forever.
		c.tc.SetWriteDeadline(time.Now().Add(c.n.cfg.CallTimeout))
		err := writeFrame(bw, &f.frame)
		if err == nil && len(c.out) == 0 {
			err = bw.Flush()
		}
		if err != nil {
			c.close(fmt.Errorf("write: %w", err))
			return
		}
	}
}
