package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// controlQueueLen bounds the pongs waiting for the write pump. A pong that
// does not fit is dropped: RFC 6455 lets a pong answer only the latest ping.
const controlQueueLen = 8

// dialConn is one connection of wsx dial.
//
// The read pump (readPump) is the only reader of ws. The write pump (run)
// is the only writer of the socket: it writes every frame through its
// frameWriter, including the pongs and the close reply that the read pump's
// handlers ask for, which reach it on control and in closeReply. gorilla
// itself writes only when it fails the connection for a protocol error.
type dialConn struct {
	cl        *dialClient
	cfg       *dialConfig
	ws        *websocket.Conn
	w         *frameWriter
	control   chan outgoing // pongs, from the read pump
	fail      chan ending   // the read pump asks for the connection to be failed
	readDone  chan struct{} // closed when the read pump has ended
	countDone chan struct{} // closed when --count messages have arrived

	// Set by the read pump before readDone is closed.
	end        ending // how the connection ended, as the read pump saw it
	closeReply []byte // the reply to the server's close; nil if none came

	ourClose atomic.Pointer[ending] // the close wsx sent, once sent
	lastRead atomic.Int64           // when the last message arrived, in Unix nanoseconds
	lastSent time.Time              // when the write pump last sent messages
}

// newDialConn prepares the pumps of ws.
func newDialConn(cl *dialClient, ws *websocket.Conn, resp *http.Response) *dialConn {
	c := &dialConn{
		cl:        cl,
		cfg:       &cl.cfg,
		ws:        ws,
		w:         newFrameWriter(ws.NetConn(), offersDeflate(resp.Header), cl.cfg.fragment),
		control:   make(chan outgoing, controlQueueLen),
		fail:      make(chan ending, 1),
		readDone:  make(chan struct{}),
		countDone: make(chan struct{}),
		lastSent:  time.Now(),
	}
	ws.SetPingHandler(func(data string) error {
		c.showControl(evPing, data)
		select {
		case c.control <- outgoing{op: websocket.PongMessage, data: []byte(data)}:
		default:
		}
		return nil
	})
	ws.SetPongHandler(func(data string) error {
		c.extendReadDeadline()
		c.showControl(evPong, data)
		return nil
	})
	ws.SetCloseHandler(func(code int, _ string) error {
		code = c.closeCode(code)
		if c.ourClose.Load() == nil {
			c.closeReply = websocket.FormatCloseMessage(code, "")
		}
		return nil
	})
	return c
}

// closeCode is the close code the server sent, given the one gorilla
// reports (tapConn shows gorilla a stand-in for 1014).
func (c *dialConn) closeCode(code int) int {
	if t, ok := c.ws.NetConn().(*tapConn); ok {
		return t.closeCode(code)
	}
	return code
}

// run is the write pump. It sends the queued messages, answers pings,
// pings with --ping-interval, applies --wait, --count and --timeout, closes
// the connection and returns how it ended.
func (c *dialConn) run(ctx context.Context) ending {
	go c.readPump()
	k := newClocks(c.cfg, c.cl.deadline)
	defer k.stop()
	// Ctrl-C and --timeout also cut a write stuck on a server that does
	// not read; the loop below cannot see them while it writes.
	defer context.AfterFunc(ctx, c.w.cut)()
	if !c.cl.deadline.IsZero() {
		defer time.AfterFunc(time.Until(c.cl.deadline), c.w.cut).Stop()
	}
	if err := c.sendCarried(); err != nil {
		return c.lost(err)
	}
	for {
		queue := c.cl.queue
		if c.cl.inputDone {
			queue = nil
			if e, done := c.inputEnded(k); done {
				return e
			}
		}
		select {
		case <-c.readDone:
			return c.finish()
		case <-ctx.Done():
			return c.close(websocket.CloseNormalClosure, "")
		case <-k.timeoutC():
			c.cl.note(slog.LevelError, evError, fmt.Sprintf("Timeout: --%s %s passed", flagTimeout, c.cfg.timeout))
			e := c.close(websocket.CloseGoingAway, "timeout")
			e.timeout = true
			return e
		case <-c.countDone:
			return c.close(websocket.CloseNormalClosure, "")
		case e := <-c.fail:
			return c.close(e.code, e.reason)
		case m := <-c.control:
			if err := c.sendControl(m.op, m.data); err != nil {
				return c.lost(err)
			}
		case <-k.pingC():
			if err := c.sendControl(websocket.PingMessage, nil); err != nil {
				return c.lost(err)
			}
		case m, ok := <-queue:
			if !ok {
				c.cl.inputDone = true
			} else if e, done := c.send(m); done {
				return e
			}
		case <-k.wait.C:
			if idle := c.idle(); idle < c.cfg.wait {
				k.wait.Reset(c.cfg.wait - idle)
			} else {
				return c.close(websocket.CloseNormalClosure, "")
			}
		}
	}
}

// clocks are the write pump's timers; each runs only when its flag asks.
type clocks struct {
	ping    *time.Ticker // --ping-interval; nil without
	timeout *time.Timer  // fires at the --timeout deadline; nil without
	wait    *time.Timer  // --wait, once the input has ended
	waiting bool         // the input has ended: --wait has started
}

func newClocks(cfg *dialConfig, deadline time.Time) *clocks {
	k := &clocks{wait: time.NewTimer(time.Hour)}
	k.wait.Stop()
	if cfg.pingInterval > 0 {
		k.ping = time.NewTicker(cfg.pingInterval)
	}
	if !deadline.IsZero() {
		k.timeout = time.NewTimer(time.Until(deadline))
	}
	return k
}

func (k *clocks) pingC() <-chan time.Time {
	if k.ping == nil {
		return nil
	}
	return k.ping.C
}

func (k *clocks) timeoutC() <-chan time.Time {
	if k.timeout == nil {
		return nil
	}
	return k.timeout.C
}

func (k *clocks) stop() {
	k.wait.Stop()
	if k.ping != nil {
		k.ping.Stop()
	}
	if k.timeout != nil {
		k.timeout.Stop()
	}
}

// inputEnded starts --wait the first time it is called after the input
// ended. With --wait 0 it closes the connection at once and reports done.
func (c *dialConn) inputEnded(k *clocks) (e ending, done bool) {
	if k.waiting {
		return e, false
	}
	k.waiting = true
	switch {
	case c.cfg.wait == 0:
		return c.close(websocket.CloseNormalClosure, ""), true
	case c.cfg.wait > 0:
		k.wait.Reset(c.cfg.wait)
	}
	return e, false
}

// idle is how long ago a message was last sent or received.
func (c *dialConn) idle() time.Duration {
	return time.Since(time.Unix(0, max(c.lastSent.UnixNano(), c.lastRead.Load())))
}

// sendCarried sends first the messages whose write failed on the previous
// connection.
func (c *dialConn) sendCarried() error {
	for _, m := range c.cl.carry {
		c.w.message(m.op, m.data)
	}
	if err := c.w.flush(); err != nil {
		return err
	}
	c.cl.carry = nil
	return nil
}

// sendControl writes a ping, pong or close frame at once.
func (c *dialConn) sendControl(op int, data []byte) error {
	c.w.control(op, data)
	return c.w.flush()
}

// send writes m, and whatever else is already queued up to maxBatch bytes,
// in one socket write. It reports done with the ending when m or a message
// after it ends the connection.
func (c *dialConn) send(m outgoing) (e ending, done bool) {
	cl := c.cl
	var batch []outgoing // data messages to carry over if the write fails
	flush := func() error {
		err := c.w.flush()
		if err != nil {
			cl.carry = batch
		}
		return err
	}
	for ok := true; ok; {
		switch {
		case m.err != nil:
			if err := flush(); err != nil {
				return c.lost(err), true
			}
			cl.show(event{kind: evError, err: m.err.Error()})
			e := c.close(websocket.CloseNormalClosure, "")
			e.err = m.err
			return e, true
		case m.op == websocket.CloseMessage:
			if err := flush(); err != nil {
				return c.lost(err), true
			}
			return c.close(m.code, string(m.data)), true
		case m.op == websocket.PingMessage || m.op == websocket.PongMessage:
			c.w.control(m.op, m.data)
		default:
			c.w.message(m.op, m.data)
			if cl.cfg.reconnect {
				batch = append(batch, m)
			}
		}
		if c.w.buffered() >= maxBatch {
			break
		}
		select {
		case m, ok = <-cl.queue:
			if !ok {
				cl.inputDone = true
			}
		default:
			ok = false
		}
	}
	if err := flush(); err != nil {
		return c.lost(err), true
	}
	c.lastSent = time.Now()
	return ending{}, false
}

// close sends a close frame, waits up to closeGrace for the server's reply,
// closes the socket and returns the ending: the close sent, unless the
// server's own close came first.
func (c *dialConn) close(code int, reason string) ending {
	c.ourClose.Store(&ending{code: code, reason: reason, by: byClient})
	c.w.control(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason))
	if err := c.w.flushFinal(); err != nil {
		c.ourClose.Store(nil) // the close never left: the connection is lost
		return c.lost(err)
	}
	t := time.NewTimer(closeGrace)
	select {
	case <-c.readDone:
	case <-t.C:
	}
	t.Stop()
	c.ws.Close()
	<-c.readDone
	return c.end
}

// finish ends a connection whose read pump has ended: it sends what the
// read pump asked for, the reply to the server's close above all, and
// closes the socket.
func (c *dialConn) finish() ending {
	for len(c.control) > 0 {
		m := <-c.control
		c.w.control(m.op, m.data)
	}
	if c.closeReply != nil {
		c.w.control(websocket.CloseMessage, c.closeReply)
	}
	c.w.flushFinal() // the connection is over either way
	c.ws.Close()
	return c.end
}

// lost ends a connection whose write failed.
func (c *dialConn) lost(err error) ending {
	stopped, broken := c.w.state()
	timedOut := !c.cl.deadline.IsZero() && !time.Now().Before(c.cl.deadline)
	if stopped && !broken {
		// Ctrl-C or --timeout between frames: close properly.
		if timedOut {
			c.cl.note(slog.LevelError, evError, fmt.Sprintf("Timeout: --%s %s passed", flagTimeout, c.cfg.timeout))
			e := c.close(websocket.CloseGoingAway, "timeout")
			e.timeout = true
			return e
		}
		return c.close(websocket.CloseNormalClosure, "")
	}
	c.ws.Close()
	<-c.readDone
	if broken {
		if timedOut {
			c.cl.note(slog.LevelError, evError, fmt.Sprintf("Timeout: --%s %s passed while sending", flagTimeout, c.cfg.timeout))
			return ending{code: websocket.CloseAbnormalClosure, reason: "timeout while sending", by: byNone, timeout: true}
		}
		return ending{code: websocket.CloseNormalClosure, reason: "interrupted while sending", by: byClient}
	}
	if c.end.code != websocket.CloseAbnormalClosure {
		return c.end // the server's close explains more
	}
	return ending{code: websocket.CloseAbnormalClosure, reason: "connection lost: " + err.Error(), by: byNone}
}
