package meta

import (
	"log/slog"
	"testing"

	"github.com/redoubt-io/redoubt/internal/testlog"
)

// testLogger sends a component's logs to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testlog.Writer(t), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func newTestLocal(t testing.TB, dirs ...string) *Local {
	t.Helper()
	cfg := DefaultLocalConfig(dirs...)
	cfg.Logger = testLogger(t)
	l, err := OpenLocal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
