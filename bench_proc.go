package main

import "time"

// procUsage is a reading of a server process's CPU time and memory and of
// the machine's CPU ticks (from /proc, on Linux); since turns two readings
// into what was used between them.
type procUsage struct {
	cpu      time.Duration // the server's utime+stime
	rss      int64         // the server's resident memory, bytes
	rssAdded int64         // after since: resident memory added
	busy     uint64        // machine-wide non-idle ticks
	total    uint64        // machine-wide ticks
	cpus     int           // online CPUs
}

func (u procUsage) since(before procUsage) procUsage {
	return procUsage{
		cpu:      u.cpu - before.cpu,
		rss:      u.rss,
		rssAdded: u.rss - before.rss,
		busy:     u.busy - before.busy,
		total:    u.total - before.total,
		cpus:     u.cpus,
	}
}

// machineBusy is the fraction of all cores' time that was not idle; 0
// where unknown.
func (u procUsage) machineBusy() float64 {
	if u.total == 0 {
		return 0
	}
	return float64(u.busy) / float64(u.total)
}
