package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// The send side of a run. With --rate, each sender (an echo connection, a
// broadcast publisher) has its share of the rate and a schedule: message
// k is due at start + phase + k/rate, whatever the server does, so a
// stalled server makes messages late instead of fewer; the late ones go
// together in one write. Without --rate, the loop is closed: an echo
// connection sends its next message when the reader sees the reply to the
// last (from the reader's goroutine), a publisher when its last message
// has reached as many subscribers as there are.

// maxSendBatch bounds the messages one write carries when a sender catches
// up with its schedule.
const maxSendBatch = 256

// pubAcks counts the deliveries of one publisher's messages, for a
// closed-loop broadcast: the publisher sets target before each message,
// and the reader whose delivery reaches it wakes the publisher.
type pubAcks struct {
	count  atomic.Int64
	target atomic.Int64
	wake   chan struct{} // capacity 1
}

// sendPhase sends the run's messages and returns when sending is over:
// after --duration, once --messages are sent, or on Ctrl-C.
func (run *benchRun) sendPhase(ctx context.Context, res *runResult) {
	res.sendStart = time.Now()
	defer func() { res.sendTime = time.Since(res.sendStart) }()
	var end time.Time
	if run.cfg.duration > 0 {
		end = res.sendStart.Add(run.cfg.duration)
	}
	var live []*benchConn
	for _, c := range run.senderConns() {
		if c != nil {
			live = append(live, c)
		}
	}
	for i, c := range live {
		if run.cfg.messages > 0 {
			c.quota = share(run.cfg.messages, i, len(live))
		}
		c.payload = run.codec.newPayload()
	}
	run.senders.Store(&live)
	if run.closedLoop && run.cfg.mode == modeEcho {
		run.echoClosedLoop(ctx, live, end)
		return
	}
	var wg sync.WaitGroup
	for i, c := range live {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stop := context.AfterFunc(ctx, c.w.cut) // a write the server does not take ends
			defer stop()
			if run.closedLoop {
				run.publishClosedLoop(ctx, c, end)
			} else {
				run.sendOnSchedule(ctx, c, i, len(live), res.sendStart, end)
			}
		}()
	}
	wg.Wait()
}

// sendOnSchedule sends c's messages on its schedule: sender i of n has
// rate/n of the rate, shifted by i/rate so that the senders take turns.
func (run *benchRun) sendOnSchedule(ctx context.Context, c *benchConn, i, n int, start, end time.Time) {
	perSender := run.cfg.rate / float64(n)
	origin := start.Sub(run.base) + time.Duration(float64(i)/run.cfg.rate*float64(time.Second))
	due := func(k int64) time.Duration {
		return origin + time.Duration(float64(k)/perSender*float64(time.Second))
	}
	endAt := time.Duration(1<<63 - 1)
	if !end.IsZero() {
		endAt = end.Sub(run.base)
	}
	more := func(k int64) bool { return (c.quota == 0 || k < c.quota) && due(k) < endAt }
	timer := time.NewTimer(0)
	defer timer.Stop()
	for k := int64(0); more(k); {
		now := time.Since(run.base)
		if wait := due(k) - now; wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
			continue
		}
		c.wmu.Lock()
		j := k
		for ; j < k+maxSendBatch && more(j) && due(j) <= now; j++ {
			run.codec.encode(c.payload, marker{kind: markMessage, pub: c.id, seq: j, intended: due(j), actual: now})
			c.w.message(run.cfg.op, c.payload)
		}
		c.sent.Store(j) // before the write: a reply may come at once
		err := c.w.flush()
		c.wmu.Unlock()
		if err != nil {
			run.writeFailed(ctx, err)
			return
		}
		k = j
	}
}

// echoClosedLoop starts every connection's closed loop and returns when
// sending is over. Meanwhile it resends for connections whose reply has
// not come within replyTimeout (the lost message is counted as such).
func (run *benchRun) echoClosedLoop(ctx context.Context, live []*benchConn, end time.Time) {
	for _, c := range live {
		run.sendNext(c)
	}
	t := time.NewTicker(drainPoll)
	defer t.Stop()
	defer run.stopSend.Store(true)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if !end.IsZero() && now.After(end) {
				return
			}
			since, sending := time.Since(run.base), false
			for _, c := range live {
				if c.ended.Load() || (c.quota > 0 && c.sent.Load() >= c.quota) {
					continue
				}
				sending = true
				a := c.awaiting.Load()
				if a >= 0 && since-time.Duration(c.lastSend.Load()) > replyTimeout && c.awaiting.CompareAndSwap(a, -1) {
					run.sendNext(c)
				}
			}
			if !sending {
				return
			}
		}
	}
}

// sendNext sends c's next closed-loop message, unless sending is over.
// The reader calls it on the reply to the last one.
func (run *benchRun) sendNext(c *benchConn) {
	if run.stopSend.Load() || c.ended.Load() {
		return
	}
	c.wmu.Lock()
	seq := c.sent.Load()
	if c.quota > 0 && seq >= c.quota {
		c.wmu.Unlock()
		return
	}
	now := time.Since(run.base)
	run.codec.encode(c.payload, marker{kind: markMessage, pub: c.id, seq: seq, intended: now, actual: now})
	c.w.message(run.cfg.op, c.payload)
	c.lastSend.Store(int64(now))
	c.awaiting.Store(seq)
	c.sent.Store(seq + 1)
	err := c.w.flush()
	c.wmu.Unlock()
	if err != nil {
		run.writeFailed(context.Background(), err)
	}
}

// publishClosedLoop sends publisher p's messages one at a time, each once
// the last reached as many subscribers as there are, or replyTimeout
// passed.
func (run *benchRun) publishClosedLoop(ctx context.Context, p *benchConn, end time.Time) {
	a := &run.acks[p.id]
	subs := run.opened.Load()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for seq := int64(0); (p.quota == 0 || seq < p.quota) && (end.IsZero() || time.Now().Before(end)); seq++ {
		select {
		case <-a.wake: // a late delivery's wake-up
		default:
		}
		a.target.Store(a.count.Load() + subs)
		now := time.Since(run.base)
		run.codec.encode(p.payload, marker{kind: markMessage, pub: p.id, seq: seq, intended: now, actual: now})
		p.sent.Store(seq + 1)
		if err := p.send(run.cfg.op, p.payload); err != nil {
			run.writeFailed(ctx, err)
			return
		}
		timer.Reset(replyTimeout)
		select {
		case <-ctx.Done():
			return
		case <-a.wake:
		case <-timer.C:
		}
	}
}

// writeFailed reports a failed write, unless Ctrl-C cut it.
func (run *benchRun) writeFailed(ctx context.Context, err error) {
	if ctx.Err() != nil || run.closing.Load() {
		return
	}
	run.rep.events <- benchEvent{kind: evWriteFailed, cause: "write: " + errorKind(err)}
}

// trackOf returns where connection c records the messages of publisher
// pub (echo: its own), and the connection that sent them; nil if c should
// not receive them.
func (run *benchRun) trackOf(c *benchConn, pub int) (*track, *benchConn) {
	if run.cfg.mode == modeEcho {
		if pub != c.id {
			return nil, nil
		}
		return &c.tracks[0], c
	}
	pubs := run.pubList.Load()
	if pubs == nil || pub >= len(*pubs) || pub >= len(c.tracks) {
		return nil, nil
	}
	return &c.tracks[pub], (*pubs)[pub]
}

// delivered is called by a reader for each first delivery of message seq
// from sender: it drives the closed loops.
func (run *benchRun) delivered(sender *benchConn, seq int64) {
	if !run.closedLoop {
		return
	}
	if run.cfg.mode == modeEcho {
		if sender.awaiting.CompareAndSwap(seq, -1) {
			run.sendNext(sender)
		}
		return
	}
	a := &run.acks[sender.id]
	if a.count.Add(1) >= a.target.Load() {
		select {
		case a.wake <- struct{}{}:
		default:
		}
	}
}
