package raftmeta

import "testing"

// A host's engine figures come from its open database, and are empty once
// it is closed: a scrape racing a shutdown reads nothing rather than a
// closed database.
func TestEngineStatsOfAHost(t *testing.T) {
	cfg := DefaultConfig()
	cfg.NodeID = 1
	cfg.Dir = t.TempDir()
	cfg.Send = memSender{}
	cfg.Forward = memForwarder{}
	cfg.Logger = testLogger(t)
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s := h.EngineStats(); s.Databases != 1 || s.ReadAmp < 0 {
		t.Errorf("open host: %+v", s)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if s := h.EngineStats(); s.Databases != 0 {
		t.Errorf("closed host: %+v", s)
	}
}
