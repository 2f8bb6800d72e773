package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is what a run measured. Only requests of the timed phase count.
type Result struct {
	Op          Op            `json:"op"`
	Endpoint    string        `json:"endpoint"`
	Bucket      string        `json:"bucket"`
	Prefix      string        `json:"prefix"`
	ObjectSize  int64         `json:"object_size"`
	Concurrency int           `json:"concurrency"`
	Duration    time.Duration `json:"-"`
	Checksum    ChecksumMode  `json:"checksum"`
	Seed        uint64        `json:"seed,string"` // JSON numbers lose bits past 2^53
	// Kept says the objects were left in place.
	Kept      bool `json:"kept"`
	Preloaded int  `json:"preloaded"`
	// Elapsed is the timed phase's wall time, including the requests that
	// were in flight when Duration ran out.
	Elapsed time.Duration `json:"-"`
	// ServerCPU is the CPU time Config.ServerPIDs used during the timed
	// phase (0 without them).
	ServerCPU time.Duration `json:"-"`
	// Total sums Ops; its latency covers every successful request.
	Total OpResult `json:"total"`
	// Ops has one entry per request kind that was issued.
	Ops    []OpResult   `json:"ops"`
	Errors []ErrorCount `json:"errors"`
}

// OpResult is the measure of one request kind. Ops counts successful
// requests; latency is over successful requests only.
type OpResult struct {
	Op        string  `json:"op"`
	Ops       int64   `json:"ops"`
	Errors    int64   `json:"errors"`
	Bytes     int64   `json:"bytes"`
	OpsPerSec float64 `json:"ops_per_sec"`
	MiBPerSec float64 `json:"mib_per_sec"`
	Latency   Latency `json:"latency"`
}

// ErrorCount is how often one kind of failure happened.
type ErrorCount struct {
	Message string `json:"message"`
	Count   int64  `json:"count"`
	// Example is the full text of the first such error.
	Example string `json:"example"`
}

// Failed reports that no request of the timed phase succeeded.
func (r Result) Failed() bool { return r.Total.Ops == 0 }

// MarshalJSON writes durations as seconds and latencies as milliseconds.
func (r Result) MarshalJSON() ([]byte, error) {
	type plain Result
	return json.Marshal(struct {
		plain
		DurationSeconds float64 `json:"duration_seconds"`
		ElapsedSeconds  float64 `json:"elapsed_seconds"`
		ServerCPU       float64 `json:"server_cpu_seconds,omitempty"`
		ServerCPUPerOp  float64 `json:"server_cpu_ms_per_op,omitempty"`
	}{plain(r), r.Duration.Seconds(), r.Elapsed.Seconds(), r.ServerCPU.Seconds(), r.serverCPUPerOp()})
}

// serverCPUPerOp is the server's CPU time per successful request, in
// milliseconds; 0 when not measured.
func (r Result) serverCPUPerOp() float64 {
	if r.ServerCPU == 0 || r.Total.Ops == 0 {
		return 0
	}
	return float64(r.ServerCPU.Microseconds()) / 1000 / float64(r.Total.Ops)
}

// MarshalJSON writes the latencies in milliseconds.
func (l Latency) MarshalJSON() ([]byte, error) {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return json.Marshal(struct {
		Count  int64   `json:"count"`
		MeanMS float64 `json:"mean_ms"`
		P50MS  float64 `json:"p50_ms"`
		P90MS  float64 `json:"p90_ms"`
		P99MS  float64 `json:"p99_ms"`
		MaxMS  float64 `json:"max_ms"`
	}{l.Count, ms(l.Mean), ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Max)})
}

func (r *runner) fillResult(res *Result) {
	secs := res.Elapsed.Seconds()
	rate := func(n int64) float64 {
		if secs <= 0 {
			return 0
		}
		return float64(n) / secs
	}
	var all histogram
	res.Ops = []OpResult{}
	res.Total = OpResult{Op: "total"}
	for k := range numKinds {
		st := &r.stats[k]
		o := OpResult{Op: kindNames[k], Ops: st.ops.Load(), Errors: st.errs.Load(), Bytes: st.bytes.Load()}
		if o.Ops+o.Errors == 0 {
			continue
		}
		o.OpsPerSec, o.MiBPerSec = rate(o.Ops), rate(o.Bytes)/(1<<20)
		o.Latency = st.hist.summary()
		all.mergeFrom(&st.hist)
		res.Ops = append(res.Ops, o)
		res.Total.Ops += o.Ops
		res.Total.Errors += o.Errors
		res.Total.Bytes += o.Bytes
	}
	res.Total.OpsPerSec, res.Total.MiBPerSec = rate(res.Total.Ops), rate(res.Total.Bytes)/(1<<20)
	res.Total.Latency = all.summary()

	r.errMu.Lock()
	defer r.errMu.Unlock()
	res.Errors = make([]ErrorCount, 0, len(r.errMu.order))
	for _, m := range r.errMu.order {
		res.Errors = append(res.Errors, ErrorCount{Message: m, Count: r.errMu.counts[m], Example: r.errMu.examples[m]})
	}
}

// WriteTable writes r for people: a header, one row per request kind and
// a total row, then the errors seen.
func WriteTable(w io.Writer, r Result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "endpoint %s  bucket %s  op %s  size %s  concurrency %d  duration %s  checksum %s  seed %d\n",
		r.Endpoint, r.Bucket, r.Op, FormatSize(r.ObjectSize), r.Concurrency, r.Duration, r.Checksum, r.Seed)
	if r.Preloaded > 0 {
		fmt.Fprintf(&b, "preloaded %d objects (untimed)\n", r.Preloaded)
	}
	fmt.Fprintf(&b, "elapsed %.2fs\n", r.Elapsed.Seconds())
	if r.ServerCPU > 0 {
		fmt.Fprintf(&b, "server CPU %.2fs, %.3f ms per request\n", r.ServerCPU.Seconds(), r.serverCPUPerOp())
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "op\tops\terrors\tops/s\tMiB/s\tmean\tp50\tp90\tp99\tmax\t")
	row := func(o OpResult) {
		l := o.Latency
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f\t%.2f\t%s\t%s\t%s\t%s\t%s\t\n", o.Op, o.Ops, o.Errors, o.OpsPerSec, o.MiBPerSec,
			fmtLatency(l.Mean), fmtLatency(l.P50), fmtLatency(l.P90), fmtLatency(l.P99), fmtLatency(l.Max))
	}
	for _, o := range r.Ops {
		row(o)
	}
	if len(r.Ops) != 1 {
		row(r.Total)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Errors) > 0 {
		b.WriteString("\nerrors:\n")
		for _, e := range r.Errors {
			fmt.Fprintf(&b, "  %8d  %s\n", e.Count, e.Message)
			if e.Example != e.Message && !strings.HasSuffix(e.Message, ": "+e.Example) {
				fmt.Fprintf(&b, "            e.g. %s\n", e.Example)
			}
		}
	}
	if r.Kept {
		fmt.Fprintf(&b, "\nobjects kept in bucket %s under %s\n", r.Bucket, r.Prefix)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func fmtLatency(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < 10*time.Second:
		return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000)
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}

// FormatSnapshot renders a progress line (no line ending).
func FormatSnapshot(s Snapshot) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-7s %6.1fs  ", s.Phase, s.Elapsed.Seconds())
	if s.Total > 0 {
		fmt.Fprintf(&b, "%d/%d  ", s.Ops, s.Total)
	} else {
		fmt.Fprintf(&b, "%d ops  ", s.Ops)
	}
	fmt.Fprintf(&b, "%8.1f ops/s  %8.2f MiB/s  %d errors", s.OpsPerSec, s.MiBPerSec, s.Errors)
	return b.String()
}
