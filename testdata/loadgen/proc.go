package main

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

// clockTick is the unit of utime and stime in /proc: USER_HZ, 100 on Linux.
const clockTick = 10 * time.Millisecond

// usage is a reading of CPU clocks; since turns two readings into the
// amounts used between them.
type usage struct {
	wall      time.Duration
	serverCPU time.Duration // utime+stime of the server process, -1 if unknown
	selfCPU   time.Duration // user+system time of this generator
	busy      uint64        // machine-wide non-idle ticks (/proc/stat)
	irq       uint64        // machine-wide ticks in irq and softirq (loopback packet work)
	total     uint64        // machine-wide ticks
	cpus      int           // online CPUs
}

var processStart = time.Now()

// takeUsage reads the clocks now; pid 0 leaves serverCPU unknown.
func takeUsage(pid int) usage {
	u := usage{wall: time.Since(processStart), serverCPU: -1}
	if pid > 0 {
		if d, err := processCPU(pid); err == nil {
			u.serverCPU = d
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		u.selfCPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	u.busy, u.irq, u.total = machineTicks()
	u.cpus = runtime.NumCPU()
	return u
}

func (u usage) since(before usage) usage {
	d := usage{
		wall:    u.wall - before.wall,
		selfCPU: u.selfCPU - before.selfCPU,
		busy:    u.busy - before.busy,
		irq:     u.irq - before.irq,
		total:   u.total - before.total,
		cpus:    u.cpus,
	}
	d.serverCPU = -1
	if u.serverCPU >= 0 && before.serverCPU >= 0 {
		d.serverCPU = u.serverCPU - before.serverCPU
	}
	return d
}

// percent is cpu as a percentage of one core over the wall time.
func (u usage) percent(cpu time.Duration) float64 {
	if u.wall <= 0 {
		return 0
	}
	return 100 * float64(cpu) / float64(u.wall)
}

// machineBusy is the fraction of all cores' time that was not idle.
func (u usage) machineBusy() float64 {
	if u.total == 0 {
		return 0
	}
	return float64(u.busy) / float64(u.total)
}

// irqPercent is the time spent in irq and softirq (for loopback TCP, the
// packet delivery of both processes' sends), as a percentage of one core.
// The kernel charges it to no process.
func (u usage) irqPercent() float64 {
	if u.total == 0 {
		return 0
	}
	return float64(u.irq) / float64(u.total) * float64(u.cpus) * 100
}

// otherPercent is the CPU used by neither the server, nor the generator, nor
// irq work, as a percentage of one core: other processes on the machine. ok
// is false without a server PID.
func (u usage) otherPercent() (float64, bool) {
	if u.serverCPU < 0 {
		return 0, false
	}
	all := u.machineBusy() * float64(u.cpus) * 100
	return max(all-u.percent(u.serverCPU)-u.percent(u.selfCPU)-u.irqPercent(), 0), true
}

// processCPU returns utime+stime of pid from /proc/PID/stat, all threads included.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; the fields start after its last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseUint(string(f[11]), 10, 64)
	st, err2 := strconv.ParseUint(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	return time.Duration(ut+st) * clockTick, nil
}

// machineTicks returns the non-idle, irq+softirq and total ticks of all
// CPUs from /proc/stat.
func machineTicks() (busy, irq, total uint64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, 0
	}
	line, _, _ := bytes.Cut(b, []byte{'\n'})
	f := bytes.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	for i := 1; i < len(f) && i <= 8; i++ {
		v, _ := strconv.ParseUint(string(f[i]), 10, 64)
		total += v
		switch i {
		case 4, 5: // idle, iowait
		case 6, 7: // irq, softirq
			busy += v
			irq += v
		default:
			busy += v
		}
	}
	return busy, irq, total
}

// raiseFileLimit raises the soft RLIMIT_NOFILE to the hard limit and returns it.
func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, err
		}
	}
	return lim.Cur, nil
}
