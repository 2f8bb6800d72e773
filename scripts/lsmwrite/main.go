// Command lsmwrite measures what Pebble settings cost a store of small
// objects. It writes records shaped like a standalone node's (per object a
// head record of 160 bytes and a version record holding a 4 KiB random
// body, keyed by a partition that the name hashes to, the head read
// first) into one Pebble database per configuration, all at once, so that
// the configurations share the machine and are compared in one run. Every
// step it prints, per configuration, the write rate, the compaction debt,
// level 0, write stalls and the bytes flushed and compacted so far.
//
// Usage:
//
//	go run ./scripts/lsmwrite -dir /var/tmp/lsm -n 1250000 -configs 16:1,64:1,16:2
//
// A configuration is MEMTABLE_MIB:COMPACTIONS (the most compactions at
// once). Each database needs about 4.4 KB of disk per object.
package main

import (
	"crypto/rand"
	"encoding/binary"
	"flag"
	"fmt"
	"hash/fnv"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
)

type config struct {
	name        string
	memtable    uint64
	compactions int
}

func parseConfig(s string) (config, error) {
	mem, conc, ok := strings.Cut(s, ":")
	m, err1 := strconv.Atoi(mem)
	c, err2 := strconv.Atoi(conc)
	if !ok || err1 != nil || err2 != nil || m < 1 || c < 1 {
		return config{}, fmt.Errorf("config %q: want MEMTABLE_MIB:COMPACTIONS, e.g. 64:1", s)
	}
	return config{name: s, memtable: uint64(m) << 20, compactions: c}, nil
}

type run struct {
	cfg    config
	db     *pebble.DB
	n      atomic.Int64
	stalls atomic.Int64
}

// open makes a database set up as meta.Local sets up its replicas.
func open(dir string, c config) (*run, error) {
	r := &run{cfg: c}
	opts := &pebble.Options{
		Cache:                       pebble.NewCache(64<<20 + 2*int64(c.memtable)),
		MemTableSize:                c.memtable,
		MemTableStopWritesThreshold: 2,
		FormatMajorVersion:          pebble.FormatNewest,
		EventListener: &pebble.EventListener{
			WriteStallBegin: func(pebble.WriteStallBeginInfo) { r.stalls.Add(1) },
		},
	}
	if c.compactions > 1 {
		opts.CompactionConcurrencyRange = func() (int, int) { return 1, c.compactions }
	}
	opts.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, err
	}
	r.db = db
	return r, nil
}

func recordKey(part byte, tag byte, name []byte) []byte {
	k := []byte{1, 0, 0, part, tag, 1, 2, 3, 4, 5, 6, 7, 8}
	return append(k, name...)
}

// write stores objects until total are stored.
func (r *run) write(total int64) error {
	body := make([]byte, 4096)
	head := make([]byte, 160)
	for {
		i := r.n.Add(1)
		if i > total {
			return nil
		}
		name := fmt.Appendf(nil, "obj/%012d", i)
		h := fnv.New32a()
		h.Write(name)
		part := byte(h.Sum32())
		hk := recordKey(part, 'h', name)
		if _, closer, err := r.db.Get(hk); err == nil {
			closer.Close()
		}
		rand.Read(body)
		binary.LittleEndian.PutUint64(body, uint64(i))
		b := r.db.NewBatch()
		_ = b.Set(hk, head, nil)
		_ = b.Set(append(recordKey(part, 'v', name), make([]byte, 13)...), body, nil)
		if err := b.Commit(pebble.Sync); err != nil {
			return err
		}
		_ = b.Close()
	}
}

func (r *run) report(step int64, rate float64, elapsed time.Duration) {
	m := r.db.Metrics()
	var flushed, compacted uint64
	for _, l := range m.Levels {
		flushed += l.TableBytesFlushed
		compacted += l.TableBytesCompacted
	}
	wal := m.WAL.BytesWritten
	fmt.Printf("%s objects=%d rate=%.0f/s debt=%.2fGiB l0_files=%d l0_sublevels=%d read_amp=%d stalls=%d wal=%.1fGB flushed=%.1fGB compacted=%.1fGB compacted_per_wal_byte=%.2f elapsed=%.0fs\n",
		r.cfg.name, step, rate, float64(m.Compact.EstimatedDebt)/(1<<30), m.Levels[0].TablesCount,
		m.Levels[0].Sublevels, m.ReadAmp(), r.stalls.Load(), float64(wal)/1e9, float64(flushed)/1e9,
		float64(compacted)/1e9, float64(compacted)/float64(max(wal, 1)), elapsed.Seconds())
}

func main() {
	dir := flag.String("dir", "", "directory for the databases (required; emptied first)")
	total := flag.Int64("n", 1000000, "objects per database")
	every := flag.Int64("every", 250000, "report every this many objects")
	writers := flag.Int("writers", 16, "writers per database")
	specs := flag.String("configs", "16:1,64:1", "comma-separated MEMTABLE_MIB:COMPACTIONS")
	flag.Parse()
	if *dir == "" {
		log.Fatal("-dir is required")
	}
	var runs []*run
	for _, s := range strings.Split(*specs, ",") {
		c, err := parseConfig(s)
		if err != nil {
			log.Fatal(err)
		}
		d := filepath.Join(*dir, fmt.Sprintf("mem%d-conc%d", c.memtable>>20, c.compactions))
		if err := os.RemoveAll(d); err != nil {
			log.Fatal(err)
		}
		r, err := open(d, c)
		if err != nil {
			log.Fatal(err)
		}
		runs = append(runs, r)
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, len(runs)**writers)
	for _, r := range runs {
		for range *writers {
			wg.Go(func() {
				if err := r.write(*total); err != nil {
					errs <- err
				}
			})
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	type mark struct {
		n    int64
		at   time.Time
		next int64
	}
	marks := make([]mark, len(runs))
	for i := range marks {
		marks[i] = mark{at: start, next: *every}
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		case err := <-errs:
			log.Fatal(err)
		case <-tick.C:
		}
		for i, r := range runs {
			if n := r.n.Load(); n >= marks[i].next || (finished && marks[i].n < *total) {
				now := time.Now()
				n = min(n, *total)
				r.report(min(marks[i].next, *total), float64(n-marks[i].n)/now.Sub(marks[i].at).Seconds(), now.Sub(start))
				marks[i] = mark{n: n, at: now, next: marks[i].next + *every}
			}
		}
	}
	for _, r := range runs {
		if err := r.db.Close(); err != nil {
			log.Fatal(err)
		}
	}
}
