package s3api_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redoubt-io/redoubt/internal/checksum"
	"github.com/redoubt-io/redoubt/internal/objects"
)

// memAPI is a small in-memory objects.API for front-end tests. It keeps
// S3 semantics only as far as the front end's tests need them.
type memAPI struct {
	mu      sync.Mutex
	buckets map[string]*memBucket
	uploads map[string]*memUpload
	seq     int
	minPart int64
	now     func() time.Time
	// fail, if set, is returned by every call (error-mapping tests).
	fail error
	// panicOn makes PutObject panic (recovery test).
	panicOn string
	// refuse, if set, is returned by PutObject before it reads the body,
	// as a node out of space refuses an upload.
	refuse error
}

type memBucket struct {
	info objects.BucketInfo
	objs map[string][]*memVersion // oldest first
}

type memVersion struct {
	info objects.ObjectInfo
	data []byte
	// partSizes of a multipart object.
	partSizes []int64
}

type memUpload struct {
	bucket, key string
	opts        objects.PutOptions
	initiated   time.Time
	parts       map[int]*memPart
}

type memPart struct {
	info objects.PartInfo
	data []byte
}

var _ objects.API = (*memAPI)(nil)

func newMemAPI() *memAPI {
	return &memAPI{buckets: map[string]*memBucket{}, uploads: map[string]*memUpload{}, minPart: 5 << 20,
		now: func() time.Time { return time.Now().Truncate(time.Millisecond) }}
}

func (m *memAPI) bucket(name string) (*memBucket, error) {
	if m.fail != nil {
		return nil, m.fail
	}
	b, ok := m.buckets[name]
	if !ok {
		return nil, objects.ErrNoSuchBucket
	}
	return b, nil
}

func (m *memAPI) CreateBucketWith(ctx context.Context, name string, cfg objects.BucketConfig) error {
	if cfg != (objects.BucketConfig{}) {
		return fmt.Errorf("%w: memAPI makes strong buckets only", objects.ErrNotImplemented)
	}
	return m.CreateBucket(ctx, name)
}

func (m *memAPI) CreateBucket(ctx context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	if len(name) < 3 || len(name) > 63 || strings.ToLower(name) != name || strings.ContainsAny(name, "_/ ") {
		return objects.ErrInvalidBucketName
	}
	if _, ok := m.buckets[name]; ok {
		return objects.ErrBucketExists
	}
	m.buckets[name] = &memBucket{info: objects.BucketInfo{Name: name, Created: m.now()}, objs: map[string][]*memVersion{}}
	return nil
}

func (m *memAPI) HeadBucket(ctx context.Context, name string) (objects.BucketInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, err := m.bucket(name)
	if err != nil {
		return objects.BucketInfo{}, err
	}
	return b.info, nil
}

func (m *memAPI) DeleteBucket(ctx context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, err := m.bucket(name)
	if err != nil {
		return err
	}
	if len(b.objs) > 0 {
		return objects.ErrBucketNotEmpty
	}
	delete(m.buckets, name)
	return nil
}

func (m *memAPI) ListBuckets(ctx context.Context) ([]objects.BucketInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return nil, m.fail
	}
	var out []objects.BucketInfo
	for _, b := range m.buckets {
		out = append(out, b.info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (m *memAPI) SetVersioning(ctx context.Context, bucket string, state objects.Versioning) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, err := m.bucket(bucket)
	if err != nil {
		return err
	}
	b.info.Versioning = state
	return nil
}

func sumOf(a checksum.Algorithm, data []byte) string {
	h := checksum.New(a)
	h.Write(data)
	return checksum.Encode(h.Sum(nil))
}

// readVerify reads body and checks its length, MD5 and checksums.
func readVerify(body io.Reader, size int64, md5want []byte, algo string, want objects.Checksums, trailer func() objects.Checksums) ([]byte, string, objects.Checksums, error) {
	data, err := io.ReadAll(body)
	if err != nil {
		return nil, "", objects.Checksums{}, fmt.Errorf("read body: %w", err)
	}
	if size >= 0 && int64(len(data)) != size {
		return nil, "", objects.Checksums{}, objects.ErrIncompleteBody
	}
	sum := md5.Sum(data)
	if md5want != nil && !bytes.Equal(md5want, sum[:]) {
		return nil, "", objects.Checksums{}, objects.ErrBadDigest
	}
	var got objects.Checksums
	if trailer != nil {
		t := trailer()
		for _, a := range checksum.All {
			if v := *t.Field(a); v != "" {
				*want.Field(a) = v
			}
		}
	}
	for _, a := range checksum.All {
		w := *want.Field(a)
		if w == "" && string(a) != algo {
			continue
		}
		g := sumOf(a, data)
		if w != "" && w != g {
			return nil, "", objects.Checksums{}, objects.ErrChecksumMismatch
		}
		*got.Field(a) = g
	}
	if got != (objects.Checksums{}) {
		got.Type = "FULL_OBJECT"
	}
	return data, `"` + hex.EncodeToString(sum[:]) + `"`, got, nil
}

func (m *memAPI) latest(b *memBucket, key string) *memVersion {
	vs := b.objs[key]
	if len(vs) == 0 {
		return nil
	}
	return vs[len(vs)-1]
}

// commit adds v as the newest version of key, as the bucket's versioning
// state says.
func (m *memAPI) commit(b *memBucket, key string, v *memVersion) {
	switch b.info.Versioning {
	case objects.Unversioned:
		v.info.VersionID = ""
		b.objs[key] = []*memVersion{v}
		return
	case objects.Enabled:
		m.seq++
		v.info.VersionID = fmt.Sprintf("v%08d", m.seq)
	case objects.Suspended:
		v.info.VersionID = "null"
	}
	vs := b.objs[key][:0:0]
	for _, o := range b.objs[key] {
		if v.info.VersionID != "null" || (o.info.VersionID != "null" && o.info.VersionID != "") {
			vs = append(vs, o)
		}
	}
	b.objs[key] = append(vs, v)
}

func (m *memAPI) PutObject(ctx context.Context, bucket, key string, body io.Reader, size int64, opts objects.PutOptions) (objects.ObjectInfo, error) {
	if m.panicOn != "" && key == m.panicOn {
		panic("memAPI: asked to panic")
	}
	if m.refuse != nil {
		return objects.ObjectInfo{}, m.refuse
	}
	data, etag, sums, err := readVerify(body, size, opts.ContentMD5, opts.ChecksumAlgorithm, opts.Checksums, opts.Trailer)
	if err != nil {
		return objects.ObjectInfo{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	b, err := m.bucket(bucket)
	if err != nil {
		return objects.ObjectInfo{}, err
	}
	if err := m.writeCond(b, key, opts.IfMatch, opts.IfNoneMatch); err != nil {
		return objects.ObjectInfo{}, err
	}
	v := &memVersion{data: data, info: objects.ObjectInfo{
		Bucket: bucket, Key: key, Size: int64(len(data)), ETag: etag, LastModified: m.now(),
		ContentType: opts.ContentType, Headers: opts.Headers, UserMeta: opts.UserMeta, Checksums: sums, IsLatest: true,
	}}
	m.commit(b, key, v)
	return v.info, nil
}

func (m *memAPI) writeCond(b *memBucket, key, ifMatch, ifNoneMatch string) error {
	cur := m.latest(b, key)
	exists := cur != nil && !cur.info.DeleteMarker
	if ifNoneMatch == "*" && exists {
		return objects.ErrPreconditionFailed
	}
	if ifMatch != "" && (!exists || (ifMatch != "*" && ifMatch != cur.info.ETag)) {
		if !exists {
			return objects.ErrNoSuchKey
		}
		return objects.ErrPreconditionFailed
	}
	return nil
}

func (m *memAPI) find(b *memBucket, key, versionID string) (*memVersion, error) {
	vs := b.objs[key]
	if versionID == "" {
		if len(vs) == 0 {
			return nil, objects.ErrNoSuchKey
		}
		v := vs[len(vs)-1]
		if v.info.DeleteMarker {
			return v, objects.ErrNoSuchKey
		}
		return v, nil
	}
	for _, v := range vs {
		if v.info.VersionID == versionID || (versionID == "null" && v.info.VersionID == "") {
			if v.info.DeleteMarker {
				return v, objects.ErrMethodNotAllowed
			}
			return v, nil
		}
	}
	return nil, objects.ErrNoSuchVersion
}

func checkCond(c objects.Preconditions, info objects.ObjectInfo) error {
	if c.IfMatch != "" && c.IfMatch != "*" && c.IfMatch != info.ETag {
		return objects.ErrPreconditionFailed
	}
	if c.IfMatch == "" && !c.IfUnmodifiedSince.IsZero() && info.LastModified.Truncate(time.Second).After(c.IfUnmodifiedSince) {
		return objects.ErrPreconditionFailed
	}
	if c.IfNoneMatch != "" && (c.IfNoneMatch == "*" || c.IfNoneMatch == info.ETag) {
		return objects.ErrNotModified
	}
	if c.IfNoneMatch == "" && !c.IfModifiedSince.IsZero() && !info.LastModified.Truncate(time.Second).After(c.IfModifiedSince) {
		return objects.ErrNotModified
	}
	return nil
}

func (m *memAPI) GetObject(ctx context.Context, bucket, key string, opts objects.GetOptions) (objects.ObjectInfo, io.ReadCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, err := m.bucket(bucket)
	if err != nil {
		return objects.ObjectInfo{}, nil, err
	}
	v, err := m.find(b, key, opts.VersionID)
	if err != nil {
		if v != nil {
			return v.info, nil, err
		}
		return objects.ObjectInfo{}, nil, err
	}
	info := v.info
	info.IsLatest = v == m.latest(b, key)
	if err := checkCond(opts.Cond, info); err != nil {
		return info, nil, err
	}
	start, n := int64(0), info.Size
	switch {
	case opts.PartNumber > 0:
		sizes := v.partSizes
		if sizes == nil {
			sizes = []int64{info.Size}
		}
		if opts.PartNumber > len(sizes) {
			return info, nil, objects.ErrInvalidRange
		}
		for _, s := range sizes[:opts.PartNumber-1] {
			start += s
		}
		n = sizes[opts.PartNumber-1]
	case opts.Range.Set:
		r := opts.Range
		switch {
		case r.Suffix > 0:
			n = min(r.Suffix, info.Size)
			start = info.Size - n
		case r.Start >= info.Size:
			return info, nil, objects.ErrInvalidRange
		case r.End < 0 || r.End >= info.Size:
			start, n = r.Start, info.Size-r.Start
		default:
			start, n = r.Start, r.End-r.Start+1
		}
	}
	info.RangeStart, info.RangeLength = start, n
	if opts.HeadOnly {
		return info, nil, nil
	}
	return info, io.NopCloser(bytes.NewReader(v.data[start : start+n])), nil
}

func (m *memAPI) DeleteObject(ctx context.Context, bucket, key string, opts objects.DeleteOptions) (objects.DeleteResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, err := m.bucket(bucket)
	if err != nil {
		return objects.DeleteResult{}, err
	}
	if opts.VersionID != "" {
		vs := b.objs[key]
		for i, v := range vs {
			if v.info.VersionID == opts.VersionID || (opts.VersionID == "null" && v.info.VersionID == "") {
				b.objs[key] = append(vs[:i:i], vs[i+1:]...)
				if len(b.objs[key]) == 0 {
					delete(b.objs, key)
				}
				return objects.DeleteResult{VersionID: opts.VersionID, DeleteMarker: v.info.DeleteMarker}, nil
			}
		}
		return objects.DeleteResult{}, objects.ErrNoSuchVersion
	}
	if b.info.Versioning == objects.Unversioned {
		delete(b.objs, key)
		return objects.DeleteResult{}, nil
	}
	dm := &memVersion{info: objects.ObjectInfo{Bucket: bucket, Key: key, DeleteMarker: true, LastModified: m.now()}}
	m.commit(b, key, dm)
	return objects.DeleteResult{VersionID: dm.info.VersionID, DeleteMarker: true}, nil
}

func (m *memAPI) CopyObject(ctx context.Context, src objects.CopySource, dstBucket, dstKey string, opts objects.PutOptions) (objects.ObjectInfo, error) {
	m.mu.Lock()
	sb, err := m.bucket(src.Bucket)
	if err != nil {
		m.mu.Unlock()
		return objects.ObjectInfo{}, err
	}
	v, err := m.find(sb, src.Key, src.VersionID)
	if err == nil {
		err = checkCond(src.Cond, v.info)
		if err == objects.ErrNotModified {
			err = objects.ErrPreconditionFailed
		}
	}
	m.mu.Unlock()
	if err != nil {
		return objects.ObjectInfo{}, err
	}
	if !src.ReplaceMetadata {
		opts.ContentType, opts.Headers, opts.UserMeta = v.info.ContentType, v.info.Headers, v.info.UserMeta
	}
	return m.PutObject(ctx, dstBucket, dstKey, bytes.NewReader(v.data), int64(len(v.data)), opts)
}

func (m *memAPI) ListObjects(ctx context.Context, bucket string, opts objects.ListOptions) (objects.ListResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, err := m.bucket(bucket)
	if err != nil {
		return objects.ListResult{}, err
	}
	var keys []string
	for k, vs := range b.objs {
		if !vs[len(vs)-1].info.DeleteMarker {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var res objects.ListResult
	count := 0
	lastPrefix := ""
	for _, k := range keys {
		if !strings.HasPrefix(k, opts.Prefix) || k <= opts.Marker {
			continue
		}
		if opts.Delimiter != "" && strings.HasSuffix(opts.Marker, opts.Delimiter) && strings.HasPrefix(k, opts.Marker) {
			continue
		}
		name := k
		isPrefix := false
		if opts.Delimiter != "" {
			if i := strings.Index(k[len(opts.Prefix):], opts.Delimiter); i >= 0 {
				name = k[:len(opts.Prefix)+i+len(opts.Delimiter)]
				isPrefix = true
				if name == lastPrefix {
					continue
				}
			}
		}
		if count == opts.MaxKeys {
			res.IsTruncated = true
			break
		}
		count++
		res.NextMarker = name
		if isPrefix {
			lastPrefix = name
			res.CommonPrefixes = append(res.CommonPrefixes, name)
			continue
		}
		info := b.objs[k][len(b.objs[k])-1].info
		info.IsLatest = true
		res.Objects = append(res.Objects, info)
	}
	if !res.IsTruncated {
		res.NextMarker = ""
	}
	return res, nil
}

func (m *memAPI) ListObjectVersions(ctx context.Context, bucket string, opts objects.ListVersionsOptions) (objects.ListVersionsResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, err := m.bucket(bucket)
	if err != nil {
		return objects.ListVersionsResult{}, err
	}
	var keys []string
	for k := range b.objs {
		if strings.HasPrefix(k, opts.Prefix) && k > opts.KeyMarker {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var res objects.ListVersionsResult
	for _, k := range keys {
		vs := b.objs[k]
		for i := len(vs) - 1; i >= 0; i-- {
			if len(res.Versions) == opts.MaxKeys {
				res.IsTruncated = true
				return res, nil
			}
			info := vs[i].info
			info.IsLatest = i == len(vs)-1
			res.Versions = append(res.Versions, info)
			res.NextKeyMarker, res.NextVersionIDMarker = k, info.VersionID
		}
	}
	res.NextKeyMarker, res.NextVersionIDMarker = "", ""
	return res, nil
}

func (m *memAPI) CreateMultipartUpload(ctx context.Context, bucket, key string, opts objects.PutOptions) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.bucket(bucket); err != nil {
		return "", err
	}
	m.seq++
	id := "up" + strconv.Itoa(m.seq)
	m.uploads[id] = &memUpload{bucket: bucket, key: key, opts: opts, initiated: m.now(), parts: map[int]*memPart{}}
	return id, nil
}

func (m *memAPI) upload(bucket, key, id string) (*memUpload, error) {
	if _, err := m.bucket(bucket); err != nil {
		return nil, err
	}
	u, ok := m.uploads[id]
	if !ok || u.bucket != bucket || u.key != key {
		return nil, objects.ErrNoSuchUpload
	}
	return u, nil
}

func (m *memAPI) UploadPart(ctx context.Context, bucket, key, uploadID string, part int, body io.Reader, size int64, opts objects.PartOptions) (objects.PartInfo, error) {
	m.mu.Lock()
	u, err := m.upload(bucket, key, uploadID)
	m.mu.Unlock()
	if err != nil {
		return objects.PartInfo{}, err
	}
	algo := opts.ChecksumAlgorithm
	if algo == "" {
		algo = u.opts.ChecksumAlgorithm
	}
	data, etag, sums, err := readVerify(body, size, opts.ContentMD5, algo, opts.Checksums, opts.Trailer)
	if err != nil {
		return objects.PartInfo{}, err
	}
	sums.Type = ""
	return m.addPart(u, part, data, etag, sums), nil
}

func (m *memAPI) addPart(u *memUpload, part int, data []byte, etag string, sums objects.Checksums) objects.PartInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := &memPart{data: data, info: objects.PartInfo{Number: part, ETag: etag, Size: int64(len(data)), LastModified: m.now(), Checksums: sums}}
	u.parts[part] = p
	return p.info
}

func (m *memAPI) UploadPartCopy(ctx context.Context, src objects.CopySource, bucket, key, uploadID string, part int) (objects.PartInfo, error) {
	info, rd, err := m.GetObject(ctx, src.Bucket, src.Key, objects.GetOptions{VersionID: src.VersionID, Range: src.Range, Cond: src.Cond})
	if err == objects.ErrNotModified {
		err = objects.ErrPreconditionFailed
	}
	if err != nil {
		return objects.PartInfo{}, err
	}
	m.mu.Lock()
	u, err := m.upload(bucket, key, uploadID)
	m.mu.Unlock()
	if err != nil {
		return objects.PartInfo{}, err
	}
	data, etag, _, err := readVerify(rd, info.RangeLength, nil, "", objects.Checksums{}, nil)
	if err != nil {
		return objects.PartInfo{}, err
	}
	return m.addPart(u, part, data, etag, objects.Checksums{}), nil
}

func (m *memAPI) CompleteMultipartUpload(ctx context.Context, bucket, key, uploadID string, parts []objects.CompletePart, opts objects.CompleteOptions) (objects.ObjectInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, err := m.upload(bucket, key, uploadID)
	if err != nil {
		return objects.ObjectInfo{}, err
	}
	var data []byte
	var md5s []byte
	var sizes []int64
	for i := 1; i < len(parts); i++ {
		if parts[i].Number <= parts[i-1].Number {
			return objects.ObjectInfo{}, objects.ErrInvalidPartOrder
		}
	}
	for i, cp := range parts {
		p, ok := u.parts[cp.Number]
		if !ok || p.info.ETag != cp.ETag {
			return objects.ObjectInfo{}, objects.ErrInvalidPart
		}
		if i < len(parts)-1 && p.info.Size < m.minPart {
			return objects.ObjectInfo{}, objects.ErrEntityTooSmall
		}
		raw, _ := hex.DecodeString(strings.Trim(p.info.ETag, `"`))
		md5s = append(md5s, raw...)
		data = append(data, p.data...)
		sizes = append(sizes, p.info.Size)
	}
	b := m.buckets[bucket]
	if err := m.writeCond(b, key, opts.IfMatch, opts.IfNoneMatch); err != nil {
		return objects.ObjectInfo{}, err
	}
	sum := md5.Sum(md5s)
	v := &memVersion{data: data, partSizes: sizes, info: objects.ObjectInfo{
		Bucket: bucket, Key: key, Size: int64(len(data)), LastModified: m.now(), IsLatest: true,
		ETag:        fmt.Sprintf(`"%s-%d"`, hex.EncodeToString(sum[:]), len(parts)),
		ContentType: u.opts.ContentType, Headers: u.opts.Headers, UserMeta: u.opts.UserMeta, Parts: len(parts),
	}}
	m.commit(b, key, v)
	delete(m.uploads, uploadID)
	return v.info, nil
}

func (m *memAPI) AbortMultipartUpload(ctx context.Context, bucket, key, uploadID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.upload(bucket, key, uploadID); err != nil {
		return err
	}
	delete(m.uploads, uploadID)
	return nil
}

func (m *memAPI) ListParts(ctx context.Context, bucket, key, uploadID string, opts objects.ListPartsOptions) (objects.ListPartsResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, err := m.upload(bucket, key, uploadID)
	if err != nil {
		return objects.ListPartsResult{}, err
	}
	var nums []int
	for n := range u.parts {
		if n > opts.PartNumberMarker {
			nums = append(nums, n)
		}
	}
	sort.Ints(nums)
	res := objects.ListPartsResult{Initiated: u.initiated, ChecksumAlgorithm: u.opts.ChecksumAlgorithm}
	for _, n := range nums {
		if len(res.Parts) == opts.MaxParts {
			res.IsTruncated = true
			break
		}
		res.Parts = append(res.Parts, u.parts[n].info)
		res.NextPartNumberMarker = n
	}
	return res, nil
}

func (m *memAPI) ListMultipartUploads(ctx context.Context, bucket string, opts objects.ListUploadsOptions) (objects.ListUploadsResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.bucket(bucket); err != nil {
		return objects.ListUploadsResult{}, err
	}
	var res objects.ListUploadsResult
	for id, u := range m.uploads {
		if u.bucket == bucket && strings.HasPrefix(u.key, opts.Prefix) {
			res.Uploads = append(res.Uploads, objects.Upload{Key: u.key, UploadID: id, Initiated: u.initiated})
		}
	}
	sort.Slice(res.Uploads, func(i, j int) bool { return res.Uploads[i].Key < res.Uploads[j].Key })
	return res, nil
}

// b64md5 is the Content-MD5 of data.
func b64md5(data []byte) string {
	s := md5.Sum(data)
	return base64.StdEncoding.EncodeToString(s[:])
}
