package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The partition bed: each node a real process with an address of its own
// in 127.0.0.0/8 (node i on 127.0.1.i+1), so that the kernel's packet
// filter can cut, and restore, the links between chosen nodes. Nodes
// send from the address they listen on (transport.SourceAddr), so a rule
// by source and destination address matches exactly one direction of one
// link. Test traffic never leaves the loopback interface.
//
// The bed needs root and iptables (Debian's, with the nft backend, works);
// without them its tests skip, saying why. Every rule lives in a chain of
// the test's own, removed when the test ends.

// bed is a cluster on the partition bed.
type bed struct {
	*cluster
	ips   []string // node i's address
	chain string   // this test's iptables chain

	mu   sync.Mutex
	cuts map[[2]int]bool // directed links now cut
}

// bedIP is node i's address on the bed.
func bedIP(i int) string { return fmt.Sprintf("127.0.1.%d", i+1) }

// needBed skips t unless this process may set packet rules.
func needBed(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("the partition bed starts several server processes")
	}
	if os.Geteuid() != 0 {
		t.Skip("the partition bed needs root to set packet rules")
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("the partition bed needs iptables (Debian: apt-get install iptables)")
	}
}

// startBed starts n nodes over zones (node i in zone i mod zones), each on
// its own address, and waits until they form a cluster.
func startBed(t *testing.T, n, zones int, extra ...string) *bed {
	t.Helper()
	needBed(t)
	c := &cluster{t: t, secret: filepath.Join(t.TempDir(), "secret")}
	b := &bed{cluster: c, cuts: map[[2]int]bool{}}
	b.chain = fmt.Sprintf("REDOUBT-BED-%d", os.Getpid())
	b.iptables("-N", b.chain)
	t.Cleanup(func() {
		b.iptablesQuiet("-D", "INPUT", "-j", b.chain)
		b.iptablesQuiet("-F", b.chain)
		b.iptablesQuiet("-X", b.chain)
	})
	b.iptables("-I", "INPUT", "-j", b.chain)

	if err := os.WriteFile(c.secret, []byte(testClusterSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		b.ips = append(b.ips, bedIP(i))
		addrs := freeAddrsOn(t, bedIP(i), 2)
		c.rpc = append(c.rpc, addrs[0])
		args := append([]string{"--s3-addr", bedIP(i) + ":0", "--admin-addr", bedIP(i) + ":0"},
			c.nodeArgs(i, n, zones, addrs[0], addrs[1])...)
		c.nodes = append(c.nodes, startServer(t, serverOptions{drives: 2, args: append(args, extra...)}))
	}
	c.waitReady(c.nodes, n)
	return b
}

// freeAddrsOn is freeAddrs on address ip.
func freeAddrsOn(t *testing.T, ip string, n int) []string {
	t.Helper()
	var out []string
	for _, a := range freeAddrs(t, 4*n) {
		_, port, _ := net.SplitHostPort(a)
		addr := net.JoinHostPort(ip, port)
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			out = append(out, addr)
			if len(out) == n {
				return out
			}
		}
	}
	t.Fatalf("no %d free ports on %s", n, ip)
	return nil
}

func (b *bed) iptables(args ...string) {
	b.t.Helper()
	if out, err := exec.Command("iptables", append([]string{"-w"}, args...)...).CombinedOutput(); err != nil {
		b.t.Fatalf("iptables %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (b *bed) iptablesQuiet(args ...string) {
	exec.Command("iptables", append([]string{"-w"}, args...)...).Run()
}

// cutOneWay drops every packet from node from to node to.
func (b *bed) cutOneWay(from, to int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cuts[[2]int{from, to}] {
		return
	}
	b.iptables("-A", b.chain, "-s", b.ips[from], "-d", b.ips[to], "-j", "DROP")
	b.cuts[[2]int{from, to}] = true
}

// partition cuts every link between two different sides; a node in no
// side keeps all its links.
func (b *bed) partition(sides ...[]int) {
	for i, s := range sides {
		for _, t := range sides[i+1:] {
			for _, x := range s {
				for _, y := range t {
					b.cutOneWay(x, y)
					b.cutOneWay(y, x)
				}
			}
		}
	}
}

// heal restores every link.
func (b *bed) heal() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.iptables("-F", b.chain)
	clear(b.cuts)
}
