package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
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

	mu     sync.Mutex
	cuts   map[[2]int]bool // directed links now cut
	paused map[int]bool    // nodes stopped by SIGSTOP
	netem  bool            // the loopback's qdisc is this test's
	flap   chan struct{}   // closed to stop a flapping link
}

// bedIP is node i's address on the bed.
func bedIP(i int) string { return bedIPOn(1, i) }

// bedIPOn is node i's address on a bed of network n (127.0.n.0/24): a
// second cluster on the bed, as another site, takes network 2.
func bedIPOn(n, i int) string { return fmt.Sprintf("127.0.%d.%d", n, i+1) }

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
	return startBedWith(t, n, zones, func(int) []string { return extra })
}

// startBedWith is startBed with node i's extra flags extra(i).
func startBedWith(t *testing.T, n, zones int, extra func(i int) []string) *bed {
	t.Helper()
	return startBedOn(t, 1, n, zones, extra)
}

// startBedOn is startBedWith on network netw (bedIPOn), with a chain of
// its own.
func startBedOn(t *testing.T, netw, n, zones int, extra func(i int) []string) *bed {
	t.Helper()
	needBed(t)
	c := &cluster{t: t, secret: filepath.Join(t.TempDir(), "secret")}
	b := &bed{cluster: c, cuts: map[[2]int]bool{}, paused: map[int]bool{}}
	b.chain = fmt.Sprintf("REDOUBT-BED-%d-%d", os.Getpid(), netw)
	b.iptables("-N", b.chain)
	t.Cleanup(func() {
		b.iptablesQuiet("-D", "INPUT", "-j", b.chain)
		b.iptablesQuiet("-F", b.chain)
		b.iptablesQuiet("-X", b.chain)
	})
	b.iptables("-I", "INPUT", "-j", b.chain)
	// Registered after the servers' own cleanups, so it runs before
	// them: a stopped process must run again to shut down.
	defer t.Cleanup(b.heal)

	if err := os.WriteFile(c.secret, []byte(testClusterSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		ip := bedIPOn(netw, i)
		b.ips = append(b.ips, ip)
		addrs := freeAddrsOn(t, ip, 2)
		c.rpc = append(c.rpc, addrs[0])
		args := append([]string{"--s3-addr", ip + ":0", "--admin-addr", ip + ":0"},
			c.nodeArgs(i, n, zones, addrs[0], addrs[1])...)
		c.nodes = append(c.nodes, startServer(t, serverOptions{drives: 2, args: append(args, extra(i)...)}))
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

// heal restores every link and every link's speed, stops a flapping
// link and resumes paused nodes.
func (b *bed) heal() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.flap != nil {
		close(b.flap)
		b.flap = nil
	}
	b.iptables("-F", b.chain)
	clear(b.cuts)
	for i := range b.paused {
		if err := b.nodes[i].cmd.Process.Signal(syscall.SIGCONT); err != nil {
			b.t.Errorf("resume node %d: %v", i, err)
		}
	}
	clear(b.paused)
	if b.netem {
		if out, err := exec.Command("tc", "qdisc", "del", "dev", "lo", "root").CombinedOutput(); err != nil {
			b.t.Errorf("tc qdisc del dev lo root: %v\n%s", err, out)
		}
		b.netem = false
	}
}

// pause stops node i (SIGSTOP) until the heal: a process that neither
// runs nor closes its connections, as a long GC pause or a stalled VM.
func (b *bed) pause(i int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.nodes[i].cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		b.t.Fatalf("pause node %d: %v", i, err)
	}
	b.paused[i] = true
}

// degrade drops loss of the packets between the nodes of a and those of
// c, both ways, with the packet filter, and delays them by delay with tc
// netem where the kernel has it (the loopback's root qdisc is then this
// test's until the heal, and only the pairs' packets are filtered into
// netem's band), until the heal. It says what it did.
func (b *bed) degrade(a, c []int, delay time.Duration, loss float64) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, x := range a {
		for _, y := range c {
			for _, p := range [][2]int{{x, y}, {y, x}} {
				b.iptables("-A", b.chain, "-s", b.ips[p[0]], "-d", b.ips[p[1]],
					"-m", "statistic", "--mode", "random", "--probability", fmt.Sprint(loss), "-j", "DROP")
			}
		}
	}
	desc := fmt.Sprintf("%g%% loss", loss*100)
	tc := func(args ...string) error {
		if out, err := exec.Command("tc", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("tc %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
		return nil
	}
	// A fourth band, reached by filters only (the priority map sends
	// nothing to it), holds netem.
	if out, err := exec.Command("tc", "qdisc", "show", "dev", "lo").Output(); err != nil || !strings.HasPrefix(string(out), "qdisc noqueue") {
		return desc + " (no delay: the loopback's qdisc is not free)"
	}
	if err := tc("qdisc", "add", "dev", "lo", "root", "handle", "1:", "prio", "bands", "4",
		"priomap", "1", "2", "2", "2", "1", "2", "0", "0", "1", "1", "1", "1", "1", "1", "1", "1"); err != nil {
		return desc + " (no delay: this kernel has no prio qdisc)"
	}
	b.netem = true
	if err := tc("qdisc", "add", "dev", "lo", "parent", "1:4", "handle", "40:", "netem",
		"delay", fmt.Sprintf("%dms", delay.Milliseconds())); err != nil {
		return desc + " (no delay: this kernel has no netem)"
	}
	for _, x := range a {
		for _, y := range c {
			for _, p := range [][2]int{{x, y}, {y, x}} {
				if err := tc("filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", "1", "u32",
					"match", "ip", "src", b.ips[p[0]]+"/32", "match", "ip", "dst", b.ips[p[1]]+"/32", "flowid", "1:4"); err != nil {
					b.t.Fatal(err)
				}
			}
		}
	}
	return fmt.Sprintf("%s and %v delay", desc, delay)
}

// flapLink cuts and restores the link between x and y, both ways, every
// period until the heal.
func (b *bed) flapLink(x, y int, period time.Duration) {
	b.mu.Lock()
	stop := make(chan struct{})
	b.flap = stop
	b.mu.Unlock()
	go func() {
		cut := false
		for {
			select {
			case <-stop:
				return
			case <-time.After(period):
			}
			b.mu.Lock()
			select {
			case <-stop: // healed meanwhile: leave the links to heal
				b.mu.Unlock()
				return
			default:
			}
			verb := "-A"
			if cut {
				verb = "-D"
			}
			for _, p := range [][2]int{{x, y}, {y, x}} {
				b.iptablesQuiet(verb, b.chain, "-s", b.ips[p[0]], "-d", b.ips[p[1]], "-j", "DROP")
			}
			cut = !cut
			b.mu.Unlock()
		}
	}()
}
