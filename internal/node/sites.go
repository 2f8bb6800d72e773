package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/redoubt-io/redoubt/internal/admin"
	"github.com/redoubt-io/redoubt/internal/blocks"
	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/objects"
	"github.com/redoubt-io/redoubt/internal/records"
	"github.com/redoubt-io/redoubt/internal/sites"
	"github.com/redoubt-io/redoubt/internal/transport"
)

// Sites: the admin API links this cluster with others (package sites)
// and answers their replication requests; every node runs its share of
// the replication (sites.Replicator) and reports it on /status and
// /metrics.

// siteBody bounds the body of a request from another site: a records
// request carries up to about 4 MiB of records (records' putBytes), in
// base64.
const siteBody = 16 << 20

// SiteAdd is the body of POST /sites.
type SiteAdd struct {
	Name      string `json:"name"`
	Endpoint  string `json:"endpoint"`
	AccessKey string `json:"access_key"`
	SecretKey string `json:"secret_key"`
}

// SiteInfo is a linked site in GET /sites: its status, without its
// credentials.
type SiteInfo = admin.SiteStatus

func (n *Node) registerSites(mux *http.ServeMux) {
	c := n.cluster
	reg := n.siteRegistry()
	decode := func(w http.ResponseWriter, r *http.Request, v any) bool {
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, siteBody)).Decode(v); err != nil {
			writeBucketAnswer(w, nil, fmt.Errorf("%w: body: %w", sites.ErrInvalid, err))
			return false
		}
		return true
	}
	mux.HandleFunc("POST /sites/exchange", func(w http.ResponseWriter, r *http.Request) {
		var in sites.Exchange
		if !decode(w, r, &in) {
			return
		}
		out := sites.Exchange{Partitions: n.partitions()}
		if in.Partitions != out.Partitions {
			writeBucketAnswer(w, out, nil) // the caller sees the counts differ and says so
			return
		}
		out.Refused = sites.Adopt(r.Context(), n.objects, in.Buckets)
		bs, err := n.objects.SiteBuckets(r.Context())
		out.Buckets = bs
		writeBucketAnswer(w, out, err)
	})
	mux.HandleFunc("POST /sites/roots", func(w http.ResponseWriter, r *http.Request) {
		var in sites.Roots
		if !decode(w, r, &in) {
			return
		}
		out, err := sites.ServeRoots(r.Context(), in, c.SiteRecords)
		writeBucketAnswer(w, out, err)
	})
	mux.HandleFunc("POST /sites/records", func(w http.ResponseWriter, r *http.Request) {
		var in sites.RecordsCall
		if !decode(w, r, &in) {
			return
		}
		b, err := c.SiteRecords(r.Context(), in.Request)
		if q, put, _ := records.SiteRequest(in.Request); err == nil && put {
			// What the other site sends may name its data: copy it.
			if recs, err := records.PutRecords(in.Request); err == nil {
				n.sites.Brought(q, recs)
			}
		}
		writeBucketAnswer(w, sites.RecordsCall{Answer: b}, err)
	})
	mux.HandleFunc("POST /sites/data", func(w http.ResponseWriter, r *http.Request) {
		var ref blocks.Ref
		if !decode(w, r, &ref) {
			return
		}
		if _, ok := c.Drive(firstDrive(ref)); !ok || ref.Size < 0 {
			writeBucketAnswer(w, nil, fmt.Errorf("%w: data %s is not this site's", sites.ErrNotFound, ref.ID))
			return
		}
		rc, err := n.data.Open(r.Context(), ref, 0, ref.Size)
		if err != nil {
			writeBucketAnswer(w, nil, fmt.Errorf("%w: %w", meta.ErrUnavailable, err))
			return
		}
		defer rc.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(ref.Size, 10))
		io.Copy(w, rc)
	})
	mux.HandleFunc("GET /sites", func(w http.ResponseWriter, r *http.Request) {
		list, err := reg.List(r.Context())
		out := make([]SiteInfo, 0, len(list))
		st := map[string]admin.SiteStatus{}
		for _, s := range n.sites.Status() {
			st[s.Name] = s
		}
		for _, s := range list {
			info, ok := st[s.Name]
			if !ok {
				info = SiteInfo{Name: s.Name, Endpoint: s.Endpoint}
			}
			out = append(out, info)
		}
		writeBucketAnswer(w, out, err)
	})
	mux.HandleFunc("POST /sites", func(w http.ResponseWriter, r *http.Request) {
		var in SiteAdd
		if !decode(w, r, &in) {
			return
		}
		s := sites.Site{Name: in.Name, Endpoint: in.Endpoint, AccessKey: in.AccessKey, SecretKey: in.SecretKey, Added: time.Now().UTC()}
		if err := s.Check(); err != nil {
			writeBucketAnswer(w, nil, err)
			return
		}
		// The other site must answer, accept the credentials and have
		// this cluster's partition count before it is linked.
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		cl := &admin.Client{AccessKey: s.AccessKey, SecretKey: s.SecretKey, Region: n.cfg.Region, HTTP: n.siteHTTP()}
		var theirs sites.Exchange
		if err := cl.Call(ctx, s.Endpoint, http.MethodPost, "/sites/exchange", sites.Exchange{Partitions: n.partitions()}, &theirs); err != nil {
			writeBucketAnswer(w, nil, fmt.Errorf("%w: site %s at %s does not answer as a Redoubt site with these credentials: %w", errSiteUnreachable, s.Name, s.Endpoint, err))
			return
		}
		if theirs.Partitions != n.partitions() {
			writeBucketAnswer(w, nil, fmt.Errorf("%w: site %s has %d partitions, this cluster %d: linked sites must have the same count", sites.ErrInvalid, s.Name, theirs.Partitions, n.partitions()))
			return
		}
		if err := reg.Add(r.Context(), s); err != nil {
			writeBucketAnswer(w, nil, err)
			return
		}
		writeBucketAnswer(w, SiteInfo{Name: s.Name, Endpoint: s.Endpoint}, nil)
	})
	mux.HandleFunc("DELETE /sites/{name}", func(w http.ResponseWriter, r *http.Request) {
		err := reg.Remove(r.Context(), r.PathValue("name"))
		writeBucketAnswer(w, struct{}{}, err)
	})
}

var errSiteUnreachable = errors.New("site unreachable")

func firstDrive(ref blocks.Ref) string {
	if len(ref.Drives) == 0 {
		return ""
	}
	return ref.Drives[0]
}

// openSiteData opens data another site wrote, from the first linked site
// that has it (objects.Config.SiteData).
func (n *Node) openSiteData(ctx context.Context, ref blocks.Ref) (io.ReadCloser, error) {
	list, err := n.siteRegistry().List(ctx)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(ref)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, s := range list {
		cl := &admin.Client{AccessKey: s.AccessKey, SecretKey: s.SecretKey, Region: n.cfg.Region}
		req, err := cl.NewRequest(ctx, http.MethodPost, admin.BaseURL(s.Endpoint)+"/sites/data", body)
		if err != nil {
			return nil, err
		}
		resp, err := n.siteHTTP().Do(req)
		if err != nil {
			errs = append(errs, fmt.Errorf("site %s: %w", s.Name, err))
			continue
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			errs = append(errs, fmt.Errorf("site %s: %s", s.Name, resp.Status))
			continue
		}
		return resp.Body, nil
	}
	if len(errs) == 0 {
		return nil, errors.New("no site is linked")
	}
	return nil, errors.Join(errs...)
}

func (n *Node) siteRegistry() sites.Registry { return sites.Registry{MD: n.cluster.Meta()} }

// siteHTTP is the client of requests to other sites. Like the transport
// (transport.SourceAddr) it dials from the address the node's admin API
// listens on, when that is one address: the other site sees the node's
// requests come from the address it is known by, and rules that cut the
// link between two sites' addresses match them.
func (n *Node) siteHTTP() *http.Client {
	n.siteClient.Do(func() {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: 3 * time.Second}
			if ln := n.adminLn; ln != nil {
				if src := transport.SourceAddr(ln.Addr(), addr); src != nil {
					d.LocalAddr = src
				}
			}
			return d.DialContext(ctx, network, addr)
		}
		n.siteHTTPClient = &http.Client{Transport: tr, Timeout: 5 * time.Minute}
	})
	return n.siteHTTPClient
}

// partitions is the cluster's partition count, 0 while no layout is known.
func (n *Node) partitions() int {
	if l := n.cluster.Layout(); l != nil {
		return l.Partitions
	}
	return 0
}

// newReplicator makes this node's share of the replication to sites.
func (n *Node) newReplicator() *sites.Replicator {
	return sites.New(sites.Config{
		Registry:   n.siteRegistry(),
		Local:      n.cluster,
		Buckets:    n.objects,
		Partitions: n.partitions,
		Region:     n.cfg.Region,
		HTTP:       n.siteHTTP(),
		Log:        n.log.With("component", "sites"),
	})
}

func registerSiteMetrics(reg prometheus.Registerer, r *sites.Replicator) {
	reg.MustRegister(siteCollector{r})
}

type siteCollector struct{ r *sites.Replicator }

var (
	siteLagDesc = prometheus.NewDesc("redoubt_site_lag_seconds",
		"How long ago every record of the partitions this node replicates to the site was last known to be on it too: the replication lag.", []string{"site"}, nil)
	siteBehindDesc = prometheus.NewDesc("redoubt_site_partitions_behind",
		"Partitions the last pass could not bring in step with the site.", []string{"site"}, nil)
	siteRecordsDesc = prometheus.NewDesc("redoubt_site_records_total",
		"Records of replicated buckets this node copied from the site (fetched) and to it (sent).", []string{"site", "direction"}, nil)
)

func (s siteCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- siteLagDesc
	ch <- siteBehindDesc
	ch <- siteRecordsDesc
}

func (s siteCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range s.r.Status() {
		ch <- prometheus.MustNewConstMetric(siteLagDesc, prometheus.GaugeValue, st.LagSeconds, st.Name)
		ch <- prometheus.MustNewConstMetric(siteBehindDesc, prometheus.GaugeValue, float64(st.Behind), st.Name)
		ch <- prometheus.MustNewConstMetric(siteRecordsDesc, prometheus.CounterValue, float64(st.RecordsFetched), st.Name, "fetched")
		ch <- prometheus.MustNewConstMetric(siteRecordsDesc, prometheus.CounterValue, float64(st.RecordsSent), st.Name, "sent")
	}
}

var _ sites.Buckets = (*objects.Service)(nil)
