package main

import (
	"io"

	"github.com/gorilla/websocket"
)

// The read side of wsConn that holds no lock: the message buffer and the
// liveness of the peer.

// onPong notes that the peer is alive.
func (c *wsConn) onPong(string) error {
	c.lastSeen.Store(c.srv.tick.Load())
	return nil
}

// readMessage reads the next data message into the connection's reused
// buffer. The returned slice is valid until the next call. A text message
// is checked as it arrives, and fails with errInvalidUTF8 at its first
// invalid byte, however much of it is still to come.
func (c *wsConn) readMessage() (int, []byte, error) {
	op, r, err := c.ws.NextReader()
	if err != nil {
		return 0, nil, err
	}
	c.lastSeen.Store(c.srv.tick.Load())
	if c.msg == nil {
		c.msg = make([]byte, 0, firstMessageBuffer)
	}
	b := c.msg[:0]
	var text utf8Stream
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if int64(len(b)) > c.srv.cfg.maxMessageSize {
			// gorilla limits the bytes on the wire; a compressed message
			// may inflate past the limit.
			c.closeWith(websocket.CloseMessageTooBig, "", closeGrace)
			return 0, nil, websocket.ErrReadLimit
		}
		if op == websocket.TextMessage && !text.check(b) {
			return 0, nil, errInvalidUTF8
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, nil, err
		}
	}
	if op == websocket.TextMessage && !text.done(b) {
		return 0, nil, errInvalidUTF8
	}
	if cap(b) <= keepBuffer {
		c.msg = b
	} else {
		c.msg = nil
	}
	return op, b, nil
}
