package membership

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	ok := testConfig("n1", goodSecret, ProfileLAN)
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	def := DefaultConfig()
	def.NodeID, def.Secret = "n1", goodSecret
	if err := def.Validate(); err != nil {
		t.Fatalf("DefaultConfig with ID and secret: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
	}{
		{"no id", func(c *Config) { c.NodeID = "" }},
		{"no secret", func(c *Config) { c.Secret = nil }},
		{"short secret", func(c *Config) { c.Secret = []byte("short") }},
		{"bind without port", func(c *Config) { c.BindAddr = "127.0.0.1" }},
		{"bind hostname", func(c *Config) { c.BindAddr = "localhost:0" }},
		{"advertise port 0", func(c *Config) { c.AdvertiseAddr = "127.0.0.1:0" }},
		{"unknown profile", func(c *Config) { c.Profile = "wan" }},
		{"timeout above interval", func(c *Config) { c.ProbeTimeout = time.Second; c.ProbeInterval = 500 * time.Millisecond }},
		{"negative suspicion", func(c *Config) { c.SuspicionMult = -1 }},
	} {
		c := ok
		tc.edit(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: err %v, want ErrInvalidConfig", tc.name, err)
		}
	}
}

func TestGossipKey(t *testing.T) {
	a, err := gossipKey(goodSecret)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := gossipKey(goodSecret)
	c, _ := gossipKey(wrongSecret)
	if len(a) != 32 {
		t.Fatalf("key has %d bytes, want 32 (AES-256)", len(a))
	}
	if !bytes.Equal(a, b) {
		t.Fatal("derivation is not deterministic")
	}
	if bytes.Equal(a, c) || bytes.Equal(a, goodSecret[:32]) {
		t.Fatal("key does not depend on the secret, or is the secret itself")
	}
}

func TestLogWriterLevels(t *testing.T) {
	var buf bytes.Buffer
	w := logWriter{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for _, line := range []string{
		"[DEBUG] memberlist: Stream connection from=1",
		"[WARN] memberlist: Refuting a dead message",
		"[ERR] memberlist: Decrypt packet failed",
		"no prefix at all",
	} {
		w.Write([]byte(line + "\n"))
	}
	out := buf.String()
	for _, want := range []string{
		`level=DEBUG msg="Stream connection from=1"`,
		`level=WARN msg="Refuting a dead message"`,
		`level=ERROR msg="Decrypt packet failed"`,
		`level=INFO msg="no prefix at all"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}
