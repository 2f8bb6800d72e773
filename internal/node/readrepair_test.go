package node

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/objects"
	"github.com/redoubt-io/redoubt/internal/store"
)

// A GET that meets a corrupt shard answers the right bytes, and the shard
// is rebuilt at once, without waiting for a scrub.
func TestReadRepairsWhatAReadFound(t *testing.T) {
	n, serve := startUpkeepNode(t, 4, func(c *Config) { c.Scrub.Interval = 0 })
	putObject(t, n, "readrepair", "obj", 300<<10) // EC 2+2: data shards .0 and .1
	var victim string
	for _, f := range shardFiles(t, n) {
		if strings.HasSuffix(f, ".0") {
			victim = f
		}
	}
	if victim == "" {
		t.Fatal("no first data shard on disk")
	}
	orig, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(orig)
	bad[store.HeaderSize+100] ^= 0x01
	if err := os.WriteFile(victim, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	serve()

	_, body, err := n.objects.GetObject(t.Context(), "readrepair", "obj", objects.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(body)
	body.Close()
	if err != nil || !bytes.Equal(got, payload(300<<10, 300<<10)) {
		t.Fatalf("read through a corrupt shard: %d bytes, %v", len(got), err)
	}
	if !pollUntil(10*time.Second, func() bool {
		b, err := os.ReadFile(victim)
		return err == nil && bytes.Equal(b, orig)
	}) {
		t.Fatal("the corrupt shard was not rebuilt after the read")
	}
	if !pollUntil(5*time.Second, func() bool { return n.Status(t.Context()).Repair.ReadRepairShards >= 1 }) {
		t.Errorf("status does not count the read repair: %+v", n.Status(t.Context()).Repair)
	}
}
