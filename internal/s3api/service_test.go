package s3api_test

import (
	"bytes"
	"context"
	"fmt"
	"github.com/redoubt-io/redoubt/internal/testlog"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"

	"github.com/redoubt-io/redoubt/internal/blocks"
	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/objects"
)

// memData is an in-memory blocks.Store, enough to run objects.Service.
type memData struct {
	mu   sync.Mutex
	n    int
	data map[string][]byte
}

var _ blocks.Store = (*memData)(nil)

func (m *memData) Write(ctx context.Context, _ uint32, r io.Reader) (blocks.Ref, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return blocks.Ref{}, fmt.Errorf("memdata: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.n++
	id := "d" + strconv.Itoa(m.n)
	m.data[id] = b
	return blocks.Ref{ID: id, Size: int64(len(b)), K: 1, Mirror: true, ChunkSize: 1 << 20, Drives: []string{"mem"}}, nil
}

func (m *memData) Open(ctx context.Context, ref blocks.Ref, off, length int64) (io.ReadCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.data[ref.ID]
	if !ok || off < 0 || off+length > int64(len(b)) {
		return nil, fmt.Errorf("memdata: no data %s [%d,+%d)", ref.ID, off, length)
	}
	return io.NopCloser(bytes.NewReader(b[off : off+length])), nil
}

func (m *memData) Delete(ctx context.Context, ref blocks.Ref) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.data, ref.ID)
	return nil
}

func newService(t *testing.T) objects.API {
	svc, err := objects.New(objects.DefaultConfig(), meta.NewMem(), &memData{data: map[string][]byte{}},
		slog.New(slog.NewTextHandler(testlog.Writer(t), nil)))
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// The same client flows against the real object layer.
func TestServiceObjects(t *testing.T)    { testAWSSDKObjects(t, newService(t)) }
func TestServiceVersioning(t *testing.T) { testAWSSDKVersioning(t, newService(t)) }
func TestServiceMultipart(t *testing.T)  { testAWSSDKMultipart(t, newService(t)) }
func TestServiceMinio(t *testing.T)      { testMinioClient(t, newService(t)) }
