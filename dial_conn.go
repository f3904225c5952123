package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"
	"unicode/utf8"

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
		if c.ourClose.Load() == nil {
			c.closeReply = websocket.FormatCloseMessage(code, "")
		}
		return nil
	})
	return c
}

// readPump reads messages until the connection ends and hands them to the
// printer, up to --count. A text message that is not valid UTF-8 fails the
// connection with 1007, as RFC 6455 requires.
func (c *dialConn) readPump() {
	defer close(c.readDone)
	failed := false
	var buf bytes.Buffer // reused; each message is copied out at its exact size
	for {
		c.extendReadDeadline()
		op, data, err := c.readMessage(&buf)
		if err != nil {
			c.end = c.readEnding(err)
			return
		}
		now := time.Now()
		c.lastRead.Store(now.UnixNano())
		if failed || (c.cfg.count > 0 && c.cl.received >= c.cfg.count) {
			continue
		}
		if op == websocket.TextMessage && !utf8.Valid(data) {
			failed = true
			msg := "The server sent a text message that is not valid UTF-8; closing (1007)"
			c.cl.note(slog.LevelError, evError, msg)
			c.cl.show(event{kind: evError, err: msg})
			c.fail <- ending{code: websocket.CloseInvalidFramePayloadData, reason: "invalid UTF-8 in text message", by: byClient}
			continue
		}
		c.cl.show(event{kind: evMessage, time: now, op: op, data: data})
		if c.cl.received++; c.cl.received == c.cfg.count {
			close(c.countDone)
		}
	}
}

// readMessage reads the next message into a slice of its own, through buf.
// Unlike gorilla's ReadMessage it allocates only the message's size, which
// matters when many short messages arrive.
func (c *dialConn) readMessage(buf *bytes.Buffer) (int, []byte, error) {
	op, r, err := c.ws.NextReader()
	if err != nil {
		return op, nil, err
	}
	buf.Reset()
	if _, err := buf.ReadFrom(r); err != nil {
		return op, nil, err
	}
	data := make([]byte, buf.Len())
	copy(data, buf.Bytes())
	if buf.Cap() > maxBatch {
		*buf = bytes.Buffer{} // do not keep a large message's buffer
	}
	return op, data, nil
}

// extendReadDeadline gives the server two ping intervals to send something.
func (c *dialConn) extendReadDeadline() {
	if c.cfg.pingInterval > 0 {
		c.ws.SetReadDeadline(time.Now().Add(2 * c.cfg.pingInterval))
	}
}

// showControl shows a ping or pong that arrived, with -P or --jsonl.
func (c *dialConn) showControl(kind, data string) {
	if c.cfg.showPing || c.cfg.jsonl {
		c.cl.show(event{kind: kind, op: websocket.PingMessage, data: []byte(data)})
	}
}

// readEnding says how the connection ended from the error that ended the
// read pump. Once wsx has sent a close, that close is the ending.
func (c *dialConn) readEnding(err error) ending {
	if our := c.ourClose.Load(); our != nil {
		return *our
	}
	var ce *websocket.CloseError
	var ne net.Error
	switch {
	case errors.As(err, &ce) && ce.Code == websocket.CloseAbnormalClosure:
		return ending{code: websocket.CloseAbnormalClosure, reason: "connection lost: " + ce.Text, by: byNone}
	case errors.As(err, &ce):
		return ending{code: ce.Code, reason: ce.Text, by: byServer}
	case errors.As(err, &ne) && ne.Timeout():
		return ending{code: websocket.CloseAbnormalClosure, reason: fmt.Sprintf("connection lost: nothing arrived for %s (--%s)", 2*c.cfg.pingInterval, flagPingInterval), by: byNone}
	case errors.As(err, &ne):
		return ending{code: websocket.CloseAbnormalClosure, reason: "connection lost: " + err.Error(), by: byNone}
	}
	// gorilla has failed the connection with 1002 for the server's protocol error.
	return ending{code: websocket.CloseProtocolError, reason: err.Error(), by: byClient}
}

// run is the write pump. It sends the queued messages, answers pings,
// pings with --ping-interval, applies --wait, --count and --timeout, closes
// the connection and returns how it ended.
func (c *dialConn) run(ctx context.Context) ending {
	go c.readPump()
	cl := c.cl
	var ping, timeout <-chan time.Time
	if c.cfg.pingInterval > 0 {
		t := time.NewTicker(c.cfg.pingInterval)
		defer t.Stop()
		ping = t.C
	}
	if !cl.deadline.IsZero() {
		t := time.NewTimer(time.Until(cl.deadline))
		defer t.Stop()
		timeout = t.C
	}
	wait := time.NewTimer(time.Hour)
	wait.Stop()
	defer wait.Stop()
	waiting := false
	lastSent := time.Now()

	// Messages whose write failed on the previous connection go first.
	for _, m := range cl.carry {
		c.w.message(m.op, m.data)
	}
	if err := c.w.flush(); err != nil {
		return c.lost(err)
	}
	cl.carry = nil

	for {
		queue := cl.queue
		if cl.inputDone {
			queue = nil
			if !waiting {
				waiting = true
				switch {
				case c.cfg.wait == 0:
					return c.close(websocket.CloseNormalClosure, "")
				case c.cfg.wait > 0:
					wait.Reset(c.cfg.wait)
				}
			}
		}
		select {
		case <-c.readDone:
			return c.finish()
		case <-ctx.Done():
			return c.close(websocket.CloseNormalClosure, "")
		case <-timeout:
			cl.note(slog.LevelError, evError, fmt.Sprintf("Timeout: --%s %s passed", flagTimeout, c.cfg.timeout))
			e := c.close(websocket.CloseGoingAway, "timeout")
			e.timeout = true
			return e
		case <-c.countDone:
			return c.close(websocket.CloseNormalClosure, "")
		case e := <-c.fail:
			return c.close(e.code, e.reason)
		case m := <-c.control:
			c.w.control(m.op, m.data)
			if err := c.w.flush(); err != nil {
				return c.lost(err)
			}
		case <-ping:
			c.w.control(websocket.PingMessage, nil)
			if err := c.w.flush(); err != nil {
				return c.lost(err)
			}
		case m, ok := <-queue:
			if !ok {
				cl.inputDone = true
				continue
			}
			if e, done := c.send(m); done {
				return e
			}
			lastSent = time.Now()
		case <-wait.C:
			last := max(lastSent.UnixNano(), c.lastRead.Load())
			if idle := time.Since(time.Unix(0, last)); idle < c.cfg.wait {
				wait.Reset(c.cfg.wait - idle)
				continue
			}
			return c.close(websocket.CloseNormalClosure, "")
		}
	}
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
	return ending{}, false
}

// close sends a close frame, waits up to closeGrace for the server's reply,
// closes the socket and returns the ending: the close sent, unless the
// server's own close came first.
func (c *dialConn) close(code int, reason string) ending {
	c.ourClose.Store(&ending{code: code, reason: reason, by: byClient})
	c.w.control(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason))
	if err := c.w.flush(); err != nil {
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
	c.w.flush() // the connection is over either way
	c.ws.Close()
	return c.end
}

// lost ends a connection whose write failed.
func (c *dialConn) lost(err error) ending {
	c.ws.Close()
	<-c.readDone
	if c.end.code != websocket.CloseAbnormalClosure {
		return c.end // the server's close explains more
	}
	return ending{code: websocket.CloseAbnormalClosure, reason: "connection lost: " + err.Error(), by: byNone}
}
