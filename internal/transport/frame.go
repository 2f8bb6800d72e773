package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Wire format, after TLS and admission, in both directions:
//
//	version u8 | kind u8 | id u64 | budget u32 | service length u8 | body length u32 | service | body
//
// All integers big-endian. budget, on requests only, is how many
// milliseconds the caller will still wait (0: no limit of its own), so a
// handler stops working for a caller that is gone. Request IDs are chosen by the side that sends
// the request; the reply carries the same ID. Since requests and replies
// have distinct kinds, the two directions' ID spaces never collide.
const (
	frameVersion = 1
	headerLen    = 19
	maxService   = 255
)

type kind byte

const (
	kindRequest  kind = 1 // service, body = request
	kindResponse kind = 2 // body = response
	kindError    kind = 3 // body = code byte, message
	kindCancel   kind = 4 // the caller gave up; no body
	kindMessage  kind = 5 // service, body = message; one way, never answered
)

type frame struct {
	kind    kind
	id      uint64
	budget  uint32 // milliseconds; requests only
	service string
	body    []byte
}

var errFrame = errors.New("transport: bad frame")

func (f *frame) header() [headerLen]byte {
	var h [headerLen]byte
	h[0] = frameVersion
	h[1] = byte(f.kind)
	binary.BigEndian.PutUint64(h[2:], f.id)
	binary.BigEndian.PutUint32(h[10:], f.budget)
	h[14] = byte(len(f.service))
	binary.BigEndian.PutUint32(h[15:], uint32(len(f.body)))
	return h
}

// writeFrame writes f; the caller checked the service and body lengths.
func writeFrame(w io.Writer, f *frame) error {
	h := f.header()
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	if _, err := io.WriteString(w, f.service); err != nil {
		return err
	}
	_, err := w.Write(f.body)
	return err
}

// readChunk is how much of a body is allocated ahead of its bytes: a
// peer announcing a huge frame must send it to make us hold it.
const readChunk = 1 << 20

// readFrame reads one frame whose body is at most maxBody bytes. An error
// wrapping errFrame means the peer speaks something else; any other error
// is the reader's.
func readFrame(r io.Reader, maxBody int) (frame, error) {
	var h [headerLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return frame{}, err
	}
	if h[0] != frameVersion {
		return frame{}, fmt.Errorf("%w: version %d, want %d", errFrame, h[0], frameVersion)
	}
	f := frame{kind: kind(h[1]), id: binary.BigEndian.Uint64(h[2:]), budget: binary.BigEndian.Uint32(h[10:])}
	svcLen := int(h[14])
	n := binary.BigEndian.Uint32(h[15:])
	switch f.kind {
	case kindRequest:
		if svcLen == 0 {
			return frame{}, fmt.Errorf("%w: request without service", errFrame)
		}
	case kindMessage:
		if svcLen == 0 || f.budget != 0 {
			return frame{}, fmt.Errorf("%w: message without service, or with a budget", errFrame)
		}
	case kindResponse, kindError, kindCancel:
		if svcLen != 0 || f.budget != 0 {
			return frame{}, fmt.Errorf("%w: kind %d with service or budget", errFrame, f.kind)
		}
		if f.kind == kindCancel && n != 0 {
			return frame{}, fmt.Errorf("%w: cancel with body", errFrame)
		}
	default:
		return frame{}, fmt.Errorf("%w: kind %d", errFrame, f.kind)
	}
	if uint64(n) > uint64(maxBody) {
		return frame{}, fmt.Errorf("%w: body of %d bytes exceeds %d", errFrame, n, maxBody)
	}
	if svcLen > 0 {
		svc := make([]byte, svcLen)
		if _, err := io.ReadFull(r, svc); err != nil {
			return frame{}, unexpected(err)
		}
		f.service = string(svc)
	}
	body := make([]byte, 0, min(int(n), readChunk))
	for len(body) < int(n) {
		if len(body) == cap(body) {
			body = slices.Grow(body, min(int(n)-len(body), cap(body)))
		}
		m, err := io.ReadFull(r, body[len(body):min(int(n), cap(body))])
		body = body[:len(body)+m]
		if err != nil {
			return frame{}, unexpected(err)
		}
	}
	f.body = body
	return f, nil
}

// unexpected turns an EOF inside a frame into ErrUnexpectedEOF.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
