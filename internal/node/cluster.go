package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/redoubt-io/redoubt/internal/admin"
	"github.com/redoubt-io/redoubt/internal/cluster"
	"github.com/redoubt-io/redoubt/internal/layout"
	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/objects"
)

// credsKey holds the cluster's root credentials in the System partition,
// so that every node accepts the same keys.
var credsKey = []byte("cluster/root-credentials")

// startCluster joins or creates the cluster this node belongs to.
func (n *Node) startCluster(ctx context.Context) error {
	cc := n.cfg.Cluster
	gossip, err := cc.gossipAddr()
	if err != nil && cc.Net == nil {
		return err
	}
	ccfg := cluster.Config{
		RPCAddr: cc.RPCAddr, GossipAddr: gossip, Join: cc.Join, Zone: cc.Zone, Secret: cc.Secret,
		S3Addr: n.s3Ln.Addr().String(), AdminAddr: n.adminLn.Addr().String(),
		BootstrapExpect: cc.BootstrapExpect, Partitions: cc.Partitions, MetaReplicas: cc.MetaReplicas,
		Policy: n.cfg.Policy, Version: n.cfg.Version,
		Net: cc.Net, NoGossip: cc.NoGossip, RaftTick: cc.RaftTick, LayoutPoll: cc.LayoutPoll,
		RepairAfter: cc.RepairAfter, SnapshotRate: max(n.cfg.SnapshotRate, 0), Supervise: n.supervise,
		Splitter: objects.NewSplitter(cc.Partitions),
		// Idle groups stop ticking: at thousands of partitions (after
		// splits) ticking alone kept a node busy (raftmeta, Quiescence).
		RaftQuiesce: true,
		// Available buckets' replicas compare their records this often
		// (cluster.SyncRecords).
		AntiEntropy: 30 * time.Second,
		Fatal: func(err error) {
			select {
			case n.fatal <- err:
			default:
			}
		},
	}
	n.cluster, err = cluster.Start(ctx, ccfg, n.drives, n.log.With("component", "cluster"))
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return nil
}

// clusterCredentials returns the cluster's root credentials: the ones the
// environment gives (every node must then be given the same), or the ones
// stored in the cluster, created by the first node that needs them.
func (n *Node) clusterCredentials(ctx context.Context) (Credentials, error) {
	if n.cfg.Credentials != nil {
		return *n.cfg.Credentials, nil
	}
	md := n.cluster.Meta()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		it, err := md.Get(ctx, meta.System, credsKey)
		if err == nil {
			var rec credentialsRecord
			if err := json.Unmarshal(it.Value, &rec); err != nil || rec.Format != credentialsFormat {
				return Credentials{}, fmt.Errorf("the cluster's root credentials record is malformed")
			}
			return rec.Credentials, rec.Credentials.Validate()
		}
		if errors.Is(err, meta.ErrNotFound) {
			c := newCredentials()
			b, _ := json.Marshal(credentialsRecord{Format: credentialsFormat, Credentials: c})
			_, err = md.Commit(ctx, meta.System, meta.Txn{Conds: []meta.Cond{{Key: credsKey}}, Puts: []meta.KV{{Key: credsKey, Value: b}}})
			if err == nil {
				n.log.Info("generated the cluster's root credentials")
				return c, nil
			}
			if errors.Is(err, meta.ErrConflict) {
				continue // another node made them first
			}
		}
		if !errors.Is(err, meta.ErrUnavailable) {
			return Credentials{}, fmt.Errorf("reading the cluster's root credentials: %w", err)
		}
		select {
		case <-ctx.Done():
			return Credentials{}, fmt.Errorf("reading the cluster's root credentials: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// followLayout keeps the data path's policy at the layout's.
func (n *Node) followLayout(l *layout.Layout) {
	n.setPolicy(l.Policy)
	n.data.SetPolicy(l.Policy)
	// Partitions the layout says split are not asked first.
	n.objects.SplitTo(l.Depth)
}

// registerCluster adds the layout endpoints to the admin API.
func (n *Node) registerCluster(mux *http.ServeMux) {
	mux.HandleFunc("GET /cluster/layout", func(w http.ResponseWriter, r *http.Request) {
		v, err := n.cluster.View(r.Context())
		writeAdmin(w, v, err)
	})
	mux.HandleFunc("GET /cluster/layout/preview", func(w http.ResponseWriter, r *http.Request) {
		p, err := n.cluster.Preview(r.Context())
		writeAdmin(w, p, err)
	})
	mux.HandleFunc("POST /cluster/layout/stage", func(w http.ResponseWriter, r *http.Request) {
		var e admin.LayoutEdit
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&e); err != nil {
			writeAdmin(w, nil, fmt.Errorf("%w: %w", cluster.ErrStage, err))
			return
		}
		v, err := n.cluster.Stage(r.Context(), e)
		writeAdmin(w, v, err)
	})
	mux.HandleFunc("POST /cluster/layout/split", func(w http.ResponseWriter, r *http.Request) {
		v, err := n.cluster.Split(r.Context())
		writeAdmin(w, v, err)
	})
	mux.HandleFunc("POST /cluster/layout/apply", func(w http.ResponseWriter, r *http.Request) {
		var want uint64
		if s := r.URL.Query().Get("version"); s != "" {
			var err error
			if want, err = strconv.ParseUint(s, 10, 64); err != nil {
				writeAdmin(w, nil, fmt.Errorf("%w: version %q", cluster.ErrStage, s))
				return
			}
		}
		v, err := n.cluster.Apply(r.Context(), want)
		writeAdmin(w, v, err)
	})
	mux.HandleFunc("POST /cluster/layout/revert", func(w http.ResponseWriter, r *http.Request) {
		writeAdmin(w, struct{}{}, n.cluster.Revert(r.Context()))
	})
}

// writeAdmin answers an admin call with v as JSON, or with err: 400 for
// the operator's mistakes, 503 when the cluster cannot decide now, 500
// otherwise.
func writeAdmin(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if err != nil {
		code := http.StatusInternalServerError
		switch {
		case errors.Is(err, cluster.ErrStage), errors.Is(err, cluster.ErrNoLayout):
			code = http.StatusBadRequest
		case errors.Is(err, meta.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
			code = http.StatusServiceUnavailable
		}
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(admin.APIError{Error: err.Error()})
		return
	}
	json.NewEncoder(w).Encode(v)
}
