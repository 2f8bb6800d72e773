package transport

import (
	"errors"
	"fmt"
)

// Sentinel errors, tested with errors.Is.
var (
	// ErrUnreachable: Call, Hello: the peer could not be dialed, the
	// connection broke, or no answer came in time. Retrying later may help.
	ErrUnreachable = errors.New("transport: peer unreachable")
	// ErrRefused: Call, Hello: admission failed. Either the peer refused
	// this node's proof of the cluster secret, or the peer could not prove
	// it knows the secret. Retrying will not help until secrets agree.
	ErrRefused = errors.New("transport: admission refused")
	// ErrPinning: Call, Hello: the peer's key does not hash to the NodeID the
	// caller expected.
	ErrPinning = errors.New("transport: peer key does not match expected node id")
	// ErrUnknownService: wrapped by the *RemoteError a Call gets when the
	// peer has no handler for the service.
	ErrUnknownService = errors.New("transport: unknown service")
	// ErrMessageTooLarge: Call: the request exceeds Config.MaxMessage (a
	// response that does, comes back as a *RemoteError wrapping it).
	ErrMessageTooLarge = errors.New("transport: message too large")
	// ErrNotSent: Call: wrapped (beside ErrUnreachable, ErrRefused or
	// ErrPinning) when the request certainly never reached the peer: no
	// connection could be made or admitted, or it was found closed before
	// the request went out. Without it a failed Call may or may not have
	// run the handler, so only a Call failing with ErrNotSent is safe to
	// send again elsewhere when the request is not idempotent.
	ErrNotSent = errors.New("transport: request not sent")
	// ErrClosed: Call, Hello, Listen-side methods after Close.
	ErrClosed = errors.New("transport: closed")
	// ErrIdentity: LoadOrCreateIdentity: the identity file exists but is
	// corrupt, foreign, of an unknown format or too widely readable. It is
	// never replaced silently: an operator must look.
	ErrIdentity = errors.New("transport: bad identity file")
)

// RemoteError is a handler's error as the caller sees it: the peer was
// reached and answered, but with an error. Only its message crosses the
// wire, so errors.Is against the handler's own sentinels does not work;
// errors.Is(err, ErrUnknownService) and ErrMessageTooLarge do.
type RemoteError struct {
	From    NodeID
	Service string
	Message string
	code    byte
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("transport: %s on %s: %s", e.Service, e.From, e.Message)
}

// Is makes the few transport-level remote failures testable.
func (e *RemoteError) Is(target error) bool {
	switch e.code {
	case codeUnknownService:
		return target == ErrUnknownService
	case codeTooLarge:
		return target == ErrMessageTooLarge
	}
	return false
}

// Codes carried in an error frame's first body byte.
const (
	codeHandler        byte = 0
	codeUnknownService byte = 1
	codeTooLarge       byte = 2
	codeInternal       byte = 3
)
