// Package sites links clusters (sites) so that they share the buckets
// replicated to sites (objects.BucketConfig.Replicate), both ways and
// asynchronously, as Redoubt's available buckets share a key between the
// replicas of one cluster: by the same records and the same merge.
//
// An available bucket's key is a set of records (package records), each
// immutable: its versions and the removals of versions. Two sites hold
// the same records of every key once each has copied the other the
// records it lacks, whatever order writes, deletes and copies happened
// in, since the state of a key is the union of its records (vset). So
// replication between sites is the anti-entropy between the replicas of
// one cluster, run across the link: per partition, the two sides compare
// merkle trees of the replicated buckets' records (their own partitions,
// records.SitePartition, so no other bucket's records are compared or
// sent) and copy each other what differs (records.Sync). This makes it
//
//   - lossless: concurrent writes on two sites both survive, as versions,
//     and the greater is current on both;
//   - loop-free: a record is copied only to a site that lacks it, and
//     nothing is forwarded;
//   - complete: deletes are records too, and a site cut off for hours
//     catches up by one comparison per partition, sending only the
//     records that differ, however many writes there were.
//
// A replicated bucket has the same name and incarnation ID on every site:
// each pass first exchanges the sites' lists of replicated buckets, and
// each side creates those it lacks (objects.Service.AdoptBucket).
//
// Bodies larger than objects' inline limit are in the drives of the site
// that took the write, not in the records; see objects (sitedata) for how
// another site reads and copies them.
//
// Lag: a partition is in step with a site as of the start of the last
// pass that found both sides' trees equal or copied the difference. A
// site's lag, on a node, is how long ago the least in-step of the
// partitions this node syncs was in step: every record this node's
// replicas held before then is on the other site. Tests:
// TestSitesReplicateBothWays (internal/node).
package sites

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/redoubt-io/redoubt/internal/meta"
)

// Site is another cluster linked with this one.
type Site struct {
	Name string `json:"name"`
	// Endpoint is the other site's admin API (http://host:port), on any
	// of its nodes.
	Endpoint string `json:"endpoint"`
	// AccessKey and SecretKey are its root credentials: requests to it
	// are signed with them.
	AccessKey string    `json:"access_key"`
	SecretKey string    `json:"secret_key"`
	Added     time.Time `json:"added"`
}

var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Check refuses a site that cannot be linked: a bad name, an endpoint
// that is not an http(s) URL or host:port, missing credentials.
func (s Site) Check() error {
	if !validName.MatchString(s.Name) {
		return fmt.Errorf("%w: site name %q: lowercase letters, digits and '-', up to 63", ErrInvalid, s.Name)
	}
	ep := s.Endpoint
	if !strings.Contains(ep, "://") {
		ep = "http://" + ep
	}
	u, err := url.Parse(ep)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return fmt.Errorf("%w: endpoint %q: want the other site's admin address, http://host:port", ErrInvalid, s.Endpoint)
	}
	if s.AccessKey == "" || s.SecretKey == "" {
		return fmt.Errorf("%w: site %q: the other site's root access key and secret key are needed", ErrInvalid, s.Name)
	}
	return nil
}

// ErrInvalid is returned (wrapped) for a site that cannot be linked.
var ErrInvalid = errors.New("sites: invalid site")

// ErrExists and ErrNotFound are the registry's answers about names.
var (
	ErrExists   = errors.New("sites: a site of this name is linked already")
	ErrNotFound = errors.New("sites: no site of this name")
)

// Registry keeps the linked sites in the cluster's metadata (the System
// group), so that every node knows them.
type Registry struct{ MD meta.Store }

var sitePrefix = []byte("cluster/site/")

func siteKey(name string) []byte { return append(append([]byte{}, sitePrefix...), name...) }

// Add links s; a site of its name must not be linked already.
func (r Registry) Add(ctx context.Context, s Site) error {
	if err := s.Check(); err != nil {
		return err
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	k := siteKey(s.Name)
	_, err = r.MD.Commit(ctx, meta.System, meta.Txn{Conds: []meta.Cond{{Key: k}}, Puts: []meta.KV{{Key: k, Value: b}}})
	if errors.Is(err, meta.ErrConflict) {
		return fmt.Errorf("%w: %q", ErrExists, s.Name)
	}
	return err
}

// Remove unlinks the site name.
func (r Registry) Remove(ctx context.Context, name string) error {
	k := siteKey(name)
	if _, err := r.MD.Get(ctx, meta.System, k); errors.Is(err, meta.ErrNotFound) {
		return fmt.Errorf("%w: %q", ErrNotFound, name)
	} else if err != nil {
		return err
	}
	_, err := r.MD.Commit(ctx, meta.System, meta.Txn{Deletes: [][]byte{k}})
	return err
}

// List returns the linked sites, by name.
func (r Registry) List(ctx context.Context) ([]Site, error) {
	var out []Site
	var derr error
	end := append(append([]byte{}, sitePrefix[:len(sitePrefix)-1]...), sitePrefix[len(sitePrefix)-1]+1)
	err := r.MD.Scan(ctx, meta.System, sitePrefix, end, func(k []byte, it meta.Item) bool {
		var s Site
		if err := json.Unmarshal(it.Value, &s); err != nil {
			derr = fmt.Errorf("sites: record %q: %w", k, err)
			return false
		}
		out = append(out, s)
		return true
	})
	if err == nil {
		err = derr
	}
	return out, err
}

// Linked says whether any site is linked.
func (r Registry) Linked(ctx context.Context) (bool, error) {
	s, err := r.List(ctx)
	return len(s) > 0, err
}

// ParseSecret reads another site's root credentials from a secret file:
// the site's own credentials file (redoubt-credentials.json: a JSON
// object with access_key and secret_key), or text holding the access key
// and the secret key separated by white space or a colon.
func ParseSecret(b []byte) (accessKey, secretKey string, err error) {
	t := strings.TrimSpace(string(b))
	if strings.HasPrefix(t, "{") {
		var c struct {
			AccessKey string `json:"access_key"`
			SecretKey string `json:"secret_key"`
		}
		if err := json.Unmarshal([]byte(t), &c); err != nil {
			return "", "", fmt.Errorf("%w: secret file: %w", ErrInvalid, err)
		}
		accessKey, secretKey = c.AccessKey, c.SecretKey
	} else {
		f := strings.FieldsFunc(t, func(r rune) bool { return r == ':' || r == ' ' || r == '\t' || r == '\n' || r == '\r' })
		if len(f) == 2 {
			accessKey, secretKey = f[0], f[1]
		}
	}
	if accessKey == "" || secretKey == "" || strings.ContainsAny(accessKey+secretKey, " \t\r\n") {
		return "", "", fmt.Errorf("%w: secret file: want the other site's redoubt-credentials.json, or its access key and secret key separated by a space or a colon", ErrInvalid)
	}
	return accessKey, secretKey, nil
}
