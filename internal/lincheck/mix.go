package lincheck

import (
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
)

// Mix draws requests of every kind the model covers, for a workload on a
// few buckets and keys. It learns from the answers (Learn) which version
// IDs exist and which value a key holds, so that requests for one version
// and conditional writes mostly name real ones. Set its fields before the
// first Next; then it is safe for concurrent use.
type Mix struct {
	// Buckets are the buckets of object requests and of SetVersioning.
	Buckets []string
	// Churned buckets are also deleted and created again.
	Churned  []string
	Keys     []string
	Prefixes []string // of listings

	mu struct {
		sync.Mutex
		ids    map[string][]string // bucket/key -> version IDs seen, oldest first
		values map[string]string   // bucket/key -> the value last written or read
	}
}

// maxIDs bounds the version IDs Mix remembers per key.
const maxIDs = 32

// Next draws a request; a write writes value, which the caller makes
// unique in the history. Of 1000 requests: 240 Get of the latest version,
// 80 of one version, 200 Put, 50 Create, 40 Put with If-Match, 80 Delete,
// 110 Delete of one version, 40 List, 40 ListVersions, 20 SetVersioning,
// 10 GetVersioning, 5 HeadBucket; 45 DeleteBucket and 40 CreateBucket of a
// churned bucket, or, without one, as many more Gets.
func (m *Mix) Next(rng *rand.Rand, value string) Input {
	in := Input{Bucket: m.Buckets[rng.IntN(len(m.Buckets))], Key: m.Keys[rng.IntN(len(m.Keys))]}
	r := rng.IntN(1000)
	if r >= 915 && len(m.Churned) == 0 {
		r = 0
	}
	switch {
	case r < 240:
		in.Op = Get
	case r < 320:
		in.Op, in.VersionID = Get, m.versionID(rng, in.Bucket, in.Key)
	case r < 520:
		in.Op, in.Value = Put, value
	case r < 570:
		in.Op, in.Value = Create, value
	case r < 610:
		in.Op, in.Value, in.IfMatch = Put, value, m.value(rng, in.Bucket, in.Key)
	case r < 690:
		in.Op = Delete
	case r < 800:
		in.Op, in.VersionID = Delete, m.versionID(rng, in.Bucket, in.Key)
	case r < 840:
		in = Input{Op: List, Bucket: in.Bucket, Prefix: m.Prefixes[rng.IntN(len(m.Prefixes))]}
	case r < 880:
		in = Input{Op: ListVersions, Bucket: in.Bucket, Prefix: m.Prefixes[rng.IntN(len(m.Prefixes))]}
	case r < 900:
		in = Input{Op: SetVersioning, Bucket: in.Bucket, Versioning: Enabled}
		if rng.IntN(5) < 2 {
			in.Versioning = Suspended
		}
	case r < 910:
		in = Input{Op: GetVersioning, Bucket: in.Bucket}
	case r < 915:
		in = Input{Op: HeadBucket, Bucket: in.Bucket}
	case r < 960:
		in = Input{Op: DeleteBucket, Bucket: m.Churned[rng.IntN(len(m.Churned))]}
	default:
		in = Input{Op: CreateBucket, Bucket: m.Churned[rng.IntN(len(m.Churned))]}
	}
	return in
}

// versionID names a version of bucket/key: mostly one an answer named,
// sometimes the null version, sometimes one of another key (absent here).
func (m *Mix) versionID(rng *rand.Rand, bucket, key string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := rng.IntN(100)
	if ids := m.mu.ids[bucket+"/"+key]; r < 75 && len(ids) > 0 {
		return ids[rng.IntN(len(ids))]
	}
	if r < 90 {
		other := m.Keys[rng.IntN(len(m.Keys))]
		if ids := m.mu.ids[bucket+"/"+other]; other != key && len(ids) > 0 {
			return ids[rng.IntN(len(ids))]
		}
	}
	return NullID
}

// value is the value an If-Match names: mostly the key's latest known,
// sometimes one never written (a precondition that fails).
func (m *Mix) value(rng *rand.Rand, bucket, key string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.mu.values[bucket+"/"+key]; ok && rng.IntN(4) > 0 {
		return v
	}
	return "never-written"
}

// Latest returns the value bucket/key was last seen to hold (written or
// read), if any.
func (m *Mix) Latest(bucket, key string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.mu.values[bucket+"/"+key]
	return v, ok
}

// Learn takes in what an answer tells about versions and values.
func (m *Mix) Learn(in Input, out Output) {
	if out.Unknown || out.Err != "" {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.ids == nil {
		m.mu.ids, m.mu.values = map[string][]string{}, map[string]string{}
	}
	k := in.Bucket + "/" + in.Key
	switch {
	case in.Op == Put || in.Op == Create:
		m.mu.values[k] = in.Value
		m.addID(k, out.VersionID)
	case in.Op == Get && in.VersionID == "":
		m.mu.values[k] = out.Value
		m.addID(k, out.VersionID)
	case in.Op == Delete && in.VersionID == "":
		m.addID(k, out.VersionID)
	case in.Op == Delete:
		m.mu.ids[k] = slices.DeleteFunc(m.mu.ids[k], func(id string) bool { return id == in.VersionID })
	case in.Op == ListVersions:
		listed := map[string][]string{}
		for _, v := range out.Versions {
			if v.VersionID != NullID {
				listed[v.Key] = append(listed[v.Key], v.VersionID)
			}
		}
		for _, key := range m.Keys {
			if strings.HasPrefix(key, in.Prefix) {
				ids := listed[key]
				slices.Reverse(ids) // oldest first
				m.mu.ids[in.Bucket+"/"+key] = ids[max(0, len(ids)-maxIDs):]
			}
		}
	case in.Op == DeleteBucket:
		for _, key := range m.Keys {
			delete(m.mu.ids, in.Bucket+"/"+key)
			delete(m.mu.values, in.Bucket+"/"+key)
		}
	}
}

func (m *Mix) addID(k, id string) {
	if id == "" || id == NullID || slices.Contains(m.mu.ids[k], id) {
		return
	}
	ids := append(m.mu.ids[k], id)
	m.mu.ids[k] = ids[max(0, len(ids)-maxIDs):]
}
