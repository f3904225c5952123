package main

import "time"

// Pacing of the poller's rounds under load. A busy round, with paceEvents
// ready sockets or more, or deliveries arriving at paceRate per second or
// more (over pacePeriod at least), that took less than pacePeriod is
// followed by a sleep for the rest of it, so that more arrives per read:
// under load each socket read then carries many messages, which leaves the
// CPU to the server under test.
// It adds at most pacePeriod to measured latencies, and only under load;
// at lower rates (an echo's round trips) rounds are not paced, so their
// latencies are measured as they are.
const (
	pacePeriod = time.Millisecond
	paceEvents = 64
	paceRate   = 200_000
)

// pollReader reads every plain-TCP connection of a run from the poller's
// goroutine (Linux): a socket is watched level-triggered, and each round
// reads every ready socket once, non-blocking, into one shared buffer. So
// one system call fetches all that arrived on a socket since the last
// round, and reading takes at most one core however many connections
// there are.
type pollReader struct {
	*reader
	p    *poller[*benchConn]
	done chan struct{} // closed when the poller's goroutine has ended

	events     int       // ready sockets in this round
	roundStart time.Time // when the last paced period began
	lastCount  int64     // deliveries by then
}

// startPollReader starts the poller, or reports errNoPoller where there
// is none.
func startPollReader(run *benchRun) (*pollReader, error) {
	pr := &pollReader{reader: newReader(run, pollChunk, cacheSlots), done: make(chan struct{})}
	p, err := newPoller(pr.ready)
	if err != nil {
		return nil, err
	}
	pr.p = p
	p.afterRound = pr.pace
	go func() {
		defer close(pr.done)
		p.run()
		pr.flush()
	}()
	return pr, nil
}

// add makes the poller read c, and reports false if it cannot (TLS).
func (pr *pollReader) add(c *benchConn) bool {
	if c.sock.fd == nil {
		return false
	}
	c.sock.noWait(anyReads)
	fd, err := pr.p.watch(c.sock.fd, c)
	if err != nil {
		c.sock.wait()
		return false
	}
	c.pollFD = fd
	return true
}

// ready reads c, whose socket has input; on the poller's goroutine.
func (pr *pollReader) ready(c *benchConn) {
	pr.events++
	err := pr.readFrom(c)
	if err == nil || err == errWouldBlock {
		return
	}
	pr.p.remove(c.pollFD, c)
	pr.run.connEnded(c, err)
}

// stop ends the poller's goroutine and waits for it; its samples are
// flushed.
func (pr *pollReader) stop() {
	pr.p.stop()
	<-pr.done
}

// pace ends a round: after a busy one it sleeps for the rest of
// pacePeriod.
func (pr *pollReader) pace() {
	count, elapsed := pr.received.Load(), time.Since(pr.roundStart)
	busy := paceBusy(pr.events, count-pr.lastCount, elapsed)
	pr.events = 0
	if busy {
		if d := pacePeriod - elapsed; d > 0 {
			time.Sleep(d)
		}
	}
	pr.roundStart, pr.lastCount = time.Now(), count
}

// paceBusy reports whether a round with events ready sockets that brought
// delivered deliveries in elapsed is load. The rate is taken over at least
// pacePeriod: a short round that caught a few echo replies at once is not
// load, and sleeping after it would add a pacePeriod to every round trip.
func paceBusy(events int, delivered int64, elapsed time.Duration) bool {
	return events >= paceEvents || float64(delivered) >= paceRate*max(elapsed, pacePeriod).Seconds()
}
