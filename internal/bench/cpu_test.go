package bench

import (
	"os"
	"testing"
	"time"
)

func TestParseProcStatCPU(t *testing.T) {
	line := "8752 (redoubt (x) y) S 1 8752 1 0 -1 4194560 31337 0 3 0 942 117 0 0 20 0 14 0 1400 1486012416 55571 18446744073709551615\n"
	d, err := parseProcStatCPU([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if want := (942 + 117) * 10 * time.Millisecond; d != want {
		t.Fatalf("got %v, want %v", d, want)
	}
	for _, bad := range []string{"", "1 (x", "1 (x) S 1 2", "1 (x) S 1 8752 1 0 -1 4194560 31337 0 3 0 -5 117 0"} {
		if _, err := parseProcStatCPU([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestProcessCPUOfThisProcess reads the test's own CPU time: it grows
// while the test spins.
func TestProcessCPUOfThisProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	pid := os.Getpid()
	before, err := processCPU([]int{pid})
	if err != nil {
		t.Fatal(err)
	}
	// USER_HZ ticks are 10 ms: a few seconds of spinning must show.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		after, err := processCPU([]int{pid})
		if err != nil {
			t.Fatal(err)
		}
		if after > before {
			return
		}
	}
	t.Fatalf("CPU time stayed at %v over 5 s of spinning", before)
}

func FuzzParseProcStatCPU(f *testing.F) {
	f.Add([]byte("8752 (redoubt) S 1 8752 1 0 -1 4194560 31337 0 3 0 942 117 0 0 20 0"))
	f.Add([]byte("1 ()) S"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := parseProcStatCPU(b)
		if err == nil && d < 0 {
			t.Fatalf("negative CPU time %v", d)
		}
	})
}
