package main

import (
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// The fan-in of a run: readers, dialers and senders send what they
// measured on one channel, and one reporter goroutine owns every counter
// and histogram, so none needs a lock. A reader does not send each
// delivery: it fills a sampleBatch of batchLen latencies and counts and
// sends the batch when it is full or the reader ends, so the channel
// carries one send per batchLen deliveries; batches come back through a
// free list, so none is allocated in a steady run. What a progress line
// needs live (messages sent, deliveries) the run reads from atomics that
// each have one writer.

const (
	// batchLen is how many deliveries a sampleBatch holds.
	batchLen = 512

	// Histogram range and precision, in nanoseconds (what HdrHistogram's
	// log tools expect): 1 µs to an hour, 3 significant digits. Values
	// outside are recorded as the nearest end.
	histLowest  = int64(time.Microsecond)
	histHighest = int64(time.Hour)
	histDigits  = 3

	// progressEvery is how often the progress line is redrawn.
	progressEvery = 250 * time.Millisecond
)

// sampleBatch is what a reader measured since its last batch.
type sampleBatch struct {
	n           int
	corrected   [batchLen]int64 // ns from the intended send time
	uncorrected [batchLen]int64 // ns from the actual send time
	received    int64           // first deliveries of a measured message
	duplicated  int64           // deliveries of a message that had arrived before
	outOfOrder  int64           // deliveries after a later message of the same publisher
	altered     int64           // markers that did not parse, or payloads changed after one
	stray       int64           // markers of another connection, or of a message never sent
	other       int64           // messages without a marker: welcomes, presence, history
}

// add records a delivery's latencies.
func (b *sampleBatch) add(corrected, uncorrected time.Duration) {
	b.corrected[b.n] = int64(corrected)
	b.uncorrected[b.n] = int64(uncorrected)
	b.n++
}

// Kinds of benchEvent.
const (
	evBatch     = iota // batch holds samples
	evConnected        // a connection opened after latency
	evConnectFailed
	evEnded // a connection ended: code is the server's close code, or cause names the error
	evWriteFailed
)

// benchEvent is one message to the reporter.
type benchEvent struct {
	kind    int
	batch   *sampleBatch
	latency time.Duration
	code    int    // evEnded: the close code; 0 when there was none
	cause   string // evConnectFailed, evEnded, evWriteFailed: the kind of error
	detail  string // evConnectFailed: the explanation, kept for the first one
}

// benchStats are the reporter's counters and histograms.
type benchStats struct {
	corrected, uncorrected, connect *hdrhistogram.Histogram
	sampleBatch                     // the counts, summed; n and the arrays unused
	connectsOK                      int64
	connectFailures                 map[string]int64 // by cause: refused, timeout, http NNN, tls, ...
	firstFailure                    string           // the first failed connect, explained
	closes                          map[int]int64    // server closes during the run, by code
	errors                          map[string]int64 // connections lost and writes failed, by kind
}

// reporter is the goroutine that owns a run's benchStats.
type reporter struct {
	events   chan benchEvent
	free     chan *sampleBatch
	done     chan benchStats
	progress func() // draws the progress line; nil for none
}

// startReporter starts the reporter goroutine; progress, if not nil, is
// called every progressEvery from it.
func startReporter(progress func()) *reporter {
	r := &reporter{
		events:   make(chan benchEvent, 256),
		free:     make(chan *sampleBatch, 64),
		done:     make(chan benchStats, 1),
		progress: progress,
	}
	go r.run()
	return r
}

// newBatch returns an empty batch, from the free list if it has one.
func (r *reporter) newBatch() *sampleBatch {
	select {
	case b := <-r.free:
		return b
	default:
		return new(sampleBatch)
	}
}

// finish ends the reporter, once nothing sends on events any more, and
// returns the stats.
func (r *reporter) finish() benchStats {
	close(r.events)
	return <-r.done
}

func (r *reporter) run() {
	s := benchStats{
		corrected:       hdrhistogram.New(histLowest, histHighest, histDigits),
		uncorrected:     hdrhistogram.New(histLowest, histHighest, histDigits),
		connect:         hdrhistogram.New(histLowest, histHighest, histDigits),
		connectFailures: map[string]int64{},
		closes:          map[int]int64{},
		errors:          map[string]int64{},
	}
	var tick <-chan time.Time
	if r.progress != nil {
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case ev, ok := <-r.events:
			if !ok {
				r.done <- s
				return
			}
			s.record(ev)
			if ev.batch != nil {
				*ev.batch = sampleBatch{}
				select {
				case r.free <- ev.batch:
				default:
				}
			}
		case <-tick:
			r.progress()
		}
	}
}

// record adds one event to the stats.
func (s *benchStats) record(ev benchEvent) {
	switch ev.kind {
	case evBatch:
		b := ev.batch
		for i := range b.n {
			recordClamped(s.corrected, b.corrected[i])
			recordClamped(s.uncorrected, b.uncorrected[i])
		}
		s.received += b.received
		s.duplicated += b.duplicated
		s.outOfOrder += b.outOfOrder
		s.altered += b.altered
		s.stray += b.stray
		s.other += b.other
	case evConnected:
		s.connectsOK++
		recordClamped(s.connect, int64(ev.latency))
	case evConnectFailed:
		s.connectFailures[ev.cause]++
		if s.firstFailure == "" {
			s.firstFailure = ev.detail
		}
	case evEnded:
		if ev.code != 0 {
			s.closes[ev.code]++
		} else {
			s.errors[ev.cause]++
		}
	case evWriteFailed:
		s.errors[ev.cause]++
	}
}

// recordClamped records v, held within the histogram's range.
func recordClamped(h *hdrhistogram.Histogram, v int64) {
	h.RecordValue(min(max(v, histLowest), histHighest))
}
