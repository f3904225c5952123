package main

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Timing of a run's phases.
const (
	// drainQuiet: after the last send, missing deliveries count as lost
	// once none has arrived for this long.
	drainQuiet = time.Second
	// drainMax bounds the wait after the last send however slowly
	// deliveries trickle in.
	drainMax = 10 * time.Second
	// drainPoll is how often the drain sums the delivery counters.
	drainPoll = 10 * time.Millisecond
	// probeEvery is how often publishers send a readiness probe while
	// waiting for every subscriber to see one.
	probeEvery = 100 * time.Millisecond
	// readyTimeout bounds the wait for the subscribers to see a probe.
	readyTimeout = 15 * time.Second
	// replyTimeout: in a closed loop, a sender whose message has not
	// arrived for this long sends the next one anyway.
	replyTimeout = time.Second
)

// benchOutput is where a run writes: results on stdout, the progress line
// (only when progress is set) and warnings on stderr.
type benchOutput struct {
	stdout, stderr io.Writer
	progress       bool
}

// benchRun is one run of wsx bench.
type benchRun struct {
	cfg   benchConfig
	codec *markerCodec // nil in the connect and idle modes
	base  time.Time    // marker times count from here
	rep   *reporter
	poll  *pollReader // nil where there is no poller

	mu      sync.Mutex // guards readers while connections open
	readers []*reader  // every reader, for the live count of deliveries
	readWG  sync.WaitGroup

	conns      []*benchConn                 // echo connections or subscribers, by id; nil for failed ones
	pubs       []*benchConn                 // broadcast publishers
	pubList    atomic.Pointer[[]*benchConn] // pubs, for the readers once they are open
	senders    atomic.Pointer[[]*benchConn] // the open connections that send, once sending begins
	acks       []pubAcks                    // closed-loop broadcast: deliveries per publisher
	closedLoop bool
	stopSend   atomic.Bool // the closed loop sends no more
	closing    atomic.Bool // bench closes: the closes that follow are its own
	dialing    atomic.Int64
	opened     atomic.Int64
}

// runBench runs wsx bench and writes its results. The error decides the
// exit code: a usageError, an abnormalError for lost messages or failed
// connects, anything else when the run could not start.
func runBench(ctx context.Context, cfg benchConfig, out benchOutput) error {
	run := &benchRun{cfg: cfg, base: time.Now(), closedLoop: cfg.rate == 0}
	var id [8]byte
	crand.Read(id[:])
	if cfg.mode == modeEcho || cfg.mode == modeBroadcast {
		run.codec = newMarkerCodec(binary.LittleEndian.Uint64(id[:]), cfg.size)
	}
	var hdr io.WriteCloser
	if cfg.hdrFile != "" {
		f, err := createFile(cfg.hdrFile)
		if err != nil {
			return fmt.Errorf("--%s: %w", flagHdr, err)
		}
		hdr = f
		defer f.Close()
	}
	var progress func()
	if out.progress {
		var line progressLine
		progress = func() { line.draw(out.stderr, run) }
	}
	run.rep = startReporter(progress)
	if pr, err := startPollReader(run); err == nil {
		run.poll = pr
		run.readers = append(run.readers, pr.reader)
	}
	res := run.execute(ctx)
	stats := run.rep.finish()
	if out.progress {
		fmt.Fprint(out.stderr, "\r\033[K")
	}
	snap := newSnapshot(run, res, stats)
	if err := snap.write(out.stdout, cfg.json); err != nil {
		return err
	}
	if hdr != nil {
		if err := writeHdrLog(hdr, run, stats); err != nil {
			return fmt.Errorf("--%s: %w", flagHdr, err)
		}
	}
	return snap.verdict(out.stderr)
}

// runResult is what the orchestration itself measured.
type runResult struct {
	started     time.Time     // when the connects began
	connectTime time.Duration // time to open every connection
	sendStart   time.Time     // when sending began
	sendTime    time.Duration // time spent sending
	sent        int64         // data messages sent
	expected    int64         // deliveries that should have arrived
	interrupted bool          // Ctrl-C ended the run early
	startErr    error         // why the run could not start
	selfCPU     time.Duration // CPU used by bench from its first connect to the end of the drain
	server      procUsage     // --pid: the server's CPU over the same span, and memory
	// The span that per-delivery figures cover: sending and draining
	// (connect and idle: the whole run), without the connects and probes.
	spanCPU    time.Duration // bench's CPU
	span       procUsage     // the server's CPU and the machine's ticks
	spanLength time.Duration
}

// execute runs the mode's phases: connect, send, drain, close.
func (run *benchRun) execute(ctx context.Context) runResult {
	res := runResult{started: time.Now()}
	cpu0, srv0 := selfCPU(), readProcUsage(run.cfg.pid)
	defer run.closeAll()
	if run.cfg.mode == modeConnect {
		run.connectLoop(ctx, &res)
		res.finish(run.cfg.pid, cpu0, srv0)
		res.spanCPU, res.span, res.spanLength = res.selfCPU, res.server, time.Since(res.started)
		return res
	}
	run.conns = run.openConns(ctx, run.cfg.conns, run.cfg.urls, false)
	res.connectTime = time.Since(res.started)
	if run.opened.Load() == 0 {
		res.startErr = errors.New("no connection could be opened")
		return res
	}
	switch run.cfg.mode {
	case modeIdle:
		res.sendStart = time.Now()
		select {
		case <-ctx.Done():
		case <-time.After(run.cfg.duration):
		}
		res.sendTime = time.Since(res.sendStart)
	case modeBroadcast:
		if err := run.openPublishers(ctx); err != nil {
			res.startErr = err
			return res
		}
		if err := run.waitReady(ctx); err != nil {
			res.startErr = err
			return res
		}
		fallthrough
	case modeEcho:
		t0, cpu1, srv1 := time.Now(), selfCPU(), readProcUsage(run.cfg.pid)
		run.sendPhase(ctx, &res)
		run.drain(&res)
		res.spanCPU, res.span, res.spanLength = selfCPU()-cpu1, readProcUsage(run.cfg.pid).since(srv1), time.Since(t0)
	}
	res.interrupted = ctx.Err() != nil
	res.finish(run.cfg.pid, cpu0, srv0)
	if res.spanLength == 0 {
		res.spanCPU, res.span, res.spanLength = res.selfCPU, res.server, time.Since(res.started)
	}
	return res
}

// finish reads the CPU and memory used since cpu0 and srv0.
func (res *runResult) finish(pid int, cpu0 time.Duration, srv0 procUsage) {
	res.selfCPU, res.server = selfCPU()-cpu0, readProcUsage(pid).since(srv0)
}

// received is the live count of deliveries.
func (run *benchRun) received() int64 {
	run.mu.Lock()
	defer run.mu.Unlock()
	var n int64
	for _, r := range run.readers {
		n += r.received.Load()
	}
	return n
}

// sentSoFar is the live count of data messages sent; the progress line
// reads it from the reporter's goroutine.
func (run *benchRun) sentSoFar() int64 {
	senders := run.senders.Load()
	if senders == nil {
		return 0
	}
	var n int64
	for _, c := range *senders {
		n += c.sent.Load()
	}
	return n
}

// senderConns are the connections that send data messages.
func (run *benchRun) senderConns() []*benchConn {
	if run.cfg.mode == modeBroadcast {
		return run.pubs
	}
	return run.conns
}

// expected is how many deliveries the messages sent so far should make:
// each echo message one, each broadcast message one per subscriber.
func (run *benchRun) expected() int64 {
	if run.cfg.mode == modeEcho {
		return run.sentSoFar()
	}
	return run.sentSoFar() * run.opened.Load()
}

// drain waits, after the last send, until every expected delivery arrived,
// or none arrived for drainQuiet, or drainMax passed.
func (run *benchRun) drain(res *runResult) {
	res.sent, res.expected = run.sentSoFar(), run.expected()
	hardStop := time.Now().Add(drainMax)
	last, lastChange := int64(-1), time.Now()
	t := time.NewTicker(drainPoll)
	defer t.Stop()
	for {
		got, now := run.received(), time.Now()
		if got != last {
			last, lastChange = got, now
		}
		if got >= res.expected || now.Sub(lastChange) >= drainQuiet || now.After(hardStop) {
			return
		}
		<-t.C
	}
}

// closeAll closes every connection with 1000, waits up to closeGrace for
// the servers' closes, stops the readers and waits for them.
func (run *benchRun) closeAll() {
	run.closing.Store(true)
	all := append(append([]*benchConn(nil), run.conns...), run.pubs...)
	sem := make(chan struct{}, defaultDialConcurrency)
	var wg sync.WaitGroup
	for _, c := range all {
		if c == nil || c.ended.Load() {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			c.closeNormal()
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(closeGrace)
	for _, c := range all {
		for c != nil && !c.ended.Load() && time.Now().Before(deadline) {
			time.Sleep(drainPoll)
		}
	}
	if run.poll != nil {
		run.poll.stop()
	}
	for _, c := range all {
		if c != nil {
			c.conn.Close() // ends the reader goroutines
		}
	}
	run.readWG.Wait()
}

// connEnded records how c ended and closes it; its reader calls it once,
// last.
func (run *benchRun) connEnded(c *benchConn, err error) {
	c.ended.Store(true)
	c.conn.Close()
	if run.closing.Load() {
		return // bench's own close, or its closing the socket
	}
	ev := benchEvent{kind: evEnded}
	var ce *closeCodeError
	switch {
	case errors.As(err, &ce):
		ev.code = ce.code
	default:
		ev.cause = errorKind(err)
	}
	run.rep.events <- ev
}

// progressLine is the state of the progress line, owned by the
// reporter's goroutine, which draws it.
type progressLine struct {
	last              time.Time
	lastSent, lastGot int64
}

// draw redraws the line: elapsed time, connections, messages sent and
// deliveries, with their rates since the last draw.
func (p *progressLine) draw(w io.Writer, run *benchRun) {
	now := time.Now()
	sent, got := run.sentSoFar(), run.received()
	if p.last.IsZero() {
		p.last = run.base
	}
	dt := now.Sub(p.last).Seconds()
	fmt.Fprintf(w, "\r\033[K%6.1fs  conns %d/%d  sent %d (%.0f/s)  received %d (%.0f/s)",
		now.Sub(run.base).Seconds(), run.opened.Load(), run.cfg.conns,
		sent, float64(sent-p.lastSent)/dt, got, float64(got-p.lastGot)/dt)
	p.last, p.lastSent, p.lastGot = now, sent, got
}
