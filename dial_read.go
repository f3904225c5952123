package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/gorilla/websocket"
)

// The read pump of a dial connection: the only reader of the socket.

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
		var pe *protocolError
		if errors.As(err, &pe) && c.ourClose.Load() == nil {
			// Caught below gorilla, which has not answered it: fail the
			// connection with 1002 once the read side is over.
			msg := "The server broke the protocol: " + pe.reason + "; closing (1002)"
			c.cl.note(slog.LevelError, evError, msg)
			c.cl.show(event{kind: evError, err: msg})
			c.closeReply = websocket.FormatCloseMessage(websocket.CloseProtocolError, pe.reason)
			c.end = ending{code: websocket.CloseProtocolError, reason: pe.reason, by: byClient}
			return
		}
		if err != nil && !errors.Is(err, errInvalidUTF8) {
			c.end = c.readEnding(err)
			return
		}
		now := time.Now()
		c.lastRead.Store(now.UnixNano())
		if failed || (c.cfg.count > 0 && c.cl.received >= c.cfg.count) {
			continue
		}
		if err != nil { // errInvalidUTF8: the rest of the message is not read
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
// A text message is checked for UTF-8 as it arrives and fails with
// errInvalidUTF8 at its first invalid byte.
// Unlike gorilla's ReadMessage it allocates only the message's size, which
// matters when many short messages arrive.
func (c *dialConn) readMessage(buf *bytes.Buffer) (int, []byte, error) {
	op, r, err := c.ws.NextReader()
	if err != nil {
		return op, nil, err
	}
	buf.Reset()
	var text utf8Stream
	for {
		buf.Grow(bytes.MinRead)
		b := buf.AvailableBuffer()
		n, err := r.Read(b[:cap(b)])
		buf.Write(b[:n])
		if op == websocket.TextMessage && !text.check(buf.Bytes()) {
			return op, nil, errInvalidUTF8
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return op, nil, err
		}
	}
	if op == websocket.TextMessage && !text.done(buf.Bytes()) {
		return op, nil, errInvalidUTF8
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
		return ending{code: c.closeCode(ce.Code), reason: ce.Text, by: byServer}
	case errors.As(err, &ne) && ne.Timeout():
		return ending{code: websocket.CloseAbnormalClosure, reason: fmt.Sprintf("connection lost: nothing arrived for %s (--%s)", 2*c.cfg.pingInterval, flagPingInterval), by: byNone}
	case errors.As(err, &ne):
		return ending{code: websocket.CloseAbnormalClosure, reason: "connection lost: " + err.Error(), by: byNone}
	}
	// gorilla has failed the connection with 1002 for the server's protocol error.
	return ending{code: websocket.CloseProtocolError, reason: err.Error(), by: byClient}
}
