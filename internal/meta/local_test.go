package meta

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// dumpReplica returns every data key of the closed replica in dir with its
// stored value (revision included), and its applied mark.
func dumpReplica(t fataler, dir string) (map[string]string, uint64) {
	t.Helper()
	db, err := pebble.Open(filepath.Join(dir, pebbleSubdir), &pebble.Options{ReadOnly: true, Logger: pebbleQuiet{}})
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	defer db.Close()
	out := make(map[string]string)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{dataPrefix}, UpperBound: []byte{dataPrefix + 1}})
	if err != nil {
		t.Fatal(err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		out[string(it.Key())] = string(it.Value())
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	v, c, err := db.Get(appliedKey)
	if err != nil {
		t.Fatal(err)
	}
	applied := uint64(0)
	if len(v) == 8 {
		applied = uint64(v[0])<<56 | uint64(v[1])<<48 | uint64(v[2])<<40 | uint64(v[3])<<32 |
			uint64(v[4])<<24 | uint64(v[5])<<16 | uint64(v[6])<<8 | uint64(v[7])
	}
	c.Close()
	return out, applied
}

// fataler is what dumpReplica and checkIdentical need of a *testing.T or a
// *rapid.T.
type fataler interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

type pebbleQuiet struct{}

func (pebbleQuiet) Infof(string, ...any)                   {}
func (pebbleQuiet) Errorf(string, ...any)                  {}
func (pebbleQuiet) Fatalf(f string, a ...any)              { panic(fmt.Sprintf(f, a...)) }
func (pebbleQuiet) Eventf(context.Context, string, ...any) {}

// checkIdentical fails unless every closed replica in dirs holds the same
// data and applied mark, and returns the data.
func checkIdentical(t fataler, dirs []string) map[string]string {
	t.Helper()
	first, applied := dumpReplica(t, dirs[0])
	for _, d := range dirs[1:] {
		got, a := dumpReplica(t, d)
		if a != applied {
			t.Fatalf("replica %s applied %d, replica %s applied %d", dirs[0], applied, d, a)
		}
		if len(got) != len(first) {
			t.Fatalf("replica %s has %d keys, replica %s has %d", dirs[0], len(first), d, len(got))
		}
		for k, v := range first {
			if got[k] != v {
				t.Fatalf("replicas differ at %q: %q vs %q", k, v, got[k])
			}
		}
	}
	return first
}

func tempDirs(t *testing.T, n int) []string {
	var dirs []string
	for range n {
		dirs = append(dirs, t.TempDir())
	}
	return dirs
}

func mustCommit(t *testing.T, s Store, p Partition, txn Txn) uint64 {
	t.Helper()
	rev, err := s.Commit(context.Background(), p, txn)
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

func putTxn(k, v string) Txn {
	return Txn{Puts: []KV{{Key: []byte(k), Value: []byte(v)}}}
}

func checkAllHealthy(t *testing.T, l *Local) {
	t.Helper()
	for _, st := range l.Status() {
		if st.State != ReplicaHealthy {
			t.Fatalf("replica %s is %v: %v", st.Dir, st.State, st.Err)
		}
	}
}

// TestLocalReplayMissedCommits leaves replicas behind as a crash between
// replicas would, and checks that open replays what they missed.
func TestLocalReplayMissedCommits(t *testing.T) {
	ctx := context.Background()
	dirs := tempDirs(t, 3)
	l := newTestLocal(t, dirs...)
	want := make(map[string]uint64)
	commit := func(p Partition, k string) {
		want[fmt.Sprintf("%d/%s", p, k)] = mustCommit(t, l, p, putTxn(k, k))
	}
	for i := range 10 {
		commit(Partition(i%3), fmt.Sprint("all", i))
	}
	// Replica 2 stops receiving, then replica 1: each lags by a suffix.
	l.testSkip = func(i int) bool { return i == 2 }
	for i := range 7 {
		commit(Partition(i%3), fmt.Sprint("two", i))
	}
	rev := mustCommit(t, l, 1, putTxn("gone", "x"))
	mustCommit(t, l, 1, Txn{Conds: []Cond{{Key: []byte("gone"), Rev: rev}}, Deletes: [][]byte{[]byte("gone")}})
	l.testSkip = func(i int) bool { return i != 0 }
	for i := range 5 {
		commit(Partition(i%3), fmt.Sprint("one", i))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, a := dumpReplica(t, dirs[2]); a == 0 {
		t.Fatal("replica 2 never received a commit")
	}

	l = newTestLocal(t, dirs...)
	checkAllHealthy(t, l)
	for pk, rev := range want {
		p, k, _ := strings.Cut(pk, "/")
		pn, _ := strconv.Atoi(p)
		it, err := l.Get(ctx, Partition(pn), []byte(k))
		if err != nil || it.Rev != rev || string(it.Value) != k {
			t.Fatalf("%s = %q@%d, %v; want @%d", pk, it.Value, it.Rev, err, rev)
		}
	}
	if _, err := l.Get(ctx, 1, []byte("gone")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted key: %v", err)
	}
	// Revisions continue above every revision handed out before.
	var max uint64
	for _, r := range want {
		max = maxU64(max, r)
	}
	if r := mustCommit(t, l, 0, putTxn("after", "x")); r <= max {
		t.Fatalf("revision %d after reopen, not above %d", r, max)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := checkIdentical(t, dirs); len(got) != len(want)+1 {
		t.Fatalf("%d keys, want %d", len(got), len(want)+1)
	}
}

func maxU64(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

// TestLocalRebuildLagging checks that a replica that missed more commits
// than the log keeps is rebuilt from a copy.
func TestLocalRebuildLagging(t *testing.T) {
	dirs := tempDirs(t, 2)
	cfg := DefaultLocalConfig(dirs...)
	cfg.Logger = testLogger(t)
	cfg.LogRing = 16
	l, err := OpenLocal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mustCommit(t, l, 0, putTxn("first", "x"))
	l.testSkip = func(i int) bool { return i == 1 }
	for i := range 50 {
		mustCommit(t, l, Partition(i%4), putTxn(fmt.Sprint("k", i), "v"))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if l, err = OpenLocal(cfg); err != nil {
		t.Fatal(err)
	}
	checkAllHealthy(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := checkIdentical(t, dirs); len(got) != 51 {
		t.Fatalf("%d keys, want 51", len(got))
	}
}

// TestLocalReplacedDrive checks that an empty replica dir (a new drive) is
// filled from the others, and that a drive missing at open is left out and
// rebuilt when it returns stale.
func TestLocalReplacedDrive(t *testing.T) {
	ctx := context.Background()
	dirs := tempDirs(t, 3)
	l := newTestLocal(t, dirs...)
	for i := range 20 {
		mustCommit(t, l, Partition(i%2), putTxn(fmt.Sprint("k", i), "v"))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// A new, empty drive.
	if err := os.RemoveAll(dirs[1]); err != nil {
		t.Fatal(err)
	}
	l = newTestLocal(t, dirs...)
	checkAllHealthy(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	checkIdentical(t, dirs)

	// A drive missing at open, back later with what it had.
	stale := dirs[2] + ".stale"
	if err := os.Rename(dirs[2], stale); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dirs[2], nil, 0o644); err != nil { // not a directory: cannot open
		t.Fatal(err)
	}
	l = newTestLocal(t, dirs...)
	if st := l.Status(); st[2].State != ReplicaFailed || st[2].Err == nil || st[0].State != ReplicaHealthy {
		t.Fatalf("status %+v", st)
	}
	mustCommit(t, l, 0, putTxn("while-missing", "v"))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(dirs[2]); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(stale, dirs[2]); err != nil {
		t.Fatal(err)
	}
	l = newTestLocal(t, dirs...)
	checkAllHealthy(t, l)
	if _, err := l.Get(ctx, 0, []byte("while-missing")); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := checkIdentical(t, dirs); len(got) != 21 {
		t.Fatalf("%d keys, want 21", len(got))
	}
}

// TestLocalNoReplicaLeft checks that losing every replica yields
// ErrUnavailable rather than a hang or a crash.
func TestLocalNoReplicaLeft(t *testing.T) {
	ctx := context.Background()
	dirs := tempDirs(t, 1)
	l := newTestLocal(t, dirs...)
	defer l.Close()
	mustCommit(t, l, 0, putTxn("k", "v"))
	if err := os.RemoveAll(dirs[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Commit(ctx, 0, putTxn("k2", "v")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("commit on a lost drive: %v", err)
	}
	if _, err := l.Get(ctx, 0, []byte("k")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("get with no replica: %v", err)
	}
	if err := l.Scan(ctx, 0, nil, nil, func([]byte, Item) bool { return true }); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("scan with no replica: %v", err)
	}
	if st := l.Status(); st[0].State != ReplicaFailed {
		t.Fatalf("status %+v", st)
	}
}

// TestLocalDriveLostWhileCommitting deletes one replica's directory while
// commits run; every commit must still succeed on the others.
func TestLocalDriveLostWhileCommitting(t *testing.T) {
	ctx := context.Background()
	dirs := tempDirs(t, 3)
	cfg := DefaultLocalConfig(dirs...)
	cfg.Logger = testLogger(t)
	cfg.MemTableBytes = 1 << 20 // rotate memtables and WALs often
	l, err := OpenLocal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	value := bytes.Repeat([]byte("v"), 2048)
	var done atomic.Int64
	var wg sync.WaitGroup
	const goroutines, per = 8, 400
	errc := make(chan error, goroutines)
	deleted := make(chan struct{})
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				k := []byte(fmt.Sprintf("g%d/%d", g, i))
				if _, err := l.Commit(ctx, Partition(i%16), Txn{Puts: []KV{{Key: k, Value: value}}}); err != nil {
					errc <- fmt.Errorf("commit %s: %w", k, err)
					return
				}
				if done.Add(1) == goroutines*per/4 {
					// Rename first: the directory vanishes at once, while
					// Pebble may still be creating files in it.
					lost := dirs[1] + ".lost"
					if err := os.Rename(dirs[1], lost); err != nil {
						errc <- err
					}
					_ = os.RemoveAll(lost)
					close(deleted)
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	<-deleted
	st := l.Status()
	if st[1].State != ReplicaFailed || st[0].State != ReplicaHealthy || st[2].State != ReplicaHealthy {
		t.Fatalf("status %+v", st)
	}
	for g := range goroutines {
		if _, err := l.Get(ctx, Partition((per-1)%16), []byte(fmt.Sprintf("g%d/%d", g, per-1))); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// The lost drive comes back empty and is rebuilt, unless Pebble failed
	// fatally on it: then a goroutine of the old database may still hold its
	// lock, and it can come back only after the process restarts.
	if l, err = OpenLocal(cfg); err != nil {
		t.Fatal(err)
	}
	st = l.Status()
	survivors := []string{dirs[0], dirs[2]}
	if st[1].State == ReplicaHealthy {
		survivors = dirs
	} else {
		t.Logf("lost replica not re-added: %v", st[1].Err)
	}
	if st[0].State != ReplicaHealthy || st[2].State != ReplicaHealthy {
		t.Fatalf("status %+v", st)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := checkIdentical(t, survivors); len(got) != goroutines*per {
		t.Fatalf("%d keys, want %d", len(got), goroutines*per)
	}
}

// TestLocalPebbleFailureIsContained commits past the loss of a replica's
// directory without the check that would normally fail it first: Pebble's
// own errors, fatal messages and panics must fail the replica, not the
// process, and commits must go on without waiting for it.
func TestLocalPebbleFailureIsContained(t *testing.T) {
	ctx := context.Background()
	dirs := tempDirs(t, 2)
	cfg := DefaultLocalConfig(dirs...)
	cfg.MemTableBytes = 1 << 20 // a new WAL soon, which Pebble cannot create
	cfg.Logger = testLogger(t)
	l, err := OpenLocal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := l.replicas[1]
	r.testNoPresenceCheck = true
	if err := os.RemoveAll(dirs[1]); err != nil {
		t.Fatal(err)
	}
	value := bytes.Repeat([]byte("v"), 8192)
	start := time.Now()
	n := 0
	for ; r.healthy(); n++ {
		if time.Since(start) > 20*time.Second {
			t.Fatal("pebble never noticed its directory was gone")
		}
		if _, err := l.Commit(ctx, 0, Txn{Puts: []KV{{Key: []byte(fmt.Sprint("k", n)), Value: value}}}); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("replica failed after %d commits in %v: %v", n, time.Since(start), l.Status()[1].Err)
	for i := range 100 {
		if _, err := l.Commit(ctx, 0, putTxn(fmt.Sprint("after", i), "v")); err != nil {
			t.Fatal(err)
		}
	}
	if st := l.Status(); st[1].State != ReplicaFailed || st[0].State != ReplicaHealthy {
		t.Fatalf("status %+v", st)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// The kill test runs a child process that commits until it is killed with
// SIGKILL, printing each acknowledged commit; the parent then checks that
// every acknowledged commit survived on every replica.
const killDirsEnv = "REDOUBT_META_KILL_DIRS"

func TestLocalKillHelper(t *testing.T) {
	dirs := os.Getenv(killDirsEnv)
	if dirs == "" {
		t.Skip("helper process for TestLocalKill9")
	}
	cfg := DefaultLocalConfig(strings.Split(dirs, ",")...)
	l, err := OpenLocal(cfg)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	prefix := strconv.FormatInt(time.Now().UnixNano(), 36)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				k := fmt.Sprintf("%s/%d/%d", prefix, g, i)
				rev, err := l.Commit(context.Background(), Partition(i%7), Txn{Puts: []KV{{Key: []byte(k), Value: []byte(k)}}})
				if err != nil {
					fmt.Println("error", err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintf(out, "%d %s %d\n", i%7, k, rev)
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

func TestLocalKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dirs := tempDirs(t, 3)
	type ack struct {
		p   Partition
		key string
		rev uint64
	}
	var acks []ack
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestLocalKillHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), killDirsEnv+"="+strings.Join(dirs, ","))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		n := 0
		killAt := 300 + round*500
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 3 && f[0] != "error" {
				p, _ := strconv.Atoi(f[0])
				rev, _ := strconv.ParseUint(f[2], 10, 64)
				acks = append(acks, ack{Partition(p), f[1], rev})
				n++
			} else {
				t.Logf("child: %s", sc.Text())
			}
			if n == killAt {
				_ = cmd.Process.Kill()
			}
		}
		_ = cmd.Wait()
		if n < killAt {
			t.Fatalf("round %d: child stopped after %d commits", round, n)
		}
		t.Logf("round %d: killed after %d acknowledged commits", round, n)

		l := newTestLocal(t, dirs...)
		checkAllHealthy(t, l)
		for _, a := range acks {
			it, err := l.Get(context.Background(), a.p, []byte(a.key))
			if err != nil || it.Rev != a.rev || string(it.Value) != a.key {
				t.Fatalf("acknowledged %s@%d: got %q@%d, %v", a.key, a.rev, it.Value, it.Rev, err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		checkIdentical(t, dirs)
	}
}
