package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/admin"
	"github.com/redoubt-io/redoubt/internal/node"
)

const gib = 1 << 30

// The fake nodes take requests signed with these keys only.
const (
	testRootKey    = "TESTROOTKEY"
	testRootSecret = "test-root-secret"
)

// testConn calls addr with the test keys.
func testConn(addr string) *adminConn {
	return &adminConn{Client: &admin.Client{AccessKey: testRootKey, SecretKey: testRootSecret}, addr: addr, source: "the test"}
}

// signedByRoot reports whether r carries a SigV4 signature by the test
// root key (the fakes check who signed, not the signature itself; the
// node package checks signatures).
func signedByRoot(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential="+testRootKey+"/")
}

// fakeNode is one node's admin API as far as GET /repair goes: it answers
// the steps of its script in turn, then the last one for ever.
type fakeNode struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	script []node.RepairProgress
	calls  int
}

func newFakeNode(t *testing.T, script ...node.RepairProgress) *fakeNode {
	f := &fakeNode{t: t, script: script}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !signedByRoot(r) {
			t.Errorf("%s %s not signed by the root key", r.Method, r.URL.Path)
			http.Error(w, `{"error":"not signed"}`, http.StatusForbidden)
			return
		}
		if r.Method != http.MethodGet || r.URL.Path != "/repair" {
			t.Errorf("unexpected %s %s", r.Method, r.URL.Path)
			http.NotFound(w, r)
			return
		}
		f.mu.Lock()
		p := f.script[min(f.calls, len(f.script)-1)]
		f.calls++
		f.mu.Unlock()
		json.NewEncoder(w).Encode(p)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeNode) asked() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *fakeNode) addr() string { return f.srv.Listener.Addr().String() }

// fakeCluster is the node the CLI talks to: GET /status lists nodes, and
// POST /cluster/layout/apply answers a new layout version.
type fakeCluster struct {
	srv     *httptest.Server
	mu      sync.Mutex
	version uint64
	behind  int // status answers that still show the previous version
	nodes   []admin.NodeStatus
}

func newFakeCluster(t *testing.T, version uint64, nodes ...admin.NodeStatus) *fakeCluster {
	c := &fakeCluster{version: version, nodes: nodes}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case !signedByRoot(r):
			t.Errorf("%s %s not signed by the root key", r.Method, r.URL.Path)
			http.Error(w, `{"error":"not signed"}`, http.StatusForbidden)
		case r.Method == http.MethodGet && r.URL.Path == "/status":
			c.mu.Lock()
			v := c.version
			if c.behind > 0 {
				c.behind--
				v--
			}
			st := admin.Status{Version: "test", Cluster: &admin.ClusterStatus{NodeID: "n1", LayoutVersion: v, Partitions: 16, Nodes: c.nodes}}
			c.mu.Unlock()
			json.NewEncoder(w).Encode(st)
		case r.Method == http.MethodPost && r.URL.Path == "/cluster/layout/apply":
			json.NewEncoder(w).Encode(admin.LayoutView{Version: c.version, Policy: "EC 2+1", Partitions: 16})
		default:
			t.Errorf("unexpected %s %s", r.Method, r.URL.Path)
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *fakeCluster) addr() string { return c.srv.Listener.Addr().String() }

func nodeAt(id, addr string, state admin.NodeState, inLayout bool) admin.NodeStatus {
	return admin.NodeStatus{ID: id, AdminAddr: addr, RPCAddr: "127.0.0.1:3901", State: state, InLayout: inLayout}
}

// deadAddr is an address nothing listens on.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

var (
	idle     = node.RepairProgress{LayoutVersion: 4}
	settled5 = func(moved int64) node.RepairProgress {
		return node.RepairProgress{LayoutVersion: 5, BytesToMove: moved, BytesMoved: moved, RefsToMove: 10, RefsMoved: 10}
	}
	moving = func(moved, of int64, eta float64) node.RepairProgress {
		return node.RepairProgress{Running: true, LayoutVersion: 4, BytesToMove: of, BytesMoved: moved, ETASeconds: eta}
	}
)

func TestWaitRebalanceUntilEveryLiveNodeIsInLine(t *testing.T) {
	a := newFakeNode(t, idle, moving(1*gib, 4*gib, 120), moving(3*gib, 4*gib, 30), settled5(4*gib))
	b := newFakeNode(t, moving(0, 2*gib, 300), settled5(2*gib))
	outside := newFakeNode(t, idle) // not in the layout: not asked
	c := newFakeCluster(t, 5,
		nodeAt("aaaaaaaaaaaaaaaa", a.addr(), admin.NodeAlive, true),
		nodeAt("bbbbbbbbbbbbbbbb", b.addr(), admin.NodeSuspect, true),
		nodeAt("cccccccccccccccc", deadAddr(t), admin.NodeDead, true),
		nodeAt("dddddddddddddddd", outside.addr(), admin.NodeAlive, false),
	)
	c.behind = 1 // the answering node follows the new layout one round late

	var progress, out strings.Builder
	if err := waitRebalance(t.Context(), testConn(c.addr()), 5, time.Millisecond, &progress, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"waiting for " + c.addr() + " to follow layout v5 (at v4)",
		// a has not started: only b's figures count.
		"  0.0% layout v5: 0 B of 2.0 GiB moved, 0 of 2 node(s) in line, ETA 5m",
		" 50.0% layout v5: 3.0 GiB of 6.0 GiB moved, 1 of 2 node(s) in line, ETA 2m",
		" 83.3% layout v5: 5.0 GiB of 6.0 GiB moved, 1 of 2 node(s) in line, ETA 30s",
		"[##############################] 100.0% layout v5: 6.0 GiB of 6.0 GiB moved, 2 of 2 node(s) in line",
	} {
		if !strings.Contains(progress.String(), want) {
			t.Errorf("progress lacks %q:\n%q", want, progress.String())
		}
	}
	if !strings.HasSuffix(progress.String(), "\n") {
		t.Errorf("progress does not end its line: %q", progress.String())
	}
	if got := out.String(); !strings.HasPrefix(got, "data in line with layout v5 on 2 node(s): 6.0 GiB moved in ") || !strings.HasSuffix(got, "; 1 dead node(s) skipped\n") {
		t.Errorf("summary %q", got)
	}
	if outside.asked() != 0 {
		t.Errorf("a node outside the layout was asked %d times", outside.asked())
	}
}

// withTotal adds the node's count of bytes moved since its start.
func withTotal(p node.RepairProgress, total int64) node.RepairProgress {
	p.Relocation = &node.RelocationProgress{Running: p.Running, TotalBytesMoved: total}
	return p
}

func TestWaitRebalanceCountsEveryPass(t *testing.T) {
	failed := node.RepairProgress{LayoutVersion: 4, BytesToMove: 4 * gib, BytesMoved: 3 * gib, LastError: "a move failed"}
	a := newFakeNode(t,
		withTotal(moving(1*gib, 4*gib, 60), 11*gib), // 10 GiB moved for earlier layouts
		withTotal(failed, 13*gib),
		withTotal(moving(gib/2, 1*gib, 5), 13*gib+gib/2),
		withTotal(settled5(1*gib), 14*gib),
	)
	c := newFakeCluster(t, 5, nodeAt("aaaaaaaaaaaaaaaa", a.addr(), admin.NodeAlive, true))
	var progress, out strings.Builder
	if err := waitRebalance(t.Context(), testConn(c.addr()), 5, time.Millisecond, &progress, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(progress.String(), "1 retrying after an error (aaaaaaaaaaaa: a move failed)") {
		t.Errorf("progress %q", progress.String())
	}
	if got := out.String(); !strings.HasPrefix(got, "data in line with layout v5 on 1 node(s): 4.0 GiB moved in ") {
		t.Errorf("summary %q, want the bytes of both passes", got)
	}
}

func TestWaitRebalanceGivesUp(t *testing.T) {
	a := newFakeNode(t, moving(1*gib, 4*gib, 120))
	c := newFakeCluster(t, 5,
		nodeAt("aaaaaaaaaaaaaaaa", a.addr(), admin.NodeAlive, true),
		nodeAt("bbbbbbbbbbbbbbbb", deadAddr(t), admin.NodeAlive, true), // alive by gossip, no answer
	)

	t.Run("timeout", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		var progress, out strings.Builder
		err := waitRebalance(ctx, testConn(c.addr()), 5, 5*time.Millisecond, &progress, &out)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "gave up after") ||
			!strings.Contains(err.Error(), "1.0 GiB of 4.0 GiB moved, 0 of 2 node(s) in line") ||
			!strings.Contains(err.Error(), "1 not answering (bbbbbbbbbbbb: ") {
			t.Fatalf("error %v", err)
		}
		if out.Len() != 0 {
			t.Errorf("a summary although the movement did not finish: %q", out.String())
		}
		if !strings.Contains(progress.String(), "1 not answering") || !strings.HasSuffix(progress.String(), "\n") {
			t.Errorf("progress %q", progress.String())
		}
	})
	t.Run("interrupt", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(50*time.Millisecond, cancel)
		var progress, out strings.Builder
		err := waitRebalance(ctx, testConn(c.addr()), 5, 5*time.Millisecond, &progress, &out)
		if !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "interrupted waiting for the data to move to layout v5") {
			t.Fatalf("error %v", err)
		}
	})
}

func TestLayoutApplyWait(t *testing.T) {
	a := newFakeNode(t, settled5(3*gib))
	c := newFakeCluster(t, 5, nodeAt("aaaaaaaaaaaaaaaa", a.addr(), admin.NodeAlive, true))
	code, out, errOut := runCLI(t, "layout", "apply", "--wait", "--admin-addr", c.addr(), "--access-key", testRootKey, "--secret-key", testRootSecret)
	if code != 0 || !strings.Contains(out, "layout v5 applied") || !strings.Contains(out, "data in line with layout v5 on 1 node(s): 3.0 GiB moved in") ||
		!strings.Contains(errOut, "100.0% layout v5") {
		t.Fatalf("exit %d\nstdout %q\nstderr %q", code, out, errOut)
	}

	stuck := newFakeNode(t, moving(0, gib, 0))
	c = newFakeCluster(t, 5, nodeAt("aaaaaaaaaaaaaaaa", stuck.addr(), admin.NodeAlive, true))
	code, _, errOut = runCLI(t, "layout", "apply", "--wait", "--timeout", "200ms", "--admin-addr", c.addr(), "--access-key", testRootKey, "--secret-key", testRootSecret)
	if code != 1 || !strings.Contains(errOut, "redoubt: gave up after") || !strings.Contains(errOut, "ETA unknown") {
		t.Fatalf("with a timeout: exit %d, stderr %q", code, errOut)
	}

	if code, out, errOut := runCLI(t, "layout", "apply", "--timeout", "1m", "--admin-addr", c.addr(), "--access-key", testRootKey, "--secret-key", testRootSecret); code != 1 || out != "" || !strings.Contains(errOut, "--timeout bounds --wait") {
		t.Errorf("--timeout without --wait: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	// Without --wait, apply returns at once.
	code, out, _ = runCLI(t, "layout", "apply", "--admin-addr", c.addr(), "--access-key", testRootKey, "--secret-key", testRootSecret)
	if code != 0 || strings.Contains(out, "data in line") || stuck.asked() != 1 {
		t.Fatalf("without --wait: exit %d, %q, node asked %d times", code, out, stuck.asked())
	}
}

func TestStatusShowsRebalance(t *testing.T) {
	a := newFakeNode(t, moving(1*gib, 4*gib, 120))
	b := newFakeNode(t, moving(2*gib, 2*gib+gib/5, 3900))
	done := newFakeNode(t, settled5(gib))
	c := newFakeCluster(t, 5,
		nodeAt("aaaaaaaaaaaaaaaa", a.addr(), admin.NodeAlive, true),
		nodeAt("bbbbbbbbbbbbbbbb", b.addr(), admin.NodeAlive, true),
		nodeAt("cccccccccccccccc", done.addr(), admin.NodeAlive, true),
		nodeAt("dddddddddddddddd", deadAddr(t), admin.NodeAlive, true),
		nodeAt("eeeeeeeeeeeeeeee", deadAddr(t), admin.NodeDead, true),
	)
	code, out, errOut := runCLI(t, "status", "--admin-addr", c.addr(), "--access-key", testRootKey, "--secret-key", testRootSecret)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{
		"node aaaaaaaaaaaa: rebalance to layout v5: 1.0 GiB of 4.0 GiB moved, ETA 2m\n",
		"node bbbbbbbbbbbb: rebalance to layout v5: 2.0 GiB of 2.2 GiB moved, ETA 1h5m\n",
		"node dddddddddddd: rebalance unknown (no answer)\n",
		"total:             rebalance to layout v5: 4.0 GiB of 7.2 GiB moved, 1 of 4 node(s) in line, ETA 1h5m\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "node cccccccccccc:") || strings.Contains(out, "node eeeeeeeeeeee") {
		t.Errorf("status lists a node that is not moving data:\n%s", out)
	}

	// Nothing moving: no rebalance lines, even with a node not answering.
	c = newFakeCluster(t, 5,
		nodeAt("cccccccccccccccc", done.addr(), admin.NodeAlive, true),
		nodeAt("dddddddddddddddd", deadAddr(t), admin.NodeAlive, true),
	)
	if code, out, _ := runCLI(t, "status", "--admin-addr", c.addr(), "--access-key", testRootKey, "--secret-key", testRootSecret); code != 0 || strings.Contains(out, "rebalance") {
		t.Errorf("exit %d, status with nothing moving:\n%s", code, out)
	}
}

func TestAdminAddrOf(t *testing.T) {
	for _, tc := range []struct{ admin, rpc, want string }{
		{"10.0.0.7:3903", "10.0.0.7:3901", "10.0.0.7:3903"},
		{":3903", "10.0.0.5:3901", "10.0.0.5:3903"},
		{"0.0.0.0:3903", "node1.example:3901", "node1.example:3903"},
		{"[::]:3903", "[fd00::5]:3901", "[fd00::5]:3903"},
		{"[::]:3903", "0.0.0.0:3901", "127.0.0.1:3903"},
		{"node2:3903", "", "node2:3903"},
		{"", "10.0.0.5:3901", ""},
	} {
		if got := adminAddrOf(admin.NodeStatus{AdminAddr: tc.admin, RPCAddr: tc.rpc}); got != tc.want {
			t.Errorf("admin %q rpc %q: %q, want %q", tc.admin, tc.rpc, got, tc.want)
		}
	}
}

// TestS3AddrShown: a node whose S3 endpoint listens on every interface is
// shown by status with an address a user can reach it at.
func TestS3AddrShown(t *testing.T) {
	n := admin.NodeStatus{S3Addr: "0.0.0.0:3900", RPCAddr: "10.0.0.5:3901", AdminAddr: "127.0.0.1:3903"}
	if got := s3AddrOf(n); got != "10.0.0.5:3900" {
		t.Fatalf("S3 on 0.0.0.0:3900 of the node at 10.0.0.5 shown as %q", got)
	}
	n.S3Addr = "s3.example:443"
	if got := s3AddrOf(n); got != "s3.example:443" {
		t.Fatalf("S3 on s3.example:443 shown as %q", got)
	}
}

func FuzzAdminAddrOf(f *testing.F) {
	f.Add(":3903", "10.0.0.5:3901")
	f.Add("[::]:3903", "[fd00::5]:3901")
	f.Add("x", "::::")
	f.Fuzz(func(t *testing.T, adminAddr, rpc string) {
		got := adminAddrOf(admin.NodeStatus{AdminAddr: adminAddr, RPCAddr: rpc})
		if _, port, err := net.SplitHostPort(adminAddr); err == nil && got != adminAddr {
			if _, p, err := net.SplitHostPort(got); err != nil || p != port {
				t.Fatalf("admin %q rpc %q: %q keeps not the port", adminAddr, rpc, got)
			}
		}
	})
}

func TestETAText(t *testing.T) {
	for sec, want := range map[float64]string{0: "unknown", -3: "unknown", 40: "40s", 120: "2m", 150: "2m30s", 3600: "1h", 3900: "1h5m", 3661: "1h1m1s"} {
		if got := etaText(sec); got != want {
			t.Errorf("%v s: %q, want %q", sec, got, want)
		}
	}
}
