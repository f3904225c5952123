package main

import "time"

// The write side of wsConn: whichever goroutine owns the write side moves the
// queued bytes to the socket, with non-blocking writes where it must not
// wait (the fan-out) and blocking ones where it may (the connection's own
// reader, or a goroutine started for a backed-up socket).

// flushNow writes the pending bytes from the calling goroutine unless
// another goroutine is already writing them.
func (c *wsConn) flushNow() {
	b, ok := c.startWrite()
	// A plain TCP socket first gets non-blocking writes, which cost no
	// deadline and no poller bookkeeping; what it does not take at once is
	// written blocking, from this goroutine, as before.
	for ok && c.shim.sock.fd != nil {
		n := c.writeNonBlocking(b)
		if n < len(b) {
			b = b[max(n, 0):]
			break
		}
		b, ok = c.nextWrite(b)
	}
	switch {
	case ok && c.inline:
		c.srv.loopOf(c).carry = b // the poller's goroutine must not wait: the goroutine it hands c to writes it
	case ok:
		c.writeLoop(b)
	}
}

// flushAsync starts writing the pending bytes without ever blocking: a plain
// TCP socket gets one non-blocking write, and whatever the socket does not
// take at once is left to a goroutine of its own.
func (c *wsConn) flushAsync() {
	b, ok := c.startWrite()
	if !ok {
		return
	}
	for c.shim.sock.fd != nil {
		n := c.writeNonBlocking(b)
		if n < len(b) {
			b = b[max(n, 0):]
			break
		}
		if b, ok = c.nextWrite(b); !ok {
			return
		}
	}
	go c.writeLoop(b)
}

// writeInline is send on an event loop's goroutine, for a caller that
// claimed the write side with nothing queued: the frame is made in the
// loop's buffer and written with one non-blocking write. What the socket
// does not take is left in the loop's carry, with the write side, for the
// goroutine the connection is handed to.
func (c *wsConn) writeInline(op int, prefix, payload []byte) {
	l := c.srv.loopOf(c)
	b := appendFrame(l.out[:0], op, prefix, payload, c.deflate)
	if cap(b) <= keepBuffer {
		l.out = b[:0]
	}
	if n := c.writeNonBlocking(b); n < len(b) {
		l.carry = append([]byte(nil), b[max(n, 0):]...)
		return
	}
	if c.releaseWrite() {
		c.lingerClose()
		return
	}
	c.flushNow() // whatever was queued meanwhile, such as a ping
}

// writeNonBlocking writes b with one write(2) on the non-blocking socket
// and returns how much was taken, or -1 on an error. Only the writer calls
// it.
func (c *wsConn) writeNonBlocking(b []byte) int {
	c.nb.buf, c.nb.n = b, -1
	if err := c.shim.sock.fd.Write(c.nb.write); err != nil {
		c.nb.n = -1
	}
	c.nb.buf = nil
	return c.nb.n
}

// writeLoop is the blocking writer: it writes b, then whatever was queued
// meanwhile, until the queue is empty. The caller must own the write side.
func (c *wsConn) writeLoop(b []byte) {
	for {
		c.shim.Conn.SetWriteDeadline(time.Now().Add(writeWait))
		if _, err := c.shim.Conn.Write(b); err != nil {
			c.log().Debug("Write to connection "+c.idText()+" failed: "+err.Error(), "event", evError)
			c.writeFailed()
			return
		}
		var ok bool
		if b, ok = c.nextWrite(b); !ok {
			return
		}
	}
}

// writeShared writes b, frames shared with other connections, with one
// non-blocking write when nothing is queued before it; otherwise, or for
// what the socket does not take, it queues a copy. It never blocks and
// never keeps b.
func (c *wsConn) writeShared(b []byte) {
	switch claimed, closing := c.claimWrite(); {
	case closing:
		return
	case !claimed:
		if c.enqueue(b) {
			c.flushAsync()
		}
		return
	}
	if n := c.writeNonBlocking(b); n < len(b) {
		go c.writeLoop(append([]byte(nil), b[max(n, 0):]...))
		return
	}
	if c.releaseWrite() {
		c.lingerClose()
		return
	}
	c.flushAsync() // whatever was queued meanwhile, such as a pong
}
