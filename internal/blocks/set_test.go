package blocks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/redoubt-io/redoubt/internal/testlog"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/placement"
	"github.com/redoubt-io/redoubt/internal/store"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testlog.Writer(t), nil))
}

func seeded(t testing.TB) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// env is a Set over temp drive directories.
type env struct {
	t      testing.TB
	paths  []string
	cfg    Config
	scfg   store.Config
	set    *Set
	drives []*store.Drive
}

const testChunk = 4 << 10

func newEnv(t testing.TB, drives int, pol placement.Policy) *env {
	t.Helper()
	root := t.TempDir()
	e := &env{t: t, cfg: DefaultConfig(pol), scfg: store.DefaultConfig()}
	e.cfg.ChunkSize = testChunk
	e.scfg.BlockSize = 1024
	e.scfg.WriteBuffer = 4096
	for i := range drives {
		e.paths = append(e.paths, filepath.Join(root, fmt.Sprintf("drive%d", i)))
	}
	e.reopen()
	return e
}

// reopen opens the drives and the set afresh, as a restarted node would.
func (e *env) reopen() {
	e.t.Helper()
	ds, err := store.Open(context.Background(), e.scfg, e.paths, testLogger(e.t))
	if err != nil {
		e.t.Fatal(err)
	}
	s, err := New(e.cfg, ds, testLogger(e.t))
	if err != nil {
		e.t.Fatal(err)
	}
	e.set, e.drives = s, ds
}

func (e *env) write(data []byte) Ref {
	e.t.Helper()
	ref, err := e.set.Write(context.Background(), 0, bytes.NewReader(data))
	if err != nil {
		e.t.Fatal(err)
	}
	if ref.Size != int64(len(data)) {
		e.t.Fatalf("ref size %d, wrote %d", ref.Size, len(data))
	}
	return ref
}

func (e *env) read(ref Ref, off, n int64) ([]byte, error) {
	rc, err := e.set.Open(context.Background(), ref, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func (e *env) mustRead(ref Ref, want []byte) {
	e.t.Helper()
	got, err := e.read(ref, 0, -1)
	if err != nil {
		e.t.Fatalf("read %s: %v", ref.ID, err)
	}
	if !bytes.Equal(got, want) {
		e.t.Fatalf("read %s: %d bytes differ from the %d written", ref.ID, len(got), len(want))
	}
}

func (e *env) driveIndex(id string) int {
	for i, d := range e.drives {
		if d.ID() == id {
			return i
		}
	}
	e.t.Fatalf("drive %s unknown", id)
	return -1
}

func (e *env) shardFile(ref Ref, i int) string {
	d := e.paths[e.driveIndex(ref.Drives[i])]
	return filepath.Join(d, "shards", ref.ID[0:2], ref.ID[2:4], fmt.Sprintf("%s.%d", ref.ID, i))
}

func sizes(stripe int) []int {
	return []int{0, 1, stripe - 1, stripe, stripe + 1, 5*stripe + 17, 2 * stripe}
}

func TestRoundTripDefaultPolicies(t *testing.T) {
	rng := seeded(t)
	for drives := 1; drives <= 7; drives++ {
		pol := placement.DefaultPolicy(drives)
		t.Run(fmt.Sprintf("%d drives %v", drives, pol), func(t *testing.T) {
			e := newEnv(t, drives, pol)
			stripe := testChunk * pol.K
			for _, n := range sizes(stripe) {
				data := randBytes(rng, n)
				ref := e.write(data)
				if len(ref.Drives) != pol.Shards() {
					t.Fatalf("ref names %d drives, want %d", len(ref.Drives), pol.Shards())
				}
				seen := map[string]bool{}
				for _, id := range ref.Drives {
					if seen[id] {
						t.Fatalf("two shards on drive %s", id)
					}
					seen[id] = true
				}
				e.mustRead(ref, data)
				b, _ := ref.MarshalBinary()
				var back Ref
				if err := back.UnmarshalBinary(b); err != nil {
					t.Fatal(err)
				}
				e.mustRead(back, data)
			}
		})
	}
}

func TestRanges(t *testing.T) {
	rng := seeded(t)
	for _, pol := range []placement.Policy{{K: 2, M: 2}, {K: 1, M: 1, Mirror: true}, {K: 3, M: 2}} {
		e := newEnv(t, pol.Shards(), pol)
		stripe := testChunk * pol.K
		data := randBytes(rng, 7*stripe+123)
		ref := e.write(data)
		check := func(off, n int64) {
			got, err := e.read(ref, off, n)
			if err != nil {
				t.Fatalf("%v range %d+%d: %v", pol, off, n, err)
			}
			end := min(off+n, int64(len(data)))
			if n < 0 {
				end = int64(len(data))
			}
			if !bytes.Equal(got, data[off:end]) {
				t.Fatalf("%v range %d+%d differs", pol, off, n)
			}
		}
		for _, c := range [][2]int64{{0, 0}, {0, 1}, {int64(stripe) - 1, 2}, {int64(stripe), int64(stripe)}, {int64(len(data)) - 1, 1}, {int64(len(data)), 5}, {10, -1}, {100, 1 << 40}} {
			check(c[0], c[1])
		}
		for range 100 {
			off := rng.Int64N(int64(len(data)))
			check(off, rng.Int64N(int64(len(data))-off+1))
		}
		// With every block of shard 0 corrupt, ranges still read right.
		p := e.shardFile(ref, 0)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for i := 40; i < len(b); i += 1000 {
			b[i] ^= 0xff
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		for range 50 {
			off := rng.Int64N(int64(len(data)))
			check(off, rng.Int64N(int64(len(data))-off+1))
		}
		if e.set.CorruptShards() == 0 {
			t.Fatalf("%v: corruption of shard 0 not seen", pol)
		}
		if _, err := e.set.Open(context.Background(), ref, int64(len(data))+1, 1); !errors.Is(err, ErrRange) {
			t.Fatalf("offset past end: %v", err)
		}
		if _, err := e.set.Open(context.Background(), ref, -1, 1); !errors.Is(err, ErrRange) {
			t.Fatalf("negative offset: %v", err)
		}
	}
}

// subsets returns every subset of {0..n-1} with k elements.
func subsets(n, k int) [][]int {
	if k == 0 {
		return [][]int{nil}
	}
	var out [][]int
	for first := 0; first < n; first++ {
		for _, rest := range subsets(n-first-1, k-1) {
			s := []int{first}
			for _, r := range rest {
				s = append(s, first+1+r)
			}
			out = append(out, s)
		}
	}
	return out
}

func TestLoseAnyMDrivesWhileRunning(t *testing.T) {
	rng := seeded(t)
	for _, pol := range []placement.Policy{{K: 2, M: 2}, {K: 1, M: 1, Mirror: true}, {K: 2, M: 1}, {K: 3, M: 2}} {
		n := pol.Shards()
		for _, lost := range subsets(n, pol.M) {
			e := newEnv(t, n, pol)
			data := randBytes(rng, 3*testChunk*pol.K+99)
			ref := e.write(data)
			for _, i := range lost {
				if err := os.RemoveAll(e.paths[i]); err != nil {
					t.Fatal(err)
				}
			}
			e.mustRead(ref, data)
			got, err := e.read(ref, int64(testChunk)+5, 1000)
			if err != nil || !bytes.Equal(got, data[testChunk+5:testChunk+1005]) {
				t.Fatalf("%v lost %v: range read: %v", pol, lost, err)
			}
			e.set.CheckDrives()
			for _, i := range lost {
				if e.drives[i].State() != store.Failed {
					t.Fatalf("%v lost %v: drive %d not marked failed", pol, lost, i)
				}
			}
		}
	}
}

func TestLoseMDrivesBeforeStart(t *testing.T) {
	rng := seeded(t)
	pol := placement.Policy{K: 2, M: 2}
	for _, lost := range subsets(4, 2) {
		e := newEnv(t, 4, pol)
		data := randBytes(rng, 5*testChunk+7)
		ref := e.write(data)
		for _, i := range lost {
			os.RemoveAll(e.paths[i])
		}
		e.reopen()
		e.mustRead(ref, data)
		// One more lost is one too many.
		for i := range 4 {
			if i != lost[0] && i != lost[1] {
				os.RemoveAll(e.paths[i])
				break
			}
		}
		if _, err := e.read(ref, 0, -1); !errors.Is(err, ErrUnreadable) {
			t.Fatalf("three of four drives lost: got %v, want ErrUnreadable", err)
		}
	}
}

func TestCorruptionDetectedAndRepaired(t *testing.T) {
	rng := seeded(t)
	var noted []string
	for _, pol := range []placement.Policy{{K: 2, M: 2}, {K: 1, M: 2, Mirror: true}} {
		e := newEnv(t, pol.Shards(), pol)
		e.cfg.OnNeedsRepair = func(r Ref) { noted = append(noted, r.ID) }
		e.reopen()
		data := randBytes(rng, 6*testChunk*pol.K+1)
		ref := e.write(data)
		// Flip bytes in the first m shard files, which a read prefers,
		// anywhere, headers included.
		for i := range pol.M {
			p := e.shardFile(ref, i)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			for range 1 + rng.IntN(3) {
				b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		e.mustRead(ref, data)
		if e.set.CorruptShards() == 0 {
			t.Fatalf("%v: corruption not counted", pol)
		}
		var corrupt uint64
		for _, st := range e.set.Status() {
			corrupt += st.CorruptBlocks
		}
		if corrupt == 0 {
			t.Fatalf("%v: no drive counted a corrupt block", pol)
		}
		need := e.set.NeedsRepair()
		if len(need) != 1 || need[0].ID != ref.ID {
			t.Fatalf("%v: NeedsRepair = %v", pol, need)
		}
		n, err := e.set.Repair(context.Background(), ref)
		if err != nil || n != pol.M {
			t.Fatalf("%v: Repair = %d, %v; want %d", pol, n, err, pol.M)
		}
		if n, err := e.set.Repair(context.Background(), ref); err != nil || n != 0 {
			t.Fatalf("%v: second Repair = %d, %v", pol, n, err)
		}
		// Now any m other drives may go.
		before := e.set.CorruptShards()
		e.mustRead(ref, data)
		if e.set.CorruptShards() != before {
			t.Fatal("corruption found after repair")
		}
	}
	if len(noted) != 2 {
		t.Fatalf("OnNeedsRepair called %d times, want 2", len(noted))
	}
}

func TestWriteBelowQuorumFails(t *testing.T) {
	rng := seeded(t)
	for _, tc := range []struct {
		pol  placement.Policy
		down int
	}{
		{placement.Policy{K: 2, M: 2}, 2},
		{placement.Policy{K: 1, M: 1, Mirror: true}, 1},
		{placement.Policy{K: 1, M: 0, Mirror: true}, 1},
	} {
		e := newEnv(t, tc.pol.Shards(), tc.pol)
		for i := range tc.down {
			os.RemoveAll(e.paths[i])
		}
		_, err := e.set.Write(context.Background(), 0, bytes.NewReader(randBytes(rng, 3*testChunk)))
		if !errors.Is(err, ErrQuorum) {
			t.Fatalf("%v with %d drives down: got %v, want ErrQuorum", tc.pol, tc.down, err)
		}
		for _, p := range e.paths[tc.down:] {
			assertNoShards(t, p)
		}
	}
	// One drive down of EC 2+2 still meets the quorum of 3.
	e := newEnv(t, 4, placement.Policy{K: 2, M: 2})
	os.RemoveAll(e.paths[1])
	data := randBytes(rng, 3*testChunk)
	ref := e.write(data)
	e.mustRead(ref, data)
	if need := e.set.NeedsRepair(); len(need) != 1 {
		t.Fatalf("degraded write not noted for repair: %v", need)
	}
}

type failingReader struct {
	r     io.Reader
	after int
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errors.New("connection reset")
	}
	p = p[:min(len(p), f.after)]
	n, err := f.r.Read(p)
	f.after -= n
	return n, err
}

func TestWriteReaderErrorLeavesNothing(t *testing.T) {
	rng := seeded(t)
	e := newEnv(t, 4, placement.Policy{K: 2, M: 2})
	_, err := e.set.Write(context.Background(), 0, &failingReader{r: bytes.NewReader(randBytes(rng, 10*testChunk)), after: 5 * testChunk})
	if err == nil {
		t.Fatal("write succeeded over a failing body")
	}
	for _, p := range e.paths {
		assertNoShards(t, p)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.set.Write(ctx, 0, bytes.NewReader(randBytes(rng, 10))); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled write: %v", err)
	}
}

func assertNoShards(t testing.TB, drive string) {
	t.Helper()
	filepath.WalkDir(drive, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Base(p) != "redoubt-drive.json" {
			t.Errorf("left behind %s", p)
		}
		return nil
	})
}

func TestRepairRefillsWipedDrive(t *testing.T) {
	rng := seeded(t)
	pol := placement.Policy{K: 2, M: 2}
	e := newEnv(t, 4, pol)
	var refs []Ref
	var datas [][]byte
	for i := range 8 {
		d := randBytes(rng, i*testChunk+rng.IntN(3*testChunk))
		refs = append(refs, e.write(d))
		datas = append(datas, d)
	}
	// The disk behind drive 0 is replaced by an empty one while running.
	os.RemoveAll(e.paths[0])
	os.Mkdir(e.paths[0], 0o755)
	e.set.CheckDrives()
	d0 := e.drives[0]
	if d0.State() != store.Online || !d0.NeedsRepair() {
		t.Fatalf("wiped drive: state %v needs repair %v", d0.State(), d0.NeedsRepair())
	}
	total := 0
	for _, ref := range refs {
		n, err := e.set.Repair(context.Background(), ref)
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}
	want := 0
	for _, ref := range refs {
		for _, id := range ref.Drives {
			if id == d0.ID() {
				want++
			}
		}
	}
	if total != want || want == 0 {
		t.Fatalf("rebuilt %d shards, want %d", total, want)
	}
	if err := d0.ClearNeedsRepair(); err != nil {
		t.Fatal(err)
	}
	// Drive 0 now carries its share: lose two others and read everything.
	os.RemoveAll(e.paths[1])
	os.RemoveAll(e.paths[2])
	e.reopen()
	for i, ref := range refs {
		e.mustRead(ref, datas[i])
	}
}

func TestDelete(t *testing.T) {
	rng := seeded(t)
	e := newEnv(t, 4, placement.Policy{K: 2, M: 2})
	ref := e.write(randBytes(rng, 3*testChunk))
	if err := e.set.Delete(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	for _, p := range e.paths {
		assertNoShards(t, p)
	}
	if _, err := e.read(ref, 0, -1); !errors.Is(err, ErrUnreadable) {
		t.Fatalf("read after delete: %v", err)
	}
	if err := e.set.Delete(context.Background(), ref); err != nil {
		t.Fatalf("second delete: %v", err)
	}
}

func TestStatus(t *testing.T) {
	e := newEnv(t, 4, placement.Policy{K: 2, M: 2})
	e.mustRead(e.write([]byte("hello")), []byte("hello"))
	st := e.set.Status()
	var reads uint64
	for i, s := range st {
		if s.Path != e.paths[i] || s.State != store.Online || s.TotalBytes == 0 {
			t.Fatalf("status %d: %+v", i, s)
		}
		reads += s.ShardsRead
	}
	if reads != 2 {
		t.Fatalf("shards read %d, want 2 (the data shards)", reads)
	}
}

func TestNewRejectsTooFewDrives(t *testing.T) {
	e := newEnv(t, 3, placement.Policy{K: 2, M: 1})
	if _, err := New(DefaultConfig(placement.Policy{K: 2, M: 2}), e.drives, nil); err == nil {
		t.Fatal("EC 2+2 accepted on 3 drives")
	}
}

// gen is a deterministic stream of n bytes that costs no memory.
type gen struct {
	n, off int64
	pat    []byte
}

func (g *gen) Read(p []byte) (int, error) {
	if g.off >= g.n {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), g.n-g.off)]
	for i := 0; i < len(p); {
		i += copy(p[i:], g.pat[(g.off+int64(i))%int64(len(g.pat)):])
	}
	g.off += int64(len(p))
	return len(p), nil
}

func peakRSS(t testing.TB) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc")
	}
	var kb int64
	for _, line := range bytes.Split(b, []byte("\n")) {
		if bytes.HasPrefix(line, []byte("VmHWM:")) {
			fmt.Sscanf(string(line[6:]), "%d", &kb)
		}
	}
	return kb << 10
}

func TestLargeStreamBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 1 GiB")
	}
	rng := seeded(t)
	e := newEnv(t, 4, placement.Policy{K: 2, M: 2})
	e.cfg.ChunkSize = 1 << 20
	e.scfg = store.DefaultConfig()
	e.reopen()
	const size = 1 << 30
	pat := randBytes(rng, 1<<20+13) // odd length: chunks differ
	start := time.Now()
	ref, err := e.set.Write(context.Background(), 0, &gen{n: size, pat: pat})
	if err != nil {
		t.Fatal(err)
	}
	wrote := time.Since(start)
	rc, err := e.set.Open(context.Background(), ref, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	want := &gen{n: size, pat: pat}
	got := make([]byte, 1<<20)
	exp := make([]byte, 1<<20)
	var total int64
	for {
		n, err := io.ReadFull(rc, got)
		if n > 0 {
			want.Read(exp[:n])
			if !bytes.Equal(got[:n], exp[:n]) {
				t.Fatalf("data differs near offset %d", total)
			}
			total += int64(n)
		}
		if err != nil {
			break
		}
	}
	rc.Close()
	if total != size {
		t.Fatalf("read %d bytes, want %d", total, size)
	}
	rss := peakRSS(t)
	t.Logf("1 GiB: write %v (%.0f MB/s), peak RSS %d MiB", wrote, size/wrote.Seconds()/1e6, rss>>20)
	if rss > 128<<20 {
		t.Fatalf("peak RSS %d MiB for a streamed 1 GiB object", rss>>20)
	}
}

func FuzzRefUnmarshal(f *testing.F) {
	good, _ := Ref{ID: "0123456789abcdef", Size: 5, K: 2, M: 2, ChunkSize: 2 << 20, Drives: []string{"a", "b", "c", "d"}}.MarshalBinary()
	f.Add(good)
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Ref
		if err := r.UnmarshalBinary(b); err != nil {
			if !errors.Is(err, ErrBadRef) {
				t.Fatalf("error %v is not ErrBadRef", err)
			}
			return
		}
		again, _ := r.MarshalBinary()
		var r2 Ref
		if err := r2.UnmarshalBinary(again); err != nil {
			t.Fatalf("re-encoded ref does not decode: %v", err)
		}
	})
}

func TestWriteSkipsFailedDriveWhenSpareExists(t *testing.T) {
	rng := seeded(t)
	e := newEnv(t, 5, placement.Policy{K: 2, M: 2})
	os.RemoveAll(e.paths[3])
	e.set.CheckDrives()
	spread := map[string]int{}
	for range 20 {
		data := randBytes(rng, 2*testChunk+1)
		ref := e.write(data)
		for _, id := range ref.Drives {
			if id == e.drives[3].ID() {
				t.Fatalf("shard placed on failed drive")
			}
			spread[id]++
		}
		e.mustRead(ref, data)
	}
	if len(spread) != 4 {
		t.Fatalf("shards spread over %d drives, want the 4 healthy ones", len(spread))
	}
	if need := e.set.NeedsRepair(); len(need) != 0 {
		t.Fatalf("full-width writes noted for repair: %d", len(need))
	}
}
