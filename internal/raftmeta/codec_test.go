package raftmeta

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/redoubt-io/redoubt/internal/meta"
	"go.etcd.io/raft/v3/raftpb"
)

func sampleTxn() meta.Txn {
	return meta.Txn{
		Conds:   []meta.Cond{{Key: []byte("a"), Rev: 7}, {Key: []byte{}, Rev: 0}},
		Puts:    []meta.KV{{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("b"), Value: nil}},
		Deletes: [][]byte{[]byte("c")},
		Adds:    []meta.Add{{Key: []byte("n"), Delta: []int64{1, -4096}}, {Key: []byte("m")}},
	}
}

func TestCodecRoundTrip(t *testing.T) {
	p := proposal{node: 3, id: 99, txn: sampleTxn()}
	got, err := decodeProposal(encodeProposal(&p))
	if err != nil || fmt.Sprint(got) != fmt.Sprint(p) {
		t.Fatalf("proposal: %v, %v", got, err)
	}
	for _, q := range []request{
		{op: opCommit, hops: 1, p: meta.System, txn: sampleTxn()},
		{op: opGet, p: 5, key: []byte("k")},
		{op: opGetMany, p: 5, reads: []meta.Read{{Key: []byte("k")}, {Key: []byte{}, First: true}, {Key: []byte("z")}}},
		{op: opScan, p: 5, key: []byte("a"), end: nil, maxBytes: 100},
		{op: opScan, p: 5, key: []byte("a"), end: []byte{}, maxBytes: 100},
		{op: opConf, p: 5, change: raftpb.ConfChangeType_ConfChangeAddLearnerNode, node: 9},
		{op: opReplica, p: 5, node: 1 << 60},
		sampleRanges(),
		{op: opRanges, maxBytes: 7},
	} {
		got, err := decodeRequest(encodeRequest(&q))
		if err != nil || !bytes.Equal(encodeRequest(&got), encodeRequest(&q)) || (got.end == nil) != (q.end == nil) || fmt.Sprint(got.txn) != fmt.Sprint(q.txn) {
			t.Fatalf("request %+v: %+v, %v", q, got, err)
		}
	}
	s := response{status: stOK, rev: 4, value: []byte("v"), items: []snapItem{{key: []byte("k"), value: []byte("v"), rev: 3}}, more: true}
	gotS, err := decodeResponse(encodeResponse(&s))
	if err != nil || fmt.Sprint(gotS) != fmt.Sprint(s) {
		t.Fatalf("response: %v, %v", gotS, err)
	}
	rr := sampleRangesResponse()
	gotR, err := decodeRangesResponse(encodeRangesResponse(&rr))
	if err != nil || fmt.Sprint(gotR) != fmt.Sprint(rr) {
		t.Fatalf("ranges response: %v, %v", gotR, err)
	}
	q := sampleRanges()
	gotQ, _ := decodeRequest(encodeRequest(&q))
	if fmt.Sprint(gotQ.ranges) != fmt.Sprint(q.ranges) || gotQ.ranges[0].end != nil || gotQ.ranges[1].end == nil {
		t.Fatalf("ranges request: %+v", gotQ.ranges)
	}
	msgs := []groupMsg{{p: 3, fromGen: 2, toGen: 300, msg: &raftpb.Message{Type: new(raftpb.MsgApp), To: new(uint64(2)), From: new(uint64(1)), Entries: []*raftpb.Entry{{Index: new(uint64(5)), Data: []byte("x")}}}}}
	raw, err := encodeBatch(msgs)
	if err != nil {
		t.Fatal(err)
	}
	gotM, err := decodeBatch(raw)
	if err != nil || len(gotM) != 1 || gotM[0].p != 3 || gotM[0].fromGen != 2 || gotM[0].toGen != 300 || !bytes.Equal(gotM[0].msg.GetEntries()[0].GetData(), []byte("x")) {
		t.Fatalf("batch: %v, %v", gotM, err)
	}
	// Another version is refused, not misread: a future one, or the one
	// without generations.
	for _, v := range []byte{batchVersion + 1, formatVersion} {
		raw[0] = v
		if _, err := decodeBatch(raw); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("batch of version %d: %v", v, err)
		}
	}
}

func FuzzDecodeProposal(f *testing.F) {
	p := proposal{node: 3, id: 99, txn: sampleTxn()}
	f.Add(encodeProposal(&p))
	f.Add([]byte{formatVersion, entryTxn})
	f.Add(encodeProposal(&proposal{node: 1, id: 2, split: &[2]meta.Partition{10, 11}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodeProposal(b)
		if err != nil {
			return
		}
		if !bytes.Equal(encodeProposal(&p), b) {
			t.Fatalf("decoded %x does not re-encode to itself", b)
		}
	})
}

func FuzzDecodeRequest(f *testing.F) {
	for _, q := range []request{
		{op: opCommit, hops: 1, p: meta.System, txn: sampleTxn()},
		{op: opGetMany, p: 5, reads: []meta.Read{{Key: []byte("a"), First: true}, {Key: []byte("b")}}},
		{op: opScan, p: 5, key: []byte("a"), end: []byte("z"), maxBytes: 100},
		{op: opConf, p: 5, change: raftpb.ConfChangeType_ConfChangeAddNode, node: 9},
		{op: opReplica, p: 5, node: 7},
		{op: opSplit, p: 5, into: [2]meta.Partition{10, 11}},
		{op: opChunk, p: 5, chunk: chunk{node: 2, id: 77, seq: 3, last: true, total: 9, index: 40, crc: 0xdeadbeef, items: []byte{1, 1, 'k', 5, 1, 'v'}}},
		sampleRanges(),
	} {
		f.Add(encodeRequest(&q))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := decodeRequest(b)
		if err != nil {
			return
		}
		if !bytes.Equal(encodeRequest(&q), b) {
			t.Fatalf("decoded %x does not re-encode to itself", b)
		}
	})
}

func FuzzDecodeResponse(f *testing.F) {
	s := response{status: stConflict, msg: "m", rev: 4, value: []byte("v"), items: []snapItem{{key: []byte("k"), value: []byte("v"), rev: 3}}}
	f.Add(encodeResponse(&s))
	moved := movedResponse(5, &splitRec{into: [2]meta.Partition{10, 11}, index: 40})
	f.Add(encodeResponse(&moved))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeResponse(b)
		if err != nil {
			return
		}
		if !bytes.Equal(encodeResponse(&s), b) {
			t.Fatalf("decoded %x does not re-encode to itself", b)
		}
	})
}

func FuzzDecodeBatch(f *testing.F) {
	raw, _ := encodeBatch([]groupMsg{{p: 1, toGen: 1, msg: &raftpb.Message{Type: new(raftpb.MsgHeartbeat), To: new(uint64(2)), From: new(uint64(1))}}})
	f.Add(raw)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = decodeBatch(b) // must not panic or allocate beyond the input
	})
}

func FuzzDecodeSnapshotData(f *testing.F) {
	f.Add([]byte{formatVersion, 1, 1, 'k', 5, 1, 'v'})
	set := appendReplicaSet(nil, initialSet([]uint64{1, 2, 3}))
	f.Add(append(appendBytes([]byte{snapshotVersion}, set), 1, 1, 'k', 5, 1, 'v'))
	f.Add(encodeStreamHeader(streamHeader{set: initialSet([]uint64{1, 2, 3}), node: 2, id: 99}))
	f.Add([]byte{1, 1, 'k', 5, 1, 'v'})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = decodeSnapshotData(b, func(snapItem) {})
		if h, ok, err := decodeStreamHeader(b); ok && err == nil {
			if !bytes.Equal(encodeStreamHeader(h), b) {
				t.Fatalf("stream header %x does not re-encode to itself", b)
			}
		}
		_, _ = decodeChunkItems(b, func(snapItem) error { return nil })
	})
}

func FuzzDecodeStoredState(f *testing.F) {
	cs := &raftpb.ConfState{Voters: []uint64{1, 2}}
	f.Add(encodeApplyState(5, applyTail(cs, initialSet(cs.Voters))))
	f.Add(encodeBase(3, 2))
	f.Add(encodeItem(3, []byte("v")))
	f.Add(encodeConfContext(1, 2, replica{id: 9, node: 4, gen: 3}))
	f.Add(encodeGroupRecord(replica{id: 9, gen: 3}))
	f.Add(encodeTombstone(4))
	f.Add(encodeSplitRec(&splitRec{into: [2]meta.Partition{10, 11}, index: 40, term: 3, tail: applyTail(cs, initialSet(cs.Voters))}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := decodeSplitRec(b); err == nil && !bytes.Equal(encodeSplitRec(r), b) {
			t.Fatalf("split record %x does not re-encode to itself", b)
		}
		_, _, _, _ = decodeApplyStateSet(b)
		_, _, _ = decodeBase(b)
		_, _, _ = decodeItem(b)
		_, _, _, _, _ = decodeConfContext(b)
		_, _ = decodeGroupRecord(b, 7)
		_, _ = decodeTombstone(b)
	})
}

func sampleRanges() request {
	return request{op: opRanges, hops: 1, maxBytes: 1 << 20, ranges: []scanRange{
		{p: 3, start: []byte("a")},
		{p: meta.System, start: nil, end: []byte{}, limit: 5},
		{p: 7, start: []byte("b"), end: []byte("c"), limit: 300},
	}}
}

func sampleRangesResponse() rangesResponse {
	return rangesResponse{status: stOK, msg: "m", ranges: []rangeResult{
		{state: rangeDone, items: []snapItem{{key: []byte("k"), value: []byte("v"), rev: 3}, {key: []byte{}, rev: 1 << 40}}},
		{state: rangeMore},
		{state: rangeNotLed, leader: 1 << 63},
		{state: rangeUnavailable},
	}}
}

func FuzzDecodeRangesResponse(f *testing.F) {
	s := sampleRangesResponse()
	f.Add(encodeRangesResponse(&s))
	f.Add(encodeRangesResponse(&rangesResponse{status: stError, msg: "x"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeRangesResponse(b)
		if err != nil {
			return
		}
		if !bytes.Equal(encodeRangesResponse(&s), b) {
			t.Fatalf("decoded %x does not re-encode to itself", b)
		}
	})
}
