package raftmeta

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/meta"
	"go.etcd.io/raft/v3/raftpb"
)

// A snapshot larger than the Sender carries is streamed in chunks
// outside the message path, and the follower that needed it catches up:
// it holds every key, nothing was refused, and the leader counts the
// snapshot sent. Group 1 meanwhile goes on with the returning node in it.
func TestSnapshotLargerThanABatchIsStreamed(t *testing.T) {
	c := newCluster(t, 3, []meta.Partition{0, 1}, func(cfg *Config) {
		fastConfig(cfg)
		cfg.SnapshotEntries = 8
		cfg.MaxMessage = 4 << 10
		cfg.MaxBatch = 64 << 10
	})
	l := c.leader(0)
	down := l%3 + 1
	c.converged(0)
	c.converged(1)
	c.stop(down)
	// 100 KiB in group 0, more than a batch may carry; its log is
	// compacted on every live node, so the returning node needs a
	// snapshot of it.
	big := strings.Repeat("x", 1000)
	var want []string
	for i := range 100 {
		k := fmt.Sprintf("big%04d", i)
		if _, err := c.host(c.leader(0)).Commit(context.Background(), 0, meta.Txn{Puts: []meta.KV{{Key: []byte(k), Value: []byte(big)}}}); err != nil {
			t.Fatal(err)
		}
		want = append(want, k)
	}
	eventually(t, 10*time.Second, "logs compacted", func() error {
		for _, id := range c.ids {
			if id == down {
				continue
			}
			if s := c.host(id).Groups()[0].LogStart; s < 50 {
				return fmt.Errorf("node %d's log of group 0 starts at %d", id, s)
			}
		}
		return nil
	})
	c.start(down)
	acked := commitKeys(t, c.host(c.leader(1)), 1, "small", 5)
	got := c.converged(1)
	for _, k := range acked {
		if _, ok := got[k]; !ok {
			t.Fatalf("group 1 lacks %s", k)
		}
	}
	eventually(t, 20*time.Second, "the returning node caught up", func() error {
		d, err := dump(c.host(down), 0)
		if err != nil {
			return err
		}
		for _, k := range want {
			if !strings.HasPrefix(d[k], big+"@") {
				return fmt.Errorf("node %d lacks %s", down, k)
			}
		}
		return nil
	})
	var sent, installed, refused uint64
	for _, id := range c.ids {
		st := c.host(id).Stats()
		sent += st.SnapshotsSent
		installed += st.SnapshotsInstalled
		refused += st.Refused
	}
	if sent == 0 || installed == 0 || refused != 0 {
		t.Fatalf("snapshots sent %d, installed %d, messages refused %d; want sent and installed, none refused", sent, installed, refused)
	}
}

// TestGigabyteSnapshot: a follower that missed a gibibyte of a group's
// items, written while it was down and then compacted out of the log,
// catches up by one streamed snapshot. It then holds every item, and
// the hosts' heap stays far below the snapshot's size throughout: no
// one holds the snapshot in memory, which a single message would.
func TestGigabyteSnapshot(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 1 GiB through Raft on two nodes, then streams it to a third")
	}
	const (
		valueSize = 120 << 10
		perTxn    = 8
		total     = 1<<30 + 64<<20 // a little over 1 GiB of values
	)
	c := newCluster(t, 3, []meta.Partition{0}, func(cfg *Config) {
		fastConfig(cfg)
		cfg.ProposalTimeout = 20 * time.Second
		cfg.SnapshotEntries = 64
		cfg.MaxBatch = 64 << 20 // the transport's limit
	})
	l := c.leader(0)
	down := l%3 + 1
	c.stop(down)

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	value := func(i int) []byte {
		b := make([]byte, valueSize)
		_, _ = rand.NewChaCha8([32]byte{byte(i), byte(i >> 8), byte(i >> 16), byte(seed)}).Read(b)
		return b
	}
	n := total / valueSize
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Go(func() {
			for first := w * perTxn; first < n; first += 4 * perTxn {
				var txn meta.Txn
				for i := first; i < min(first+perTxn, n); i++ {
					txn.Puts = append(txn.Puts, meta.KV{Key: fmt.Appendf(nil, "item%06d", i), Value: value(i)})
				}
				if _, err := c.host(c.leader(0, l, l%3+1, (l+1)%3+1)).Commit(context.Background(), 0, txn); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d items of %d KiB written in %v", n, valueSize>>10, time.Since(start).Round(time.Millisecond))
	eventually(t, 60*time.Second, "logs compacted", func() error {
		for _, id := range c.ids {
			if id == down {
				continue
			}
			if s := c.host(id).Groups()[0].LogStart; s < 100 {
				return fmt.Errorf("node %d's log of group 0 starts at %d", id, s)
			}
		}
		return nil
	})

	// The heap, sampled while the follower catches up.
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	start = time.Now()
	c.start(down)
	eventually(t, 5*time.Minute, "the follower installed the snapshot", func() error {
		if st := c.host(down).Stats(); st.SnapshotsInstalled == 0 {
			return fmt.Errorf("no snapshot installed")
		}
		return nil
	})
	took := time.Since(start)
	close(stop)
	<-sampled
	var sent uint64
	for _, id := range c.ids {
		sent += c.host(id).Stats().SnapshotBytesSent
	}
	t.Logf("snapshot of %d MiB sent and installed in %v; heap peak %d MiB", sent>>20, took.Round(time.Millisecond), peak.Load()>>20)
	if sent < 1<<30 {
		t.Fatalf("the snapshot sent was %d bytes, want at least 1 GiB", sent)
	}
	if peak.Load() > 512<<20 {
		t.Errorf("heap peaked at %d MiB while a 1 GiB snapshot was sent: something holds it in memory", peak.Load()>>20)
	}
	// Every item, byte for byte.
	got := 0
	err := c.host(down).scanLocal(0, nil, nil, func(k []byte, it meta.Item) bool {
		var i int
		if _, err := fmt.Sscanf(string(k), "item%06d", &i); err != nil || !bytes.Equal(it.Value, value(i)) {
			t.Errorf("item %s differs from what was written", k)
			return false
		}
		got++
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if got != n {
		t.Fatalf("the follower holds %d items, want %d", got, n)
	}
}

// A stream that stops moving (its leader died mid-way, or its snapshot
// message never came) is dropped after snapStale, its staged file
// deleted; one that moves is kept.
func TestStaleStreamsAreDropped(t *testing.T) {
	c := newCluster(t, 1, []meta.Partition{0}, fastConfig)
	h := c.host(1)
	items := binary.AppendUvarint(nil, 1)
	items = appendBytes(items, []byte("k"))
	items = binary.AppendUvarint(items, 3)
	items = appendBytes(items, []byte("v"))
	first := func(id uint64) {
		t.Helper()
		c := chunk{node: 77, id: id, seq: 0, crc: crc32.Checksum(items, castagnoli), items: items}
		if resp := h.receiveChunk(9, &c); resp.status != stOK {
			t.Fatalf("first chunk refused: %s", resp.msg)
		}
	}
	first(1)
	staged := func() []string {
		names, err := h.fs.List(h.fs.PathJoin(h.cfg.Dir, stagingDir))
		if err != nil {
			t.Fatal(err)
		}
		return names
	}
	if len(staged()) != 1 {
		t.Fatalf("staged files %v, want one", staged())
	}
	stale := int(snapStale / h.cfg.TickInterval)
	for range stale - 1 {
		h.ageStreams()
	}
	first(2) // a second stream begins late
	h.ageStreams()
	h.ageStreams()
	h.streams.mu.Lock()
	_, old := h.streams.in[streamKey{77, 1}]
	_, young := h.streams.in[streamKey{77, 2}]
	h.streams.mu.Unlock()
	if old || !young {
		t.Fatalf("after %d ticks: stale stream kept %v, young stream kept %v", stale+1, old, young)
	}
	if len(staged()) != 1 {
		t.Fatalf("staged files %v, want the young stream's only", staged())
	}
}

// A snapshot message is admitted only with its stream staged whole, of
// its own group; one that carries its items inline (an older sender's)
// needs none.
func TestSnapshotMessageNeedsItsStream(t *testing.T) {
	c := newCluster(t, 1, []meta.Partition{0}, fastConfig)
	h := c.host(1)
	set := initialSet([]uint64{1, 2, 3})
	msg := func(id uint64) *raftpb.Message {
		return &raftpb.Message{Type: raftpb.MsgSnap.Enum(), Snapshot: &raftpb.Snapshot{
			Data: encodeStreamHeader(streamHeader{set: set, node: 77, id: id})}}
	}
	if h.admitSnapshot(9, msg(1)) {
		t.Fatal("a snapshot whose stream never came was admitted")
	}
	items := binary.AppendUvarint(nil, 1)
	items = appendBytes(items, []byte("k"))
	items = binary.AppendUvarint(items, 3)
	items = appendBytes(items, []byte("v"))
	c0 := chunk{node: 77, id: 1, crc: crc32.Checksum(items, castagnoli), items: items}
	if resp := h.receiveChunk(9, &c0); resp.status != stOK {
		t.Fatal(resp.msg)
	}
	if h.admitSnapshot(9, msg(1)) {
		t.Fatal("a snapshot whose stream is half staged was admitted")
	}
	c1 := chunk{node: 77, id: 1, seq: 1, last: true, total: 1, crc: crc32.Checksum([]byte{0}, castagnoli), items: []byte{0}}
	if resp := h.receiveChunk(9, &c1); resp.status != stOK {
		t.Fatal(resp.msg)
	}
	if h.admitSnapshot(8, msg(1)) {
		t.Fatal("a stream of group 9 was admitted for group 8")
	}
	if !h.admitSnapshot(9, msg(1)) {
		t.Fatal("a snapshot whose stream is staged whole was refused")
	}
	legacy := &raftpb.Message{Type: raftpb.MsgSnap.Enum(), Snapshot: &raftpb.Snapshot{
		Data: append(appendBytes([]byte{snapshotVersion}, appendReplicaSet(nil, set)), 0)}}
	if !h.admitSnapshot(9, legacy) {
		t.Fatal("a snapshot with its items inline was refused")
	}
}

// A host stages at most maxIncoming streams at once: the next is told
// to retry (its leader reports the snapshot failed and tries later).
func TestIncomingStreamsAreBounded(t *testing.T) {
	c := newCluster(t, 1, []meta.Partition{0}, fastConfig)
	h := c.host(1)
	items := binary.AppendUvarint(nil, 0)
	for id := range uint64(maxIncoming + 1) {
		ch := chunk{node: 77, id: id + 1, crc: crc32.Checksum(items, castagnoli), items: items}
		resp := h.receiveChunk(9, &ch)
		if want := id < maxIncoming; (resp.status == stOK) != want {
			t.Fatalf("stream %d: status %d (%s); admitted want %v", id+1, resp.status, resp.msg, want)
		}
		if id == maxIncoming && resp.status != stRetry {
			t.Fatalf("stream over the bound: status %d, want retry", resp.status)
		}
	}
}
