package main

import (
	"bufio"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// Inline reading: a server whose sessions answer at once (wsx echo) reads
// and handles its connections' frames on its event loops' goroutines (a
// poller each), as uWebSockets does: one readiness round serves many
// connections, with one read and one write per small message and no
// goroutine wake-up. Reads never wait: a frame the socket has not all
// delivered yet keeps its place (wsconn_read.go) until the poller reports
// more. A connection goes to a goroutine of its own only when that
// goroutine would have to wait: a reply the socket does not take at once
// (so a client that does not read slows only itself), or the connection's
// end.
//
// The poller watches such a connection level-triggered while it is idle,
// so input that arrives while it is read inline is reported in the next
// round without a system call to re-arm it; while a goroutine reads it,
// the poller holds it (hold), and the goroutine hands it back (rewatch)
// when it parks.

// eventLoop is a poller and the state of its goroutine. With handleInline
// only that goroutine touches the buffers.
type eventLoop struct {
	p     *poller[*wsConn]
	in    *bufio.Reader // an input buffer for the next connection it reads
	out   []byte        // the frames it sends are made here
	msg   []byte        // a message buffer for the next connection it reads one on
	carry []byte        // what the socket of the connection it reads did not take
}

// loopOf is the event loop c belongs to; the server has some.
func (s *wsServer) loopOf(c *wsConn) *eventLoop { return &s.loops[c.id%uint64(len(s.loops))] }

// inlineReads is how many read(2)s one connection gets per round: a client
// that sends without pause cannot keep the others waiting, since the rest
// of its input is reported in the next round; a large message takes a
// few reads (the first fills the input buffer, the next go straight into
// the message).
const inlineReads = 4

// readInline reads what c's socket holds now and handles the frames it
// brought. It runs on l's goroutine and never waits.
func (s *wsServer) readInline(l *eventLoop, c *wsConn) {
	if !c.reading.CompareAndSwap(false, true) {
		return // a goroutine reads c
	}
	if c.shim.in == nil && l.in != nil {
		c.shim.in, l.in = l.in, nil
		c.shim.in.Reset(&c.shim.sock)
	}
	c.shim.holdInput()
	c.inline = true
	c.shim.sock.noWait(inlineReads)
	_, err := c.shim.in.Peek(1)
	for err == nil && l.carry == nil {
		err = s.inlineFrame(c)
	}
	c.shim.sock.wait()
	c.inline = false
	if err == errWouldBlock {
		err = nil // the socket has no more for now
	}
	if err != nil || l.carry != nil {
		s.handOff(l, c, err)
		return
	}
	s.idleInline(l, c)
}

// inlineFrame reads and handles the next frame of c. A whole,
// unfragmented, uncompressed data message in the input buffer is unmasked
// there and handed to the session without a copy.
func (s *wsServer) inlineFrame(c *wsConn) error {
	h, whole := c.shim.bufferedFrame()
	op := h.op()
	if !whole || h.b0&(finBit|rsv1Bit) != finBit || op == opContinuation || op >= firstControlOpcode || c.rd.op != 0 {
		op, data, err := c.readFrame()
		if err == nil && op != 0 && c.ourCloseCode() == 0 {
			c.sess.message(c, op, data)
		}
		return err
	}
	c.lastSeen.Store(s.tick.Load())
	if err := c.checkFrame(h); err != nil {
		return err
	}
	frame, _ := c.shim.in.Peek(h.size + int(h.length))
	data := frame[h.size:]
	maskBytes([4]byte(frame[h.size-4:h.size]), data)
	if op == websocket.TextMessage && !utf8.Valid(data) {
		return errInvalidUTF8
	}
	if c.ourCloseCode() == 0 {
		c.sess.message(c, op, data)
	}
	c.shim.in.Discard(len(frame))
	return nil
}

// idleInline leaves c, read inline and with nothing more to read now, in
// the poller, whose watch is still armed: it holds no buffer unless part of
// a frame's header waits for the rest.
func (s *wsServer) idleInline(l *eventLoop, c *wsConn) {
	// The buffers go to the next connection this loop reads.
	if l.in == nil && c.shim.in.Buffered() == 0 {
		l.in, c.shim.in = c.shim.in, nil
	}
	c.shim.releaseInput()
	if c.rd.op == 0 && c.msg != nil {
		l.msg, c.msg = c.msg[:0], nil
	}
	c.reading.Store(false)
	// abort closes the socket, which leaves the poller, and then starts a
	// reader through wake; if that came while this goroutine read c, it
	// found c taken, and c's end is read here.
	if c.releaseIdle() && c.reading.CompareAndSwap(false, true) {
		go s.readBurst(c)
	}
}

// handOff gives c to a goroutine of its own, which first writes what an
// inline write left, then reports err, how the read ended, or reads on
// while input is waiting and parks c again.
func (s *wsServer) handOff(l *eventLoop, c *wsConn, err error) {
	l.p.hold(c.shim.sock.fd)
	carry := l.carry
	l.carry = nil
	go func() {
		if carry != nil {
			c.writeLoop(carry)
		}
		if err != nil {
			code, reason := s.readError(c, err)
			s.endConn(c, code, reason)
			return
		}
		if !c.shim.buffered() && s.park(c) {
			return
		}
		s.readBurst(c)
	}()
}
