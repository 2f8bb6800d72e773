package cluster

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestNodeRecordRoundTrip(t *testing.T) {
	n := NodeInfo{ID: "ab12", RaftID: 7, Zone: "z", RPCAddr: "127.0.0.1:1", Drives: []DriveInfo{{ID: "d", Capacity: 1}}}
	got, err := decodeNode(encodeNode(n))
	if err != nil || got.ID != n.ID || got.Format != recordFormat {
		t.Fatalf("%+v, %v", got, err)
	}
	bad := n
	bad.Drives = nil
	if _, err := decodeNode(encodeNode(bad)); !errors.Is(err, ErrBadRecord) {
		t.Errorf("a node without drives: %v", err)
	}
	if _, err := decodeStaged([]byte(`{"format":1,"edits":[{"op":"explode","node":"x"}]}`)); !errors.Is(err, ErrBadRecord) {
		t.Errorf("an unknown staged op: %v", err)
	}
}

func FuzzDecodeNode(f *testing.F) {
	f.Add(encodeNode(NodeInfo{ID: "ab12", RaftID: 7, Zone: "z", RPCAddr: "127.0.0.1:1", Drives: []DriveInfo{{ID: "d", Capacity: 1}}}))
	f.Add([]byte(`{"format":2}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := decodeNode(b)
		if err != nil {
			return
		}
		// What is accepted is a valid record that encodes back to itself.
		if err := n.validate(); err != nil {
			t.Fatalf("accepted an invalid record: %v", err)
		}
		again, err := decodeNode(encodeNode(n))
		if err != nil || again.ID != n.ID || len(again.Drives) != len(n.Drives) {
			t.Fatalf("round trip: %+v %v", again, err)
		}
	})
}

func FuzzDecodeStaged(f *testing.F) {
	f.Add(encodeStaged([]StageEdit{{Op: "add", Node: "x"}, {Op: "capacity", Node: "y", Capacity: 5}}))
	f.Add([]byte(`{"format":1,"edits":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeStaged(b)
		if err != nil {
			return
		}
		again, err := decodeStaged(encodeStaged(e))
		if err != nil || len(again) != len(e) {
			t.Fatalf("round trip: %v %v", again, err)
		}
	})
}

func FuzzJoinResponse(f *testing.F) {
	b, _ := json.Marshal(joinResponse{Format: recordFormat, Nodes: []NodeInfo{{ID: "a"}}, SystemVoters: []uint64{1}})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		// askJoin's decoding: never a panic, whatever a peer answers.
		var jr joinResponse
		if json.Unmarshal(b, &jr) != nil {
			return
		}
		for _, n := range jr.Nodes {
			_ = n.validate()
		}
	})
}
