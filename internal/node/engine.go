package node

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/redoubt-io/redoubt/internal/meta"
)

// engineCollector exports the metadata store's engine figures
// (meta.EngineStats) as redoubt_meta_engine_*, asking the engine once per
// scrape.
type engineCollector struct {
	stats func() meta.EngineStats
	descs []engineMetric
}

type engineMetric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(meta.EngineStats) float64
}

func newEngineCollector(stats func() meta.EngineStats) *engineCollector {
	m := func(name, help string, kind prometheus.ValueType, value func(meta.EngineStats) float64) engineMetric {
		return engineMetric{prometheus.NewDesc("redoubt_meta_engine_"+name, help, nil, nil), kind, value}
	}
	g, c := prometheus.GaugeValue, prometheus.CounterValue
	return &engineCollector{stats: stats, descs: []engineMetric{
		m("l0_files", "Tables in level 0 of the metadata databases: writes stall when they pile up.", g,
			func(s meta.EngineStats) float64 { return float64(s.L0Files) }),
		m("l0_sublevels", "Sublevels of level 0, summed over the metadata databases: each is one more place every read looks.", g,
			func(s meta.EngineStats) float64 { return float64(s.L0Sublevels) }),
		m("read_amplification", "The most places a point read looks in any metadata database: level-0 sublevels and the other non-empty levels.", g,
			func(s meta.EngineStats) float64 { return float64(s.ReadAmp) }),
		m("tables", "Live tables of the metadata databases.", g,
			func(s meta.EngineStats) float64 { return float64(s.Tables) }),
		m("table_bytes", "Bytes of the live tables of the metadata databases.", g,
			func(s meta.EngineStats) float64 { return float64(s.TableBytes) }),
		m("compaction_debt_bytes", "Bytes compactions must rewrite to bring the metadata databases' levels back in shape.", g,
			func(s meta.EngineStats) float64 { return float64(s.CompactionDebt) }),
		m("compactions_running", "Compactions running now.", g,
			func(s meta.EngineStats) float64 { return float64(s.CompactionsRunning) }),
		m("compactions_total", "Compactions run since the metadata databases opened.", c,
			func(s meta.EngineStats) float64 { return float64(s.Compactions) }),
		m("write_stalls_total", "Times metadata writes waited for a flush or for level 0 to drain, since the databases opened.", c,
			func(s meta.EngineStats) float64 { return float64(s.WriteStalls) }),
		m("file_cache_hits_total", "Lookups of tables found open.", c,
			func(s meta.EngineStats) float64 { return float64(s.FileCacheHits) }),
		m("file_cache_misses_total", "Lookups of tables that had to open the table's file and read its index.", c,
			func(s meta.EngineStats) float64 { return float64(s.FileCacheMisses) }),
		m("block_cache_hits_total", "Reads of table blocks found in the block cache.", c,
			func(s meta.EngineStats) float64 { return float64(s.BlockCacheHits) }),
		m("block_cache_misses_total", "Reads of table blocks that went to the file.", c,
			func(s meta.EngineStats) float64 { return float64(s.BlockCacheMisses) }),
		m("filter_answered_total", "Reads of keys never written (an object's head, at a PUT of a new key) answered by the presence filter without reading the engine.", c,
			func(s meta.EngineStats) float64 { return float64(s.FilterAnswered) }),
		m("filter_bytes", "Memory of the presence filter; 0 until its scan after start is done.", g,
			func(s meta.EngineStats) float64 { return float64(s.FilterBytes) }),
	}}
}

func (e *engineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range e.descs {
		ch <- m.desc
	}
}

func (e *engineCollector) Collect(ch chan<- prometheus.Metric) {
	s := e.stats()
	if s.Databases == 0 {
		return // closed, or nothing open: no figure rather than zeros
	}
	for _, m := range e.descs {
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(s))
	}
}
