package node

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/redoubt-io/redoubt/internal/blocks"
)

// DefaultRequestMemory is Config.RequestMemory's default: an eighth of the
// memory this process may use (its cgroup's limit where one is set, else
// the machine's), between 256 MiB and 8 GiB. A large upload on EC 4+2
// takes 30 MiB (four stripes of 6 MiB and a 1 MiB buffer per shard), a
// large download 24 MiB of read-ahead, so on a machine of 16 GiB some 34
// uploads and 42 downloads run at full speed at once before more wait.
func DefaultRequestMemory() int64 {
	mem := memoryLimit()
	if mem <= 0 {
		return 1 << 30
	}
	return min(max(mem/8, 256<<20), 8<<30) &^ (1<<20 - 1) // whole MiB, to read well in --help
}

// memoryLimit returns the bytes of memory this process may use, or 0 if
// it cannot tell.
func memoryLimit() int64 {
	var limit int64
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) >= 2 && f[0] == "MemTotal:" {
				if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
					limit = kb << 10
				}
			}
		}
	}
	// cgroup v2: "max" or bytes.
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && v > 0 && (limit == 0 || v < limit) {
			limit = v
		}
	}
	return limit
}

// registerBuffers exports what large requests hold of the data buffers
// (blocks.Config.BufferBytes).
func registerBuffers(reg prometheus.Registerer, get func() blocks.BufferStats) {
	for dir, f := range map[string][2]func(blocks.BufferStats) int64{
		"write": {func(s blocks.BufferStats) int64 { return s.WriteHeld }, func(s blocks.BufferStats) int64 { return s.WriteLimit }},
		"read":  {func(s blocks.BufferStats) int64 { return s.ReadHeld }, func(s blocks.BufferStats) int64 { return s.ReadLimit }},
	} {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "redoubt_request_buffer_bytes",
			Help:        "Bytes of data buffers held by uploads (write) and downloads (read) in flight.",
			ConstLabels: prometheus.Labels{"direction": dir},
		}, func() float64 { return float64(f[0](get())) }))
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "redoubt_request_buffer_limit_bytes",
			Help:        "The bound on redoubt_request_buffer_bytes (--request-memory, half each way); 0: none.",
			ConstLabels: prometheus.Labels{"direction": dir},
		}, func() float64 { return float64(f[1](get())) }))
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "redoubt_request_buffer_waiting",
		Help: "Requests waiting for data buffers now.",
	}, func() float64 { return float64(get().Waiting) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "redoubt_request_buffer_busy_total",
		Help: "Requests answered 503 SlowDown because the data buffers stayed held by others for as long as a request waits.",
	}, func() float64 { return float64(get().Busy) }))
}
