package meta

import (
	"fmt"
	"log/slog"
)

// PebbleLogger routes a Pebble database's log to l: its routine messages
// at Debug, its errors at Error. Its fatal errors panic rather than exit
// the process, so that a supervisor or a test sees them.
type PebbleLogger struct{ L *slog.Logger }

func (p PebbleLogger) Infof(f string, a ...any)  { p.L.Debug(fmt.Sprintf(f, a...)) }
func (p PebbleLogger) Errorf(f string, a ...any) { p.L.Error(fmt.Sprintf(f, a...)) }
func (p PebbleLogger) Fatalf(f string, a ...any) {
	m := fmt.Sprintf(f, a...)
	p.L.Error(m)
	panic(m)
}
