//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

// haveProcStats: --pid works here.
const haveProcStats = true

// clockTick is the unit of utime and stime in /proc: USER_HZ, 100 on Linux.
const clockTick = 10 * time.Millisecond

// readProcUsage reads the machine's ticks and, for pid > 0, the server's
// CPU time and resident memory. What cannot be read stays zero.
func readProcUsage(pid int) procUsage {
	u := procUsage{cpus: runtime.NumCPU()}
	u.busy, u.total = machineTicks()
	if pid <= 0 {
		return u
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// The command name may hold spaces; the fields start after its last ')'.
		if i := bytes.LastIndexByte(b, ')'); i >= 0 {
			f := bytes.Fields(b[i+1:]) // f[0] is field 3; utime and stime are fields 14 and 15
			if len(f) > 12 {
				ut, _ := strconv.ParseInt(string(f[11]), 10, 64)
				st, _ := strconv.ParseInt(string(f[12]), 10, 64)
				u.cpu = time.Duration(ut+st) * clockTick
			}
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for line := range bytes.Lines(b) {
			if rest, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
				f := bytes.Fields(rest) // "123456 kB"
				if len(f) > 0 {
					kb, _ := strconv.ParseInt(string(f[0]), 10, 64)
					u.rss = kb << 10
				}
			}
		}
	}
	return u
}

// machineTicks returns the non-idle and total ticks of all CPUs.
func machineTicks() (busy, total uint64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := bytes.Cut(b, []byte{'\n'})
	f := bytes.Fields(line) // cpu user nice system idle iowait irq softirq steal
	for i := 1; i < len(f) && i <= 8; i++ {
		v, _ := strconv.ParseUint(string(f[i]), 10, 64)
		total += v
		if i != 4 && i != 5 { // idle, iowait
			busy += v
		}
	}
	return busy, total
}
