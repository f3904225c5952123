package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// openConns opens n connections, spread round-robin over urls, at most
// --dial-concurrency at a time and, for non-publishers, spread over
// --ramp. Each starts being read as soon as it is open. The slice has nil
// for the connections that failed; failures are reported to the reporter.
func (run *benchRun) openConns(ctx context.Context, n int, urls []string, publishers bool) []*benchConn {
	conns := make([]*benchConn, n)
	sem := make(chan struct{}, run.cfg.dialConcurrency)
	var wg sync.WaitGroup
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
dialing:
	for i := range n {
		if run.cfg.ramp > 0 && !publishers {
			timer.Reset(time.Until(start.Add(run.cfg.ramp * time.Duration(i) / time.Duration(n))))
			select {
			case <-ctx.Done():
				break dialing
			case <-timer.C:
			}
		}
		select {
		case <-ctx.Done():
			break dialing
		case sem <- struct{}{}:
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			conns[i] = run.open(ctx, urls[i%len(urls)], i, publishers)
		}()
	}
	wg.Wait()
	return conns
}

// open opens one connection and starts reading it; nil if it failed.
func (run *benchRun) open(ctx context.Context, u string, id int, publisher bool) *benchConn {
	t0 := time.Now()
	c, resp, err := dialBench(ctx, u, run.cfg.handshake)
	if err != nil {
		if ctx.Err() == nil {
			run.rep.events <- benchEvent{kind: evConnectFailed, cause: connectCause(resp, err),
				detail: explainConnectError(u, resp, err, run.cfg.handshake)}
		}
		return nil
	}
	run.rep.events <- benchEvent{kind: evConnected, latency: time.Since(t0)}
	c.id, c.publisher = id, publisher
	switch {
	case publisher:
	case run.cfg.mode == modeEcho:
		c.tracks = []track{{high: -1}}
	case run.cfg.mode == modeBroadcast:
		c.tracks = make([]track, run.cfg.publishers)
		for i := range c.tracks {
			c.tracks[i].high = -1
		}
	}
	if !publisher {
		run.opened.Add(1)
	}
	run.startReading(c)
	return c
}

// startReading hands c to the poller, or to a reader goroutine of its own.
func (run *benchRun) startReading(c *benchConn) {
	if run.poll != nil && run.poll.add(c) {
		return
	}
	r := newReader(run, connChunk, 1)
	run.mu.Lock()
	run.readers = append(run.readers, r)
	run.mu.Unlock()
	run.readWG.Add(1)
	go func() {
		defer run.readWG.Done()
		r.readLoop(c)
	}()
}

// openPublishers opens the broadcast publishers on the first URL; the run
// cannot start without all of them.
func (run *benchRun) openPublishers(ctx context.Context) error {
	run.pubs = run.openConns(ctx, run.cfg.publishers, run.cfg.urls[:1], true)
	for _, p := range run.pubs {
		if p == nil {
			return fmt.Errorf("a publisher could not connect to %s", run.cfg.urls[0])
		}
	}
	run.acks = make([]pubAcks, len(run.pubs))
	for i := range run.acks {
		run.acks[i].wake = make(chan struct{}, 1)
	}
	run.pubList.Store(&run.pubs)
	return nil
}

// waitReady sends probes from every publisher until every subscriber has
// seen one: the server has registered them all. It fails when none has by
// readyTimeout; a few that have not are warned about in the results.
func (run *benchRun) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(readyTimeout)
	payload := run.codec.newPayload()
	t := time.NewTicker(probeEvery)
	defer t.Stop()
	for seq := int64(0); ; seq++ {
		for _, p := range run.pubs {
			now := time.Since(run.base)
			run.codec.encode(payload, marker{kind: markProbe, pub: p.id, seq: seq, intended: now, actual: now})
			if err := p.send(run.cfg.op, payload); err != nil {
				return fmt.Errorf("publisher %d: %w", p.id, err)
			}
		}
		select {
		case <-ctx.Done():
			return errors.New("interrupted while waiting for the subscribers")
		case <-t.C:
		}
		ready := 0
		for _, c := range run.conns {
			if c != nil && c.ready.Load() {
				ready++
			}
		}
		if ready == int(run.opened.Load()) {
			return nil
		}
		if time.Now().After(deadline) {
			if ready == 0 {
				return fmt.Errorf("no subscriber received a publisher's message within %v: does the server broadcast to this room?", readyTimeout)
			}
			return nil
		}
	}
}

// connectLoop is the connect mode: connections opened one after another,
// each closed once open, --dial-concurrency at a time and at --rate per
// second, until --messages handshakes or --duration.
func (run *benchRun) connectLoop(ctx context.Context, res *runResult) {
	// The duration stops new handshakes; those under way finish.
	starting := ctx
	if run.cfg.duration > 0 {
		var stop context.CancelFunc
		starting, stop = context.WithTimeout(ctx, run.cfg.duration)
		defer stop()
	}
	res.sendStart = time.Now()
	sem := make(chan struct{}, run.cfg.dialConcurrency)
	var wg sync.WaitGroup
	timer := time.NewTimer(0)
	defer timer.Stop()
	var i int64
loop:
	for ; run.cfg.messages == 0 || i < run.cfg.messages; i++ {
		if run.cfg.rate > 0 {
			timer.Reset(time.Until(res.sendStart.Add(time.Duration(float64(i) / run.cfg.rate * float64(time.Second)))))
			select {
			case <-starting.Done():
				break loop
			case <-timer.C:
			}
		}
		select {
		case <-starting.Done():
			break loop
		case sem <- struct{}{}:
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if c := run.openOnce(ctx); c != nil {
				c.closeNormal()
				c.conn.Close()
			}
		}()
	}
	wg.Wait()
	res.sendTime = time.Since(res.sendStart)
	res.connectTime = res.sendTime
	res.sent = i
}

// openOnce opens a connection for the connect mode, which reads nothing.
func (run *benchRun) openOnce(ctx context.Context) *benchConn {
	u := run.cfg.urls[int(run.dialing.Add(1)-1)%len(run.cfg.urls)]
	t0 := time.Now()
	c, resp, err := dialBench(ctx, u, run.cfg.handshake)
	if err != nil {
		if ctx.Err() == nil {
			run.rep.events <- benchEvent{kind: evConnectFailed, cause: connectCause(resp, err),
				detail: explainConnectError(u, resp, err, run.cfg.handshake)}
		}
		return nil
	}
	run.rep.events <- benchEvent{kind: evConnected, latency: time.Since(t0)}
	run.opened.Add(1)
	return c
}

// connectCause names why a connection attempt failed, for the report:
// refused, timeout, http NNN, tls, dns, reset, or other.
func connectCause(resp *http.Response, err error) string {
	var ne net.Error
	var dnsErr *net.DNSError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	var rh tls.RecordHeaderError
	var ae *tls.AlertError
	switch {
	case errors.Is(err, websocket.ErrBadHandshake) && resp != nil:
		return fmt.Sprintf("http %d", resp.StatusCode)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return "timeout"
	case errors.As(err, &dnsErr):
		return "dns"
	case errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci) || errors.As(err, &rh) || errors.As(err, &ae):
		return "tls"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	}
	return "other"
}

// errorKind names how a connection was lost, for the report.
func errorKind(err error) string {
	switch {
	case err == nil:
		return "other"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, net.ErrClosed):
		return "closed"
	case errors.Is(err, io.EOF):
		return "eof (no close frame)"
	}
	var pe *protocolError
	if errors.As(err, &pe) {
		return "protocol"
	}
	return "other"
}
