package meta

import (
	"context"
	"fmt"
	"testing"
)

// An operator's /metrics shows the engine of every replica, and nothing
// once the store is closed.
func TestEngineStatsSumReplicas(t *testing.T) {
	l := newTestLocal(t, t.TempDir(), t.TempDir())
	ctx := context.Background()
	for i := range 200 {
		if _, err := l.Commit(ctx, 1, Txn{Puts: []KV{{Key: fmt.Appendf(nil, "k%03d", i), Value: []byte("v")}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Get(ctx, 1, fmt.Appendf(nil, "k%03d", i)); err != nil {
			t.Fatal(err)
		}
	}
	s := l.EngineStats()
	if s.Databases != 2 || s.ReadAmp < 0 || s.WriteStalls != 0 {
		t.Errorf("two replicas: %+v", s)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if s := l.EngineStats(); s.Databases != 0 {
		t.Errorf("after close: %+v", s)
	}
}
