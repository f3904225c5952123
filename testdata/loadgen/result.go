package main

import (
	"fmt"
	"io"
	"math/bits"
	"time"
)

// Histogram geometry: latencies in microseconds; values below 2*subBuckets
// have their own bucket, larger ones fall into subBuckets buckets per power of
// two, so a bucket is at most 1/32 (3%) wide relative to its value.
const (
	subBits    = 5
	subBuckets = 1 << subBits
	maxShift   = 32 // values up to 2^38 µs (3 days) are exact to 3%
	numBuckets = (maxShift + 2) * subBuckets
)

// histogram counts latencies in log-linear microsecond buckets. The zero
// value is empty.
type histogram struct {
	counts [numBuckets]uint64
	total  uint64
}

func bucketOf(us uint64) int {
	shift := max(bits.Len64(us)-subBits-1, 0)
	if shift > maxShift {
		return numBuckets - 1
	}
	return shift<<subBits + int(us>>shift)
}

// bucketMid is the middle of bucket i in microseconds.
func bucketMid(i int) float64 {
	shift := max(i>>subBits-1, 0)
	low := uint64(i-shift<<subBits) << shift
	return float64(low) + float64(uint64(1)<<shift-1)/2
}

func (h *histogram) add(d time.Duration) {
	h.counts[bucketOf(uint64(d/time.Microsecond))]++
	h.total++
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
}

// quantile returns the latency below which the fraction q of the samples fall.
func (h *histogram) quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(q*float64(h.total-1)) + 1
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(bucketMid(i) * float64(time.Microsecond))
		}
	}
	return 0
}

// result holds the figures of one publishing run.
type result struct {
	rate        int           // target messages per second
	subscribers int           // subscriber connections
	sent        int64         // messages published
	elapsed     time.Duration // publishing time
	expected    int64         // sent × subscribers
	received    int64         // deliveries of this run
	outOfOrder  int64         // deliveries older than one already seen
	bad         int64         // malformed, altered or wrongly typed payloads
	stray       int64         // late deliveries of an earlier run
	dropped     int           // subscribers whose connection failed (since connecting)
	maxLat      time.Duration
	latencies   histogram
	usage       usage // CPU used during the run and drain
	publishErr  error // why the publisher stopped early, if it did
}

func (r *result) lost() int64               { return max(r.expected-r.received, 0) }
func (r *result) p99() time.Duration        { return r.latencies.quantile(0.99) }
func (r *result) publishRate() float64      { return float64(r.sent) / r.elapsed.Seconds() }
func (r *result) deliveriesPerSec() float64 { return float64(r.received) / r.elapsed.Seconds() }

// passed reports whether every message reached every subscriber, intact and
// in order, with p99 latency under passP99.
func (r *result) passed() bool {
	return r.publishErr == nil && r.received > 0 && r.lost() == 0 && r.dropped == 0 && r.bad == 0 &&
		r.outOfOrder == 0 && r.p99() < passP99
}

// line renders the result as one line of key=value fields.
func (r *result) line() string {
	s := fmt.Sprintf("rate=%d pub=%.1f/s deliveries=%.0f/s expected=%d received=%d lost=%d "+
		"p50=%v p99=%v max=%v dropped=%d ooo=%d bad=%d",
		r.rate, r.publishRate(), r.deliveriesPerSec(), r.expected, r.received, r.lost(),
		roundLat(r.latencies.quantile(0.5)), roundLat(r.p99()), roundLat(r.maxLat),
		r.dropped, r.outOfOrder, r.bad)
	u := r.usage
	if u.serverCPU >= 0 && r.received > 0 {
		s += fmt.Sprintf(" srv_cpu=%.3fus/delivery srv_util=%.0f%%",
			float64(u.serverCPU)/float64(time.Microsecond)/float64(r.received), u.percent(u.serverCPU))
	}
	s += fmt.Sprintf(" gen_util=%.0f%% irq_util=%.0f%% machine_busy=%.0f%%",
		u.percent(u.selfCPU), u.irqPercent(), u.machineBusy()*100)
	if other, ok := u.otherPercent(); ok {
		s += fmt.Sprintf(" other_util=%.0f%%", other)
	}
	if r.publishErr != nil {
		s += fmt.Sprintf(" publisher_error=%q", r.publishErr.Error())
	}
	if r.passed() {
		return s + " PASS"
	}
	return s + " FAIL"
}

func roundLat(d time.Duration) time.Duration {
	switch {
	case d >= 100*time.Millisecond:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

// warn says on w what may make the figures of r misleading: a machine with
// no idle CPU left (the generator competes with the server for the same
// cores, so the figure is bounded by the machine as much as by the server),
// CPU used by other processes, and altered payloads.
func warn(w io.Writer, r result, cfg config) {
	if r.bad > 0 && !cfg.splitNewlines {
		fmt.Fprintf(w, "loadgen: %d payloads were malformed or altered; "+
			"if the server joins queued messages with newlines (gorilla's chat example), pass -split-newlines\n", r.bad)
	}
	u := r.usage
	if busy := u.machineBusy(); busy >= 0.9 {
		fmt.Fprintf(w, "loadgen: note: the machine was %.0f%% busy during rate %d (generator %.0f%% of a core); "+
			"generator and server share the %d CPUs, so this run is CPU-bound\n",
			busy*100, r.rate, u.percent(u.selfCPU), u.cpus)
	}
	if other, ok := u.otherPercent(); ok && other >= 20 {
		fmt.Fprintf(w, "loadgen: warning: other processes used %.0f%% of a core during rate %d; "+
			"the figures are disturbed, run again on a quiet machine\n", other, r.rate)
	}
}
