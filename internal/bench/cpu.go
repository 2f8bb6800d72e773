package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// userHZ is the unit of the CPU times in /proc/PID/stat: USER_HZ, which
// Linux fixes at 100 for user space on every architecture Go supports.
const userHZ = 100

// processCPU returns the CPU time (user and system, all threads) the
// processes have used so far, read from /proc.
func processCPU(pids []int) (time.Duration, error) {
	var total time.Duration
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, fmt.Errorf("server process %d: %w", pid, err)
		}
		d, err := parseProcStatCPU(b)
		if err != nil {
			return 0, fmt.Errorf("server process %d: %w", pid, err)
		}
		total += d
	}
	return total, nil
}

var errProcStat = errors.New("malformed /proc/PID/stat")

// parseProcStatCPU returns utime+stime of one /proc/PID/stat line. The
// command name, in parentheses, may hold spaces and parentheses itself,
// so the fields are counted from its last closing parenthesis: then
// state, ppid, ... with utime and stime the 12th and 13th.
func parseProcStatCPU(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errProcStat
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0, errProcStat
	}
	var ticks uint64
	for _, s := range f[11:13] {
		n, err := strconv.ParseUint(string(s), 10, 63)
		if err != nil || n > 1<<40 {
			return 0, errProcStat
		}
		ticks += n
	}
	return time.Duration(ticks) * (time.Second / userHZ), nil
}
