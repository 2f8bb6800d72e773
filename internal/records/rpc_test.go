package records

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/transport"
)

// TestSyncOverTheNetwork: Sync between two nodes' stores through the
// transport: cut apart it fails and changes nothing; healed, one Sync
// makes both hold every record, in both directions.
func TestSyncOverTheNetwork(t *testing.T) {
	mn := transport.NewMemNetwork()
	epA, epB := mn.Node("a"), mn.Node("b")
	a, b := memStore(t), memStore(t)
	Serve(epA, a, time.Now)
	Serve(epB, b, time.Now)
	put := func(s *Store, from, n int, node uint64) {
		var recs []Record
		for i := from; i < from+n; i++ {
			recs = append(recs, Record{Key: fmt.Appendf(nil, "k%d", i%40), Version: version(int64(i+1), node, "v")})
		}
		if _, err := s.Put(3, recs); err != nil {
			t.Fatal(err)
		}
	}
	put(a, 0, 100, 1)
	put(b, 50, 100, 2)
	mn.Disconnect("a", "b")
	toB := RemotePeer(t.Context(), epA, transport.Peer{ID: "b", Addr: epB.Addr()})
	rootA, rootB := a.Root(3), b.Root(3)
	if _, err := Sync(a, toB, 3); !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("Sync across a cut: %v, want ErrUnreachable", err)
	}
	if a.Root(3) != rootA || b.Root(3) != rootB {
		t.Fatal("a failed Sync changed a replica")
	}
	mn.Connect("a", "b")
	st, err := Sync(a, toB, 3)
	if err != nil {
		t.Fatal(err)
	}
	if st.Fetched != 100 || st.Sent != 100 || a.Root(3) != b.Root(3) {
		t.Fatalf("after Sync: %+v, roots equal %v", st, a.Root(3) == b.Root(3))
	}
	for i := range 40 {
		k := fmt.Appendf(nil, "k%d", i)
		sa, _ := a.Get(3, k)
		sb, _ := b.Get(3, k)
		if !sa.Equal(sb) || len(sa.IDs()) == 0 {
			t.Fatalf("%s: %v on a, %v on b", k, sa.IDs(), sb.IDs())
		}
	}
}

// FuzzAnswer: whatever a peer sends, the store answers with a value or
// an error, and a request that does not decode changes nothing.
func FuzzAnswer(f *testing.F) {
	f.Add(header(opRoot, 1))
	f.Add(appendLeaves(header(opLeaves, 1), []int{0, 7, 4095}))
	f.Add(appendRecords(header(opPut, 2), []Record{{Key: []byte("k"), Version: version(1, 1, "b")}, {Key: []byte("k"), Version: version(1, 1, ""), Removal: true}}))
	f.Add(append(header(opChildren, 0), 0, 1, 0))
	f.Add(append(header(opGet, 2), 'k'))
	f.Add(appendScan(header(opScan, 2), []byte("a"), nil, 10))
	f.Add(appendScan(header(opScan, 2), nil, []byte{0, 0xff}, 1000))
	s := memStore(f)
	f.Fuzz(func(t *testing.T, req []byte) {
		before := [3][16]byte{s.Root(0), s.Root(1), s.Root(2)}
		_, err := s.answer(req, time.Now)
		if err != nil && errors.Is(err, ErrInvalidRequest) {
			if after := [3][16]byte{s.Root(0), s.Root(1), s.Root(2)}; after != before {
				t.Fatalf("a refused request %x changed the store", req)
			}
		}
	})
}

// FuzzDecodeRecords: a records encoding that decodes encodes back to
// itself.
func FuzzDecodeRecords(f *testing.F) {
	f.Add(appendRecords(nil, []Record{{Key: []byte("k"), Version: version(1, 1, "b")}}))
	f.Add(appendRecords(nil, []Record{{Key: nil, Version: version(2, 3, ""), Removal: true}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := decodeRecords(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("error %v is not ErrInvalidRequest", err)
			}
			return
		}
		if got := appendRecords(nil, recs); string(got) != string(b) {
			t.Fatalf("%x decodes to records that encode as %x", b, got)
		}
	})
}

// TestClockAheadRefused: a node takes no version stamped more than
// MaxOffset ahead of its clock from another, and says why; one within
// the offset is taken. The writer then holds the only copy, and Write
// says so.
func TestClockAheadRefused(t *testing.T) {
	mn := transport.NewMemNetwork()
	epA, epB := mn.Node("a"), mn.Node("b")
	a, b := memStore(t), memStore(t)
	now := time.UnixMilli(1_000_000_000_000)
	Serve(epB, b, func() time.Time { return now })
	toB := RemotePeer(t.Context(), epA, transport.Peer{ID: "b", Addr: epB.Addr()})
	ahead := Record{Key: []byte("k"), Version: version(now.Add(MaxOffset+time.Millisecond).UnixMilli(), 1, "from the future")}
	if _, err := toB.Put(1, []Record{ahead}); !errors.Is(err, ErrClockAhead) {
		t.Fatalf("a version %v ahead: %v, want ErrClockAhead", MaxOffset+time.Millisecond, err)
	}
	if n, err := Write([]Replica{a, toB}, 1, []Record{ahead}, 2, time.Second); err != nil || n != 1 {
		t.Fatalf("write with the peer refusing: %d copies, %v; want 1", n, err)
	}
	within := Record{Key: []byte("k"), Version: version(now.Add(MaxOffset).UnixMilli(), 1, "just in time")}
	if n, err := toB.Put(1, []Record{within}); err != nil || n != 1 {
		t.Fatalf("a version MaxOffset ahead: %d, %v; want it taken", n, err)
	}
}

// TestReadLeavesOutVersionsAhead: a version stamped ahead of a node's
// clock by more than MaxOffset is neither merged into a read nor copied by
// Sync on that node, and a put that carries it keeps the others; once the
// clock passes it, both take it. Nothing is lost, only late.
func TestReadLeavesOutVersionsAhead(t *testing.T) {
	mn := transport.NewMemNetwork()
	epA, epB := mn.Node("a"), mn.Node("b")
	fast, slow := memStore(t), memStore(t)
	now := time.UnixMilli(1_000_000_000_000)
	clock := func() time.Time { return now }
	Serve(epB, slow, clock)
	slow.RefuseAhead(clock)
	Serve(epA, fast, time.Now)
	ahead := Record{Key: []byte("k"), Version: version(now.Add(2*time.Second).UnixMilli(), 1, "from the future")}
	inTime := Record{Key: []byte("k"), Version: version(now.UnixMilli(), 2, "now")}
	if _, err := fast.Put(1, []Record{ahead, inTime}); err != nil {
		t.Fatal(err)
	}
	fromSlow := RemotePeer(t.Context(), epB, transport.Peer{ID: "a", Addr: epA.Addr()})
	recs, _, err := Read([]Replica{slow, fromSlow}, 1, []byte("k"), time.Second, clock)
	if err != nil || len(recs) != 1 || recs[0].Version.ID != inTime.Version.ID {
		t.Fatalf("read on the slow node: %v %v; want the version in time alone", recs, err)
	}
	if _, err := Sync(slow, fromSlow, 1); !errors.Is(err, ErrClockAhead) {
		t.Fatalf("sync on the slow node: %v, want ErrClockAhead", err)
	}
	if st, _ := slow.Get(1, []byte("k")); len(st.IDs()) != 1 {
		t.Fatalf("slow node holds %v after the sync, want the version in time alone", st.IDs())
	}
	toSlow := RemotePeer(t.Context(), epA, transport.Peer{ID: "b", Addr: epB.Addr()})
	if _, err := toSlow.Put(1, []Record{ahead, inTime}); !errors.Is(err, ErrClockAhead) {
		t.Fatalf("put of both: %v, want ErrClockAhead", err)
	}
	now = now.Add(2 * time.Second)
	if _, err := Sync(slow, fromSlow, 1); err != nil {
		t.Fatal(err)
	}
	if st, _ := slow.Get(1, []byte("k")); len(st.IDs()) != 2 {
		t.Fatalf("slow node holds %v once its clock passed the version, want both", st.IDs())
	}
}

// FuzzSiteRequest: whatever another site sends, SiteRequest either
// refuses it or names a partition of replicated buckets, never another
// (a bucket not replicated, a data note, a hint).
func FuzzSiteRequest(f *testing.F) {
	f.Add(RootRequest(SitePartition(3)))
	f.Add(RootRequest(Partition(3)))
	f.Add(RootRequest(DataPartition(3)))
	f.Add(append(header(opPut, SitePartition(7)), appendRecords(nil, []Record{{Key: []byte("k"), Removal: true}})...))
	f.Add(header(opScan, SitePartition(1)))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, put, err := SiteRequest(b)
		if err != nil {
			return
		}
		if uint32(p)&SiteFlag == 0 || uint32(p)&(DataFlag|1<<31) != 0 {
			t.Fatalf("SiteRequest let through partition %#x", uint32(p))
		}
		if put {
			if _, err := PutRecords(b); err != nil && !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("PutRecords: %v", err)
			}
		}
	})
}

// TestSiteRequestRefusesOtherPartitions: another site reaches only the
// partitions of replicated buckets, and only with a Sync's requests.
func TestSiteRequestRefusesOtherPartitions(t *testing.T) {
	for _, req := range [][]byte{
		RootRequest(Partition(3)),
		RootRequest(DataPartition(3)),
		RootRequest(Partition(3 | 1<<31)),
		RootRequest(SitePartition(3) | 1<<31),
		header(opGet, SitePartition(3)),
		header(opScan, SitePartition(3)),
		{opRoot},
	} {
		if _, _, err := SiteRequest(req); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("SiteRequest(%x): %v, want ErrInvalidRequest", req, err)
		}
	}
	p, put, err := SiteRequest(header(opPut, SitePartition(5)))
	if err != nil || !put || p.Base() != 5 {
		t.Fatalf("put to partition 5 of replicated buckets: %v %v %v", p, put, err)
	}
}
