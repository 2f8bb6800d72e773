package s3api

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// errRequestTimeout is S3's answer to a body that stopped arriving.
var errRequestTimeout = apiErr("RequestTimeout", 400,
	"Your socket connection to the server was not read from or written to within the timeout period. Idle connections will be closed.")

// idleBody ends a request body that sends nothing for timeout. Before
// each read of the connection it moves the connection's read deadline to
// timeout from now, so a body that keeps sending, however slowly, is never
// cut, while one that stalls fails its read with errRequestTimeout. The
// deadline stays in the past after that, so the HTTP server's own attempt
// to drain the rest fails at once and it closes the connection instead of
// waiting for a client that has gone quiet.
//
// Once the body reaches EOF the HTTP server clears the deadline itself
// (it starts its background read of the idle connection), so the next
// request on a kept-alive connection starts without one.
type idleBody struct {
	r       io.ReadCloser
	ctl     *http.ResponseController
	timeout time.Duration
	now     func() time.Time
	// noDeadline is set when the connection does not support deadlines;
	// the body is then read without a timeout.
	noDeadline bool
	timedOut   bool
}

func (b *idleBody) Read(p []byte) (int, error) {
	if b.timedOut {
		return 0, errRequestTimeout
	}
	if !b.noDeadline {
		if err := b.ctl.SetReadDeadline(b.now().Add(b.timeout)); err != nil {
			b.noDeadline = true
		}
	}
	n, err := b.r.Read(p)
	if err != nil && isTimeout(err) {
		b.timedOut = true
		return n, errRequestTimeout
	}
	return n, err
}

func (b *idleBody) Close() error { return b.r.Close() }

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// watchBody puts an idleBody in front of r's body when the configuration
// asks for one and there is a body; it returns nil otherwise.
func (s *Server) watchBody(w http.ResponseWriter, r *http.Request) *idleBody {
	if s.cfg.BodyIdleTimeout <= 0 || r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil
	}
	b := &idleBody{r: r.Body, ctl: http.NewResponseController(w), timeout: s.cfg.BodyIdleTimeout, now: time.Now}
	r.Body = b
	return b
}
