package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of the CPU times in /proc/PID/stat: the kernel's
// USER_HZ, which is 100 on every architecture Linux exports it for.
const userHZ = 100

// procStat is what BenchmarkJob reads from /proc/PID/stat, times in clock
// ticks: the process's own CPU time in user and kernel mode, and that of
// its children that have exited and been waited for.
type procStat struct {
	ppid                         int
	utime, stime, cutime, cstime int64
}

func readProcStat(pid int) (procStat, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// The command name, in parentheses, may hold spaces; the fields after
	// it start with the state (field 3 of proc(5)).
	end := strings.LastIndexByte(string(data), ')')
	if end < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(data[end+1:]))
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	field := func(n int) int64 { // n as numbered in proc(5)
		v, _ := strconv.ParseInt(f[n-3], 10, 64)
		return v
	}
	return procStat{ppid: int(field(4)), utime: field(14), stime: field(15), cutime: field(16), cstime: field(17)}, nil
}

func ticks(n int64) time.Duration { return time.Duration(n) * time.Second / userHZ }

// processCPU is the CPU time pid has used so far, user and kernel.
func processCPU(pid int) (time.Duration, error) {
	st, err := readProcStat(pid)
	if err != nil {
		return 0, err
	}
	return ticks(st.utime + st.stime), nil
}

// clusterCPU is the CPU time a PostgreSQL cluster has used so far: the
// postmaster's own, its exited children's (cutime and cstime: backends that
// ended), and every live child's (backends, background workers, the
// checkpointer and the other auxiliary processes). The postmaster is read
// first, so a child that exits in between is missed rather than counted
// twice.
func clusterCPU(postmaster int) (time.Duration, error) {
	pm, err := readProcStat(postmaster)
	if err != nil {
		return 0, err
	}
	total := pm.utime + pm.stime + pm.cutime + pm.cstime
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == postmaster {
			continue
		}
		st, err := readProcStat(pid)
		if err != nil || st.ppid != postmaster {
			continue // gone, or not the cluster's
		}
		total += st.utime + st.stime
	}
	return ticks(total), nil
}
