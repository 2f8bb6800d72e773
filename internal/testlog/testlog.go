// Package testlog sends a component's log lines to its test's log, so that
// they show with the test that produced them (and only when it fails or
// runs verbosely). It is for tests only.
package testlog

import (
	"bytes"
	"io"
	"testing"
)

// Writer returns a writer that logs each line written to it with t.Log; a
// slog text handler over it gives a test's logger.
func Writer(t testing.TB) io.Writer { return writer{t} }

type writer struct{ t testing.TB }

func (w writer) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}
