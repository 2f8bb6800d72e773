package meta

import "github.com/cockroachdb/pebble/v2"

// EngineStats is what the storage engine (Pebble) of a metadata store
// reports, summed over its databases: how far compactions keep up with
// the writes, and how much a read costs. They are the figures that move
// as a store grows to millions of objects (BENCHMARKS.md "At scale").
type EngineStats struct {
	// Databases counts the open databases summed.
	Databases int
	// L0Files and L0Sublevels are the tables in level 0 and the
	// sublevels they form: every point read looks into each sublevel, and
	// writes stall when they pile up (Pebble's L0StopWritesThreshold).
	// ReadAmp is the most of any database: sublevels plus the other
	// levels holding tables.
	L0Files, L0Sublevels, ReadAmp int64
	// Tables and TableBytes are the live tables.
	Tables     int64
	TableBytes uint64
	// CompactionDebt is the bytes compactions must rewrite to bring the
	// levels back in shape; Compactions counts those run since open, and
	// CompactionsRunning those running now.
	CompactionDebt     uint64
	Compactions        int64
	CompactionsRunning int64
	// WriteStalls counts the times writes waited for a flush or for level
	// 0 to drain, since open.
	WriteStalls int64
	// FileCacheHits and FileCacheMisses count lookups of open tables; a
	// miss opens the table's file and reads its index.
	FileCacheHits, FileCacheMisses int64
	// BlockCacheHits and BlockCacheMisses count reads of table blocks.
	BlockCacheHits, BlockCacheMisses int64
	// FilterAnswered counts reads the presence filter answered without
	// reading the engine, since open; FilterBytes is the memory its
	// filters take, 0 before its scan after open is done.
	FilterAnswered int64
	FilterBytes    uint64
}

// add adds the metrics of one database, with the write stalls counted by
// its event listener.
func (s *EngineStats) add(m *pebble.Metrics, stalls int64) {
	s.Databases++
	l0 := m.Levels[0]
	s.L0Files += l0.TablesCount
	s.L0Sublevels += int64(l0.Sublevels)
	s.ReadAmp = max(s.ReadAmp, int64(m.ReadAmp()))
	for _, l := range m.Levels {
		s.Tables += l.TablesCount
		s.TableBytes += uint64(l.TablesSize)
	}
	s.CompactionDebt += m.Compact.EstimatedDebt
	s.Compactions += m.Compact.Count
	s.CompactionsRunning += m.Compact.NumInProgress
	s.WriteStalls += stalls
	s.FileCacheHits += m.FileCache.Hits
	s.FileCacheMisses += m.FileCache.Misses
	s.BlockCacheHits += m.BlockCache.Hits
	s.BlockCacheMisses += m.BlockCache.Misses
}

// EngineStatsOf is the stats of one database, whose write stalls stalls
// counts.
func EngineStatsOf(db *pebble.DB, stalls int64) EngineStats {
	var s EngineStats
	s.add(db.Metrics(), stalls)
	return s
}

// EngineStats sums the stats of the replicas' open databases.
func (l *Local) EngineStats() EngineStats {
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	var s EngineStats
	if l.closed {
		return s
	}
	for _, r := range l.replicas {
		if r.db != nil && r.healthy() {
			s.add(r.db.Metrics(), r.stalls.Load())
		}
	}
	s.FilterAnswered = int64(l.pres.answered.Load())
	if l.pres.ready.Load() {
		s.FilterBytes = l.pres.bytes()
	}
	return s
}
