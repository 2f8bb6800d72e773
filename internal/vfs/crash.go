package vfs

import (
	"bytes"
	"maps"
	"math/rand/v2"
	"slices"
)

// CrashPageSize is the unit in which CrashClone keeps or loses data
// overwritten in place: the page a kernel writes back.
const CrashPageSize = 4096

// Crash returns the state a power cut leaves now, with nothing but what was
// made durable: CrashClone(nil).
func (m *Mem) Crash() *Mem { return m.CrashClone(nil) }

// CrashClone returns a new Mem holding one state a power cut could leave
// now; m goes on unchanged, as if the machine had not crashed. The clone
// has the same volumes and clock and no open files.
//
// With rng nil, the clone holds exactly what was made durable
// (TestMemCrashKeepsOnlyDurable):
//
//   - A directory holds the entries it held at its last SyncDir (for a
//     directory never synced: none), each naming the file or directory it
//     named then. A name created, renamed in or out, or removed since is
//     undone: a created file or directory is gone, a removed one is back
//     (with its own durable entries and data), a rename whose two sides
//     were not both synced leaves the file under neither name or both.
//     Syncing a directory does not make its parent's entry for it durable.
//   - A file holds the content it had at its last Sync (a file never
//     synced is empty), whatever its name.
//   - Mount points and their parents are always there.
//
// With an rng, the clone also keeps a random part of what was not yet
// durable, as a disk that had written some of it back would
// (TestMemCrashCloneTearsUnsyncedData):
//
//   - Each directory entry that differs from its durable state takes its
//     current state with probability 1/2, independently of the others.
//   - A file written since its last Sync is cut at its synced length, at
//     its current length or, if it grew by more than a byte, at a length
//     drawn uniformly strictly between (a torn prefix of what was
//     appended), each with probability 1/3 (a file that did not grow by
//     more than a byte: 1/3 and 2/3). Up to the synced length, each
//     CrashPageSize page that differs keeps its new content with
//     probability 1/2; beyond, the content is the current one.
//
// A directory that ends up under two names (a rename across directories
// that only one side synced) keeps the first of them in a depth-first walk
// in name order; a file keeps both, as one file. The rng is drawn in that
// same order, so a seed gives the same clone every time
// (TestMemCrashCloneDeterministic).
func (m *Mem) CrashClone(rng *rand.Rand) *Mem {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := crasher{rng: rng, files: map[*memNode]*memNode{}, dirs: map[*memNode]bool{}, vols: map[*volume]*volume{}}
	out := &Mem{clock: m.clock}
	out.mu.root = c.dir(m.mu.root)
	return out
}

// Flush makes the whole current state durable, as the kernel's writeback
// and journal commits do within seconds on a real machine. Without it, a
// name removed and never synced stays in every crash image (and in
// memory) for good; a simulation calls Flush at the pace it gives its
// simulated kernel (TestMemFlush).
func (m *Mem) Flush() {
	m.mu.Lock()
	defer m.mu.Unlock()
	var flush func(n *memNode)
	flush = func(n *memNode) {
		n.syncLocked()
		for _, c := range n.children {
			flush(c)
		}
	}
	flush(m.mu.root)
}

type crasher struct {
	rng   *rand.Rand
	files map[*memNode]*memNode // clones of the files met so far
	dirs  map[*memNode]bool     // directories met so far
	vols  map[*volume]*volume
}

func (c *crasher) vol(v *volume) *volume {
	if cv, ok := c.vols[v]; ok {
		return cv
	}
	cv := &volume{capacity: v.capacity}
	c.vols[v] = cv
	return cv
}

func (c *crasher) coin() bool { return c.rng != nil && c.rng.IntN(2) == 0 }

func (c *crasher) dir(n *memNode) *memNode {
	c.dirs[n] = true
	out := &memNode{vol: c.vol(n.vol), mode: n.mode, mtime: n.mtime, mount: n.mount, links: 1,
		children: map[string]*memNode{}}
	names := slices.Sorted(maps.Keys(n.children))
	for name := range n.durable {
		if _, ok := n.children[name]; !ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		cur, inCur := n.children[name]
		old, inOld := n.durable[name]
		pick, ok := old, inOld
		if (inCur != inOld || cur != old) && c.coin() {
			pick, ok = cur, inCur
		}
		switch {
		case !ok:
		case pick.isDir() && c.dirs[pick]:
		case pick.isDir():
			out.children[name] = c.dir(pick)
		default:
			out.children[name] = c.file(pick)
		}
	}
	out.durable = maps.Clone(out.children)
	return out
}

func (c *crasher) file(n *memNode) *memNode {
	if cl, ok := c.files[n]; ok {
		cl.links++
		return cl
	}
	data := n.synced[:len(n.synced):len(n.synced)] // never changed in place: share it
	if n.dirty && c.rng != nil {
		data = c.torn(n.synced, n.data)
	}
	cl := &memNode{vol: c.vol(n.vol), mode: n.mode, mtime: n.mtime, data: data, synced: data, links: 1}
	cl.vol.used += uint64(len(data))
	c.files[n] = cl
	return cl
}

// torn is what a disk may hold of a file synced as old and written since
// to cur; see CrashClone.
func (c *crasher) torn(old, cur []byte) []byte {
	size := len(old)
	switch k := c.rng.IntN(3); {
	case k == 0:
	case k == 1 || len(cur) <= len(old)+1:
		size = len(cur)
	default:
		size += 1 + c.rng.IntN(len(cur)-len(old)-1)
	}
	out := make([]byte, size)
	copy(out, old)
	if size > len(old) {
		copy(out[len(old):], cur[len(old):size])
	}
	for p := 0; p < min(len(old), len(cur), size); p += CrashPageSize {
		e := min(p+CrashPageSize, len(old), len(cur), size)
		if !bytes.Equal(old[p:e], cur[p:e]) && c.coin() {
			copy(out[p:e], cur[p:e])
		}
	}
	return out
}
