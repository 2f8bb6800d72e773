package node

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/redoubt-io/redoubt/internal/admin"
	"github.com/redoubt-io/redoubt/internal/cluster"
	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/objects"
	"github.com/redoubt-io/redoubt/internal/store"
)

var _ admin.StatusSource = (*Node)(nil)

// Status reports the node's drives, metadata replicas, objects and repair
// for /status.
func (n *Node) Status(ctx context.Context) admin.Status {
	st := admin.Status{
		Version:       n.cfg.Version,
		UptimeSeconds: time.Since(n.started).Seconds(),
		Region:        n.cfg.Region,
		S3Endpoint:    n.S3URL,
		Policy:        n.Policy().String(),
	}
	for _, d := range n.data.Status() {
		ds := admin.DriveStatus{
			ID:            d.ID,
			Path:          d.Path,
			State:         admin.DriveOK,
			UsedBytes:     int64(d.UsedBytes),
			TotalBytes:    int64(d.TotalBytes),
			FreeBytes:     int64(d.FreeBytes),
			ShardsRead:    int64(d.ShardsRead),
			CorruptBlocks: int64(d.CorruptBlocks),
			IOErrors:      int64(d.IOErrors),
		}
		switch {
		case d.State != store.Online:
			ds.State = admin.DriveFailed
		case d.NeedsRepair:
			ds.State = admin.DriveNeedsRepair
		}
		st.CorruptionsTotal += ds.CorruptBlocks
		st.Drives = append(st.Drives, ds)
	}
	if n.cluster != nil {
		cs := n.cluster.Status(ctx)
		cs.Redundancy = n.redundancy(cs)
		st.Cluster = &cs
		if n.sites != nil {
			st.Sites = n.sites.Status()
		}
	}
	for _, r := range n.localMetaStatus() {
		rs := admin.ReplicaStatus{Path: r.Dir, State: admin.ReplicaOK}
		if r.State != meta.ReplicaHealthy {
			rs.State = admin.ReplicaFailed
		}
		if r.Err != nil {
			rs.LastError = r.Err.Error()
		}
		st.MetadataReplicas = append(st.MetadataReplicas, rs)
	}
	st.Objects, st.Bytes = n.objectStats(ctx)
	if bs, err := n.objects.ListBuckets(ctx); err == nil {
		bc := &admin.BucketCounts{}
		for _, b := range bs {
			if b.Consistency != objects.Available {
				bc.Strong++
				continue
			}
			bc.Available++
			if len(bc.Names) < 20 {
				bc.Names = append(bc.Names, b.Name)
			}
		}
		st.Buckets = bc
	}
	st.Services = n.services.status()
	st.Scrub = n.upkeep.scrub.Status()
	st.GC = n.gc.Status()
	st.ExpiredUploads = n.upkeep.expired.Load()
	if n.adminGuard != nil {
		st.AdminRequestsRefused = n.adminGuard.Refused()
	}
	p := n.repair.Progress()
	st.Repair = admin.RepairStatus{Running: p.Running, DoneBytes: p.BytesDone, TotalBytes: p.BytesTotal,
		ReadRepairs: n.readRepair.repaired.Load(), ReadRepairShards: n.readRepair.rebuilt.Load(),
		ReadRepairsPending: int64(n.readRepair.pending()), ReadRepairsAbandoned: n.readRepair.failed.Load()}
	if rp := p.Relocation; rp != nil {
		rs := &admin.RelocationStatus{Running: rp.Running, Layout: rp.Layout, SettledLayout: rp.Settled,
			RefsToMove: rp.RefsToMove, RefsMoved: rp.RefsMoved, BytesToMove: rp.BytesToMove, BytesMoved: rp.BytesMoved,
			Failed: rp.Failed, TotalBytesMoved: rp.TotalBytesMoved, LastError: rp.LastError}
		if rp.Running && rp.BytesMoved > 0 {
			el := time.Since(rp.Started).Seconds()
			rs.ETASeconds = el * float64(rp.BytesToMove-rp.BytesMoved) / float64(rp.BytesMoved)
		}
		st.Repair.Relocation = rs
	}
	if !p.Finished.IsZero() {
		st.Repair.LastRunStarted, st.Repair.LastRunFinished = p.Started, p.Finished
		st.Repair.LastRunRepairedShards = p.Rebuilt
		st.Repair.LastRunError = p.LastError
	}
	return st
}

// statsMaxAge bounds how stale the object count on /status may be.
// Counting reads every partition's counters (objects.Stats): cheap, but
// a read per partition, so a monitor polling /status many times a second
// shares one count.
const statsMaxAge = 2 * time.Second

// objectStats returns the object count and bytes, recounted when the last
// count is older than statsMaxAge.
func (n *Node) objectStats(ctx context.Context) (objects, bytes int64) {
	n.stats.Lock()
	defer n.stats.Unlock()
	if n.stats.at.IsZero() || time.Since(n.stats.at) > statsMaxAge {
		objs, b, err := n.objects.Stats(ctx)
		if err != nil {
			level := slog.LevelWarn
			if ctx.Err() != nil {
				level = slog.LevelDebug // the caller gave up; nothing is wrong
			}
			n.log.Log(ctx, level, "counting objects for status", "err", err)
			return n.stats.objects, n.stats.bytes
		}
		n.stats.objects, n.stats.bytes, n.stats.at = objs, b, time.Now()
	}
	return n.stats.objects, n.stats.bytes
}

// localMetaStatus is the standalone node's metadata replicas; a cluster
// node keeps its metadata in Raft groups instead.
func (n *Node) localMetaStatus() []meta.ReplicaStatus {
	if n.md == nil {
		return nil
	}
	return n.md.Status()
}

// redundancy is how many more losses every object survives now, judged
// with the last count of the stored data (the census), and asks for a
// new count when that one may be stale; it never waits for one.
func (n *Node) redundancy(cs admin.ClusterStatus) *admin.RedundancyStatus {
	if n.census == nil {
		return nil
	}
	last, err := n.census.last()
	r := n.cluster.Redundancy(cs, last)
	if r != nil && err != nil {
		r.CountError = err.Error()
	}
	var moved int64
	if n.repair != nil && n.repair.reloc != nil {
		moved = n.repair.reloc.Progress().TotalRefsMoved
	}
	n.census.freshen(cs.LayoutVersion, moved)
	return r
}

// judgeCensus is the redundancy with count c, for the census's log.
func (n *Node) judgeCensus(ctx context.Context, c *cluster.Census) *admin.RedundancyStatus {
	return n.cluster.Redundancy(n.cluster.Status(ctx), c)
}

// registerRaftMessages exports the Raft messages the node could not send
// as redoubt_raft_messages_dropped_total{reason}: refused (too large for
// the transport), queue_full, undelivered (see admin.RaftMessageStatus).
// registerRecordMetrics registers the metrics of available buckets'
// records: keys in conflict and clock refusals.
func registerRecordMetrics(reg prometheus.Registerer, c *cluster.Cluster) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "redoubt_available_conflicts",
		Help: "Keys of available buckets, among the partitions this node replicates, written concurrently and not yet resolved (redoubt conflicts BUCKET lists them), as of the last anti-entropy pass.",
	}, func() float64 { return float64(c.Conflicts()) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "redoubt_records_clock_refused_total",
		Help: "Available buckets' versions refused because their writer's clock ran ahead of the receiver's by more than the maximum offset (500 ms): by a peer, of this node's, or by this node, of a peer's. Nonzero: check NTP on every node.",
	}, func() float64 { return float64(c.ClockRefusals()) }))
}

func registerRaftMessages(reg prometheus.Registerer, c *cluster.Cluster) {
	for reason, get := range map[string]func(admin.RaftMessageStatus) uint64{
		"refused":     func(s admin.RaftMessageStatus) uint64 { return s.Refused },
		"queue_full":  func(s admin.RaftMessageStatus) uint64 { return s.QueueFull },
		"undelivered": func(s admin.RaftMessageStatus) uint64 { return s.Undelivered },
	} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "redoubt_raft_messages_dropped_total",
			Help:        "Raft messages this node did not send, by reason: refused (larger than the transport carries), queue_full, undelivered.",
			ConstLabels: prometheus.Labels{"reason": reason},
		}, func() float64 { return float64(get(c.RaftMessages())) }))
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "redoubt_raft_quiesced_groups",
		Help: "Partition groups of this node that are idle and do not tick: they send no heartbeat until used.",
	}, func() float64 { return float64(c.QuiescedGroups()) }))
	for outcome, get := range map[string]func(admin.SnapshotStatus) uint64{
		"sent":      func(s admin.SnapshotStatus) uint64 { return s.Sent },
		"failed":    func(s admin.SnapshotStatus) uint64 { return s.Failed },
		"installed": func(s admin.SnapshotStatus) uint64 { return s.Installed },
	} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "redoubt_raft_snapshots_total",
			Help:        "Partition snapshots streamed by this node to nodes catching up (sent, failed) and installed from others (installed).",
			ConstLabels: prometheus.Labels{"outcome": outcome},
		}, func() float64 { return float64(get(c.Snapshots())) }))
	}
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "redoubt_raft_snapshot_sent_bytes_total",
		Help: "Bytes of the partition snapshots this node streamed whole.",
	}, func() float64 { return float64(c.Snapshots().BytesSent) }))
}
