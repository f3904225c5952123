package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Timings of connection set-up and of the readiness probe.
const (
	handshakeTimeout = 10 * time.Second
	// probeEvery is how often a probe is re-sent while waiting for every
	// subscriber to be registered in the room.
	probeEvery = 100 * time.Millisecond
	// readyTimeout bounds the wait for every subscriber to see a probe.
	readyTimeout = 15 * time.Second
	// pollEvery is how often the drain loop sums the delivery counters.
	pollEvery = 20 * time.Millisecond
)

// bench holds the connections of a rate run: one publisher and the
// subscribers, all in the same room. Connections stay open across steps.
type bench struct {
	cfg     config
	base    time.Time // payload timestamps are nanoseconds since base (monotonic)
	pub     *websocket.Conn
	subs    []*subscriber
	pollers []*poller
	stderr  io.Writer
}

// newBench connects the publisher and cfg.subscribers subscribers and returns
// once a probe message sent by the publisher has reached every subscriber, so
// the server is known to have registered all of them in the room.
func newBench(ctx context.Context, cfg config, stderr io.Writer) (*bench, error) {
	b := &bench{cfg: cfg, base: time.Now(), stderr: stderr}
	start := time.Now()
	pubs, err := dialAll(ctx, cfg.url, 1, 4096)
	if err != nil {
		return nil, err
	}
	b.pub = pubs[0]
	// The publisher may receive its own messages (gorilla's chat sends to
	// everyone); it must keep reading or the server would cut it.
	go discard(b.pub)
	conns, err := dialMany(ctx, cfg.subscribers, func(ctx context.Context) (*rawConn, error) {
		return dialRaw(ctx, cfg.url, cfg.readBuffer)
	}, func(c *rawConn) { c.close() })
	if err != nil {
		b.pub.NetConn().Close()
		return nil, err
	}
	for range cfg.pollers {
		p, err := newPoller(cfg.pollInterval)
		if err != nil {
			b.close()
			return nil, err
		}
		b.pollers = append(b.pollers, p)
	}
	for i, c := range conns {
		s := newSubscriber(c, cfg, b.base)
		b.subs = append(b.subs, s)
		if err := b.pollers[i%len(b.pollers)].add(s); err != nil {
			b.close()
			return nil, err
		}
	}
	for _, p := range b.pollers {
		p.start()
	}
	fmt.Fprintf(stderr, "loadgen: %d subscribers + 1 publisher connected to %s in %v\n",
		len(b.subs), cfg.url, time.Since(start).Round(time.Millisecond))
	if err := b.waitReady(ctx); err != nil {
		b.close()
		return nil, err
	}
	return b, nil
}

// waitReady sends probes (run 0) until every subscriber has received one.
func (b *bench) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(readyTimeout)
	msg := make([]byte, b.cfg.size)
	fillPadding(msg)
	for seq := uint64(0); ; seq++ {
		encodePayload(msg, 0, seq, uint64(time.Since(b.base)))
		if err := b.pub.WriteMessage(b.msgType(), msg); err != nil {
			return fmt.Errorf("publisher: write probe: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(probeEvery):
		}
		notReady := 0
		for _, s := range b.subs {
			if !s.ready.Load() {
				notReady++
			}
		}
		if notReady == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d subscribers saw no probe within %v", notReady, len(b.subs), readyTimeout)
		}
	}
}

func (b *bench) msgType() int {
	if b.cfg.binary {
		return websocket.BinaryMessage
	}
	return websocket.TextMessage
}

// runOnce publishes at rate msg/s for cfg.duration as run id, waits for the
// deliveries to drain and returns the run's figures.
func (b *bench) runOnce(ctx context.Context, rate, id int) (result, error) {
	for _, s := range b.subs {
		s.reset(uint16(id))
	}
	res := result{rate: rate, subscribers: len(b.subs)}
	before := takeUsage(b.cfg.pid)
	sent, elapsed, err := b.publish(ctx, rate, uint16(id))
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	// A publisher cut by the server fails the run; what it could not send
	// counts as lost.
	res.publishErr = err
	res.sent, res.elapsed = sent, elapsed
	intended := (int64(b.cfg.duration)*int64(rate) + int64(time.Second) - 1) / int64(time.Second)
	res.expected = max(sent, intended) * int64(len(b.subs))
	b.drainDeliveries(ctx, res.expected)
	res.usage = takeUsage(b.cfg.pid).since(before)
	for _, s := range b.subs {
		s.collect(&res)
	}
	return res, nil
}

// publish sends messages paced by their intended send times, start + i/rate,
// so a late send is followed by catch-up sends rather than drift; each
// payload carries its intended time, which latency is measured from.
func (b *bench) publish(ctx context.Context, rate int, id uint16) (sent int64, elapsed time.Duration, err error) {
	msg := make([]byte, b.cfg.size)
	fillPadding(msg)
	start := time.Now()
	end := start.Add(b.cfg.duration)
	for i := int64(0); ; i++ {
		due := start.Add(time.Duration(i * int64(time.Second) / int64(rate)))
		if !due.Before(end) {
			break
		}
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		if ctx.Err() != nil {
			return sent, time.Since(start), ctx.Err()
		}
		encodePayload(msg, id, uint64(i), uint64(due.Sub(b.base)))
		if err := b.pub.WriteMessage(b.msgType(), msg); err != nil {
			return sent, time.Since(start), fmt.Errorf("publisher: write: %w", err)
		}
		sent++
	}
	// A run that finished on time lasted the intended duration, not until its last send.
	return sent, max(time.Since(start), b.cfg.duration), nil
}

// drainDeliveries returns once expected deliveries have arrived, or no new
// delivery arrived for cfg.drain, or maxDrain has passed.
func (b *bench) drainDeliveries(ctx context.Context, expected int64) {
	hardStop := time.Now().Add(maxDrain)
	last, lastChange := int64(-1), time.Now()
	ticker := time.NewTicker(pollEvery)
	defer ticker.Stop()
	for {
		var got int64
		for _, s := range b.subs {
			got += s.received.Load()
		}
		now := time.Now()
		if got != last {
			last, lastChange = got, now
		}
		if got >= expected || now.Sub(lastChange) >= b.cfg.drain || now.After(hardStop) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// close closes every connection without a closing handshake.
func (b *bench) close() {
	// Stop the pollers first: a socket number closed under a running poller
	// could be reused by another file.
	for _, p := range b.pollers {
		p.close()
	}
	for _, s := range b.subs {
		s.conn.close()
	}
	b.pub.NetConn().Close()
}

// dialAll opens n gorilla connections to url, dialConcurrency at a time,
// and fails if any of them fails.
func dialAll(ctx context.Context, url string, n, readBuffer int) ([]*websocket.Conn, error) {
	d := websocket.Dialer{
		HandshakeTimeout: handshakeTimeout,
		ReadBufferSize:   readBuffer,
		WriteBufferSize:  512, // these connections write only pongs, closes and small messages
	}
	return dialMany(ctx, n, func(ctx context.Context) (*websocket.Conn, error) {
		c, resp, err := d.DialContext(ctx, url, http.Header{})
		if err != nil && resp != nil {
			err = fmt.Errorf("%w (HTTP %s)", err, resp.Status)
		}
		return c, err
	}, func(c *websocket.Conn) { c.NetConn().Close() })
}

// dialMany calls dial n times, dialConcurrency at a time, so the server's
// listen backlog does not overflow. On the first failure it stops, closes
// what it opened and returns the error.
func dialMany[C any](ctx context.Context, n int, dial func(context.Context) (C, error), closeConn func(C)) ([]C, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	conns := make([]C, n)
	opened := make([]bool, n)
	var (
		wg       sync.WaitGroup
		next     atomic.Int64
		firstErr error
		errOnce  sync.Once
	)
	for range min(n, dialConcurrency) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				c, err := dial(ctx)
				if err != nil {
					errOnce.Do(func() {
						firstErr = fmt.Errorf("connection %d of %d: %w", i+1, n, err)
						cancel() // stop the other dialers
					})
					return
				}
				conns[i], opened[i] = c, true
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		for i, c := range conns {
			if opened[i] {
				closeConn(c)
			}
		}
		return nil, fmt.Errorf("dial: %w", firstErr)
	}
	return conns, nil
}

// discard reads and drops every message on c until it fails.
func discard(c *websocket.Conn) {
	for {
		if _, _, err := c.NextReader(); err != nil {
			return
		}
	}
}
