package records

import (
	"errors"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/transport"
	"github.com/redoubt-io/redoubt/internal/vset"
)

// trio is three nodes, each with a store served on a memory network.
type trio struct {
	mn     *transport.MemNetwork
	stores map[transport.NodeID]*Store
}

func newTrio(t *testing.T) *trio {
	tr := &trio{mn: transport.NewMemNetwork(), stores: map[transport.NodeID]*Store{}}
	for _, id := range []transport.NodeID{"a", "b", "c"} {
		tr.stores[id] = memStore(t)
		Serve(tr.mn.Node(id), tr.stores[id], time.Now)
	}
	return tr
}

// replicas are the three replicas as node from reaches them: its own
// store directly, the others through the network.
func (tr *trio) replicas(t *testing.T, from transport.NodeID) []Replica {
	out := []Replica{tr.stores[from]}
	for _, id := range []transport.NodeID{"a", "b", "c"} {
		if id != from {
			out = append(out, RemotePeer(t.Context(), tr.mn.Node(from), transport.Peer{ID: id, Addr: tr.mn.Node(id).Addr()}))
		}
	}
	return out
}

func (tr *trio) state(t *testing.T, id transport.NodeID, key string) vset.State {
	st, err := tr.stores[id].Get(1, []byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestWritesOnBothSidesOfACut: a node cut off from the other replicas
// still takes a write (one copy, said so), as do the two on the other
// side (two copies); after the heal, one read through any node returns
// both writes, as concurrent heads, and leaves every replica holding
// both (read repair).
func TestWritesOnBothSidesOfACut(t *testing.T) {
	tr := newTrio(t)
	tr.mn.Partition([]transport.NodeID{"a"}, []transport.NodeID{"b", "c"})
	lone := Record{Key: []byte("k"), Version: version(10, 1, "written alone")}
	pair := Record{Key: []byte("k"), Version: version(11, 2, "written by two")}
	if n, err := Write(tr.replicas(t, "a"), 1, []Record{lone}, 2, time.Second); err != nil || n != 1 {
		t.Fatalf("write on the lone side: %d copies, %v; want 1", n, err)
	}
	if n, err := Write(tr.replicas(t, "b"), 1, []Record{pair}, 2, time.Second); err != nil || n != 2 {
		t.Fatalf("write on the pair's side: %d copies, %v; want 2", n, err)
	}
	if heads := tr.state(t, "a", "k").Heads(); len(heads) != 1 || heads[0].ID != lone.Version.ID {
		t.Fatalf("a holds %v before the heal", heads)
	}
	tr.mn.Heal()
	recs, answered, err := Read(tr.replicas(t, "c"), 1, []byte("k"), time.Second, nil)
	if err != nil || answered != 3 {
		t.Fatalf("read after the heal: %d answered, %v", answered, err)
	}
	heads := StateOf(recs).Heads()
	if len(heads) != 2 || heads[0].ID != pair.Version.ID || heads[1].ID != lone.Version.ID {
		t.Fatalf("heads after the heal: %v, want both writes, the later first", heads)
	}
	for _, id := range []transport.NodeID{"a", "b", "c"} {
		if st := tr.state(t, id, "k"); !st.Equal(StateOf(recs)) {
			t.Errorf("%s after the read: %v, want both writes", id, st.IDs())
		}
	}
}

// TestNoReplicaNoWrite: a write that reaches no replica fails, and says
// so; a read that reaches none fails alike; one that reaches some merges
// what they hold.
func TestNoReplicaNoWrite(t *testing.T) {
	tr := newTrio(t)
	// Node a is no replica here: the partition's replicas are b and c.
	reps := tr.replicas(t, "a")[1:]
	tr.mn.Partition([]transport.NodeID{"a"}, []transport.NodeID{"b", "c"})
	rec := Record{Key: []byte("k"), Version: version(5, 1, "x")}
	if _, err := Write(reps, 1, []Record{rec}, 2, time.Second); !errors.Is(err, ErrNoCopy) || !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("write to unreachable replicas: %v, want ErrNoCopy from ErrUnreachable", err)
	}
	if _, _, err := Read(reps, 1, []byte("k"), time.Second, nil); !errors.Is(err, ErrNoAnswer) {
		t.Fatalf("read of unreachable replicas: %v, want ErrNoAnswer", err)
	}
	tr.mn.Heal()
	tr.mn.Disconnect("a", "c")
	if n, err := Write(reps, 1, []Record{rec}, 2, time.Second); err != nil || n != 1 {
		t.Fatalf("write with one replica reachable: %d copies, %v", n, err)
	}
	recs, answered, err := Read(reps, 1, []byte("k"), time.Second, nil)
	if err != nil || answered != 1 || len(recs) != 1 {
		t.Fatalf("read with one replica reachable: %v, %d answered, %v", recs, answered, err)
	}
}
