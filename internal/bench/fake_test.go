package bench

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// fakeS3 is a minimal in-memory S3 for path-style requests. It checks no
// signatures, but does decode aws-chunked bodies and checks their lengths.
type fakeS3 struct {
	t  *testing.T
	mu struct {
		sync.Mutex
		buckets map[string]*fakeBucket
	}
	// fail, if set, may answer a request with an error status instead.
	fail func(r *http.Request) int
	// truncateGets makes GET bodies one byte short (with a matching length).
	truncateGets bool

	puts, gets, heads, lists atomic.Int64
	contentSHA               sync.Map // x-amz-content-sha256 values seen on PUT
	chunked                  atomic.Int64
}

type fakeBucket struct {
	objects map[string][]byte
	keys    []string // sorted
}

func newFakeS3(t *testing.T) *fakeS3 {
	f := &fakeS3{t: t}
	f.mu.buckets = map[string]*fakeBucket{}
	return f
}

func (f *fakeS3) objectCount(bucket string) (int, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.mu.buckets[bucket]
	if !ok {
		return 0, false
	}
	return len(b.objects), true
}

func s3Error(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message></Error>`, code, code)
}

func (f *fakeS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") == "" {
		s3Error(w, http.StatusForbidden, "AccessDenied")
		return
	}
	if f.fail != nil {
		if st := f.fail(r); st != 0 {
			io.Copy(io.Discard, r.Body)
			s3Error(w, st, "InternalError")
			return
		}
	}
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	q := r.URL.Query()
	switch {
	case key == "" && r.Method == http.MethodHead:
		if _, ok := f.objectCount(bucket); !ok {
			w.WriteHeader(http.StatusNotFound)
		}
	case key == "" && r.Method == http.MethodPut:
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.mu.buckets[bucket]; ok {
			s3Error(w, http.StatusConflict, "BucketAlreadyOwnedByYou")
			return
		}
		f.mu.buckets[bucket] = &fakeBucket{objects: map[string][]byte{}}
	case key == "" && r.Method == http.MethodDelete:
		f.mu.Lock()
		defer f.mu.Unlock()
		b, ok := f.mu.buckets[bucket]
		switch {
		case !ok:
			s3Error(w, http.StatusNotFound, "NoSuchBucket")
		case len(b.objects) > 0:
			s3Error(w, http.StatusConflict, "BucketNotEmpty")
		default:
			delete(f.mu.buckets, bucket)
			w.WriteHeader(http.StatusNoContent)
		}
	case key == "" && r.Method == http.MethodGet && q.Get("list-type") == "2":
		f.list(w, bucket, q)
	case key == "" && r.Method == http.MethodPost && q.Has("delete"):
		f.deleteObjects(w, r, bucket)
	case key != "" && r.Method == http.MethodPut:
		f.put(w, r, bucket, key)
	case key != "" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		f.mu.Lock()
		b, ok := f.mu.buckets[bucket]
		var data []byte
		if ok {
			data, ok = b.objects[key]
		}
		f.mu.Unlock()
		if !ok {
			s3Error(w, http.StatusNotFound, "NoSuchKey")
			return
		}
		if f.truncateGets && len(data) > 0 {
			data = data[:len(data)-1]
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Header().Set("ETag", `"fake"`)
		if r.Method == http.MethodHead {
			f.heads.Add(1)
			return
		}
		f.gets.Add(1)
		w.Write(data)
	case key != "" && r.Method == http.MethodDelete:
		f.mu.Lock()
		if b, ok := f.mu.buckets[bucket]; ok {
			b.remove(key)
		}
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	default:
		s3Error(w, http.StatusNotImplemented, "NotImplemented")
	}
}

func (b *fakeBucket) remove(key string) {
	if _, ok := b.objects[key]; !ok {
		return
	}
	delete(b.objects, key)
	i, _ := slices.BinarySearch(b.keys, key)
	b.keys = slices.Delete(b.keys, i, i+1)
}

func (f *fakeS3) put(w http.ResponseWriter, r *http.Request, bucket, key string) {
	f.contentSHA.Store(r.Header.Get("X-Amz-Content-Sha256"), true)
	var body io.Reader = r.Body
	want := r.ContentLength
	if strings.Contains(r.Header.Get("Content-Encoding"), "aws-chunked") {
		f.chunked.Add(1)
		n, err := strconv.ParseInt(r.Header.Get("X-Amz-Decoded-Content-Length"), 10, 64)
		if err != nil {
			s3Error(w, http.StatusBadRequest, "MissingContentLength")
			return
		}
		want = n
		body = decodeAWSChunked(r.Body)
	}
	data, err := io.ReadAll(body)
	if err != nil {
		// The client went away mid-body, as a cancelled run does.
		s3Error(w, http.StatusBadRequest, "IncompleteBody")
		return
	}
	if int64(len(data)) != want {
		f.t.Errorf("fake s3: PUT %s: read %d bytes, want %d: %v", key, len(data), want, err)
		s3Error(w, http.StatusBadRequest, "IncompleteBody")
		return
	}
	f.mu.Lock()
	b, ok := f.mu.buckets[bucket]
	if ok {
		if _, exists := b.objects[key]; !exists {
			i, _ := slices.BinarySearch(b.keys, key)
			b.keys = slices.Insert(b.keys, i, key)
		}
		b.objects[key] = data
	}
	f.mu.Unlock()
	if !ok {
		s3Error(w, http.StatusNotFound, "NoSuchBucket")
		return
	}
	f.puts.Add(1)
	w.Header().Set("ETag", `"fake"`)
}

// decodeAWSChunked strips aws-chunked framing: "<hex>[;ext]\r\n<data>\r\n"
// repeated, a zero-length chunk, then trailers. Framing errors surface as
// read errors.
func decodeAWSChunked(r io.Reader) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		br := bufio.NewReader(r)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				pw.CloseWithError(fmt.Errorf("chunk header: %w", err))
				return
			}
			sizeHex, _, _ := strings.Cut(strings.TrimRight(line, "\r\n"), ";")
			n, err := strconv.ParseInt(sizeHex, 16, 64)
			if err != nil {
				pw.CloseWithError(fmt.Errorf("chunk size %q: %w", line, err))
				return
			}
			if n == 0 {
				io.Copy(io.Discard, br) // trailers
				pw.Close()
				return
			}
			if _, err := io.CopyN(pw, br, n); err != nil {
				pw.CloseWithError(err)
				return
			}
			if crlf, err := br.ReadString('\n'); err != nil || crlf != "\r\n" {
				pw.CloseWithError(fmt.Errorf("chunk end %q: %v", crlf, err))
				return
			}
		}
	}()
	return pr
}

func (f *fakeS3) list(w http.ResponseWriter, bucket string, q map[string][]string) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	prefix, after := get("prefix"), get("start-after")
	if tok := get("continuation-token"); tok != "" {
		after = tok
	}
	maxKeys := 1000
	if v := get("max-keys"); v != "" {
		maxKeys, _ = strconv.Atoi(v)
	}
	type content struct {
		Key  string
		Size int
		ETag string
	}
	var out struct {
		XMLName               xml.Name `xml:"ListBucketResult"`
		Name                  string
		Prefix                string
		KeyCount              int
		MaxKeys               int
		IsTruncated           bool
		NextContinuationToken string `xml:",omitempty"`
		Contents              []content
	}
	out.Name, out.Prefix, out.MaxKeys = bucket, prefix, maxKeys
	f.mu.Lock()
	b, ok := f.mu.buckets[bucket]
	if ok {
		i, found := slices.BinarySearch(b.keys, max(after, prefix))
		if found && after >= prefix {
			i++
		}
		for ; i < len(b.keys) && strings.HasPrefix(b.keys[i], prefix); i++ {
			if len(out.Contents) == maxKeys {
				out.IsTruncated = true
				out.NextContinuationToken = out.Contents[len(out.Contents)-1].Key
				break
			}
			k := b.keys[i]
			out.Contents = append(out.Contents, content{Key: k, Size: len(b.objects[k]), ETag: `"fake"`})
		}
	}
	f.mu.Unlock()
	if !ok {
		s3Error(w, http.StatusNotFound, "NoSuchBucket")
		return
	}
	f.lists.Add(1)
	out.KeyCount = len(out.Contents)
	w.Header().Set("Content-Type", "application/xml")
	xml.NewEncoder(w).Encode(out)
}

func (f *fakeS3) deleteObjects(w http.ResponseWriter, r *http.Request, bucket string) {
	var req struct {
		Object []struct{ Key string }
	}
	if err := xml.NewDecoder(r.Body).Decode(&req); err != nil {
		s3Error(w, http.StatusBadRequest, "MalformedXML")
		return
	}
	f.mu.Lock()
	if b, ok := f.mu.buckets[bucket]; ok {
		for _, o := range req.Object {
			b.remove(o.Key)
		}
	}
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/xml")
	io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><DeleteResult></DeleteResult>`)
}
