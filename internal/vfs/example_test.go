package vfs_test

import (
	"fmt"
	"math/rand/v2"
	"os"

	"github.com/redoubt-io/redoubt/internal/vfs"
)

// A node's disks in memory: write a file the durable way and another the
// careless way, cut the power, and start again on what is left.
func ExampleMem_Crash() {
	m := vfs.NewMem(vfs.MemConfig{})
	if err := m.Mount("/disks/0", 1<<30); err != nil {
		panic(err)
	}
	write := func(name, data string, sync bool) {
		f, err := m.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			panic(err)
		}
		f.Write([]byte(data))
		if sync {
			f.Sync()
		}
		f.Close()
	}
	write("/disks/0/durable.tmp", "kept", true)
	m.Rename("/disks/0/durable.tmp", "/disks/0/durable")
	write("/disks/0/careless", "lost", false)
	m.SyncDir("/disks/0")

	// The processes that used m stop with the power; a restarted node
	// gets the crash image. m itself goes on unchanged.
	after := m.Crash()
	for _, name := range []string{"durable", "careless"} {
		b, err := vfs.ReadFile(after, "/disks/0/"+name)
		fmt.Printf("%s: %q %v\n", name, b, err)
	}
	// With a seeded rng, some of what was not durable survives, torn.
	torn := m.CrashClone(rand.New(rand.NewPCG(1, 2)))
	b, _ := vfs.ReadFile(torn, "/disks/0/careless")
	fmt.Printf("careless, torn: %d of 4 bytes\n", len(b))
	// Output:
	// durable: "kept" <nil>
	// careless: "" <nil>
	// careless, torn: 2 of 4 bytes
}
