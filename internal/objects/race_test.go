package objects

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// TestConditionalCreateRace races many creators of one key with
// If-None-Match "*": exactly one wins; the others get
// ErrPreconditionFailed and leave no data behind.
func TestConditionalCreateRace(t *testing.T) {
	for _, v := range []Versioning{Unversioned, Enabled} {
		for _, size := range []int{10, 200} {
			t.Run(fmt.Sprintf("versioning=%d/size=%d", v, size), func(t *testing.T) {
				e := newEnv(t)
				e.bucket("race", v)
				// Unrelated writes to other keys of the same partitions
				// make commits conflict for reasons other than the race.
				const G = 32
				var wg sync.WaitGroup
				errs := make([]error, G)
				start := make(chan struct{})
				for g := 0; g < G; g++ {
					wg.Add(2)
					go func() {
						defer wg.Done()
						<-start
						body := big(size, byte(g))
						_, errs[g] = e.s.PutObject(e.ctx, "race", "the-key", strings.NewReader(body), int64(size), PutOptions{IfNoneMatch: "*"})
					}()
					go func() {
						defer wg.Done()
						<-start
						for i := 0; i < 5; i++ {
							e.put("race", fmt.Sprintf("other-%d-%d", g, i), "x")
						}
					}()
				}
				close(start)
				wg.Wait()
				wins := 0
				for _, err := range errs {
					switch {
					case err == nil:
						wins++
					case errors.Is(err, ErrPreconditionFailed):
					default:
						t.Fatalf("unexpected error %v", err)
					}
				}
				if wins != 1 {
					t.Fatalf("%d winners", wins)
				}
				if vs := versionsOf(t, e, "race"); len(vs) != 1+G*5 {
					t.Fatalf("%d versions", len(vs))
				}
			})
		}
	}
}

// TestIfMatchRace: writers each replace the version they read; a chain of
// compare-and-swap updates loses none.
func TestIfMatchRace(t *testing.T) {
	e := newEnv(t)
	e.bucket("race", Unversioned)
	e.put("race", "counter", "0")
	const G, N = 8, 20
	var wg sync.WaitGroup
	for g := 0; g < G; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done := 0; done < N; {
				oi, body, err := e.get("race", "counter", GetOptions{})
				if err != nil {
					t.Error(err)
					return
				}
				var n int
				fmt.Sscan(body, &n)
				next := fmt.Sprint(n + 1)
				_, err = e.s.PutObject(e.ctx, "race", "counter", strings.NewReader(next), int64(len(next)), PutOptions{IfMatch: oi.ETag})
				if errors.Is(err, ErrPreconditionFailed) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				done++
			}
		}()
	}
	wg.Wait()
	if got := e.mustGet("race", "counter", GetOptions{}); got != fmt.Sprint(G*N) {
		t.Fatalf("counter %s, want %d", got, G*N)
	}
}

// TestDeleteIfMatchRace: of deleters racing with the same If-Match on a
// versioned key, exactly one places a marker.
func TestDeleteIfMatchRace(t *testing.T) {
	e := newEnv(t)
	e.bucket("race", Enabled)
	oi := e.put("race", "k", "v")
	const G = 16
	var wg sync.WaitGroup
	errs := make([]error, G)
	for g := 0; g < G; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[g] = e.s.DeleteObject(e.ctx, "race", "k", DeleteOptions{IfMatch: oi.ETag})
		}()
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		if err == nil {
			wins++
		} else if !errors.Is(err, ErrNoSuchKey) && !errors.Is(err, ErrPreconditionFailed) {
			t.Fatal(err)
		}
	}
	if wins != 1 || len(versionsOf(t, e, "race")) != 2 {
		t.Fatalf("%d winners, versions %+v", wins, versionsOf(t, e, "race"))
	}
}

// TestConcurrentVersionedPuts: unconditional writers to one key all
// succeed, each as its own version, and the latest has the greatest ID.
func TestConcurrentVersionedPuts(t *testing.T) {
	e := newEnv(t)
	e.bucket("race", Enabled)
	const G = 24
	var wg sync.WaitGroup
	for g := 0; g < G; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := big(70+g, byte(g))
			if _, err := e.s.PutObject(e.ctx, "race", "k", strings.NewReader(body), int64(len(body)), PutOptions{}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	vs := versionsOf(t, e, "race")
	if len(vs) != G {
		t.Fatalf("%d versions", len(vs))
	}
	for i := 1; i < len(vs); i++ {
		if !(vs[i].VersionID < vs[i-1].VersionID) {
			t.Fatalf("not newest first at %d", i)
		}
	}
	oi, _, err := e.get("race", "k", GetOptions{})
	if err != nil || oi.VersionID != vs[0].VersionID {
		t.Fatalf("latest %+v %v", oi, err)
	}
}

// TestConcurrentUnversionedPutsKeepNoGarbage: overwriting racers leave
// exactly one version and only its data.
func TestConcurrentUnversionedPutsKeepNoGarbage(t *testing.T) {
	e := newEnv(t)
	e.bucket("race", Unversioned)
	const G = 24
	var wg sync.WaitGroup
	for g := 0; g < G; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := big(70+g, byte(g))
			if _, err := e.s.PutObject(e.ctx, "race", "k", strings.NewReader(body), int64(len(body)), PutOptions{}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if vs := versionsOf(t, e, "race"); len(vs) != 1 {
		t.Fatalf("%d versions", len(vs))
	}
	if ids := e.data.ids(); len(ids) != 1 {
		t.Fatalf("data %v", ids)
	}
}
