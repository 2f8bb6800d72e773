package raftmeta

import (
	"encoding/binary"
	"fmt"
	"log/slog"

	"github.com/redoubt-io/redoubt/internal/meta"
)

// Pebble key layout. Every key of a group starts with 'g' and its
// partition, so that removing a group is one range deletion:
//
//	"F"                 format version of the database
//	'G' p               group record: this host has a replica of the group, and which
//	'T' p               tombstone: the lowest generation of the group's replicas still
//	                    allowed here (kept when a replica's state is deleted)
//	'S' p               split record: the group split, into which children (split.go)
//	'g' p 'a'           apply state: applied index and ConfState (same batch as the data it covers)
//	'g' p 'b'           log base: index and term of the last discarded entry
//	'g' p 'h'           HardState
//	'g' p 'l' index     log entry
//	'g' p 'd' key       item: revision and value of key
const (
	groupRecordPrefix = 'G'
	tombstonePrefix   = 'T'
	splitPrefix       = 'S'
	groupPrefix       = 'g'
	kindApply         = 'a'
	kindBase          = 'b'
	kindHard          = 'h'
	kindLog           = 'l'
	kindData          = 'd'
)

var formatKey = []byte("F")

func groupRecordKey(p meta.Partition) []byte {
	return binary.BigEndian.AppendUint32([]byte{groupRecordPrefix}, uint32(p))
}

func tombstoneKey(p meta.Partition) []byte {
	return binary.BigEndian.AppendUint32([]byte{tombstonePrefix}, uint32(p))
}

func splitKey(p meta.Partition) []byte {
	return binary.BigEndian.AppendUint32([]byte{splitPrefix}, uint32(p))
}

func groupKey(p meta.Partition, kind byte) []byte {
	b := make([]byte, 0, 16)
	b = append(b, groupPrefix)
	b = binary.BigEndian.AppendUint32(b, uint32(p))
	return append(b, kind)
}

// groupBounds is [lower, upper) of every key of group p.
func groupBounds(p meta.Partition) (lower, upper []byte) {
	lower = binary.BigEndian.AppendUint32([]byte{groupPrefix}, uint32(p))
	if p == meta.Partition(1<<32-1) {
		return lower, []byte{groupPrefix + 1}
	}
	return lower, binary.BigEndian.AppendUint32([]byte{groupPrefix}, uint32(p)+1)
}

func logKey(p meta.Partition, index uint64) []byte {
	return binary.BigEndian.AppendUint64(groupKey(p, kindLog), index)
}

func dataKey(p meta.Partition, key []byte) []byte {
	return append(groupKey(p, kindData), key...)
}

const dataKeyHeader = 6

// dataBounds is [lower, upper) of the items of p in [start, end); a nil
// end is the end of the partition.
func dataBounds(p meta.Partition, start, end []byte) (lower, upper []byte) {
	lower = dataKey(p, start)
	if end != nil {
		return lower, dataKey(p, end)
	}
	return lower, groupKey(p, kindData+1)
}

// slogRaft adapts a slog.Logger to raft.Logger. Raft's chatty info lines
// (elections, term changes) go to Debug except those that name a fault.
type slogRaft struct{ l *slog.Logger }

func (s slogRaft) Debug(v ...any)              { s.l.Debug(fmt.Sprint(v...)) }
func (s slogRaft) Debugf(f string, v ...any)   { s.l.Debug(fmt.Sprintf(f, v...)) }
func (s slogRaft) Info(v ...any)               { s.l.Debug(fmt.Sprint(v...)) }
func (s slogRaft) Infof(f string, v ...any)    { s.l.Debug(fmt.Sprintf(f, v...)) }
func (s slogRaft) Warning(v ...any)            { s.l.Warn(fmt.Sprint(v...)) }
func (s slogRaft) Warningf(f string, v ...any) { s.l.Warn(fmt.Sprintf(f, v...)) }
func (s slogRaft) Error(v ...any)              { s.l.Error(fmt.Sprint(v...)) }
func (s slogRaft) Errorf(f string, v ...any)   { s.l.Error(fmt.Sprintf(f, v...)) }
func (s slogRaft) Fatal(v ...any)              { s.Panic(v...) }
func (s slogRaft) Fatalf(f string, v ...any)   { s.Panicf(f, v...) }
func (s slogRaft) Panic(v ...any)              { m := fmt.Sprint(v...); s.l.Error(m); panic(m) }
func (s slogRaft) Panicf(f string, v ...any)   { m := fmt.Sprintf(f, v...); s.l.Error(m); panic(m) }
