package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

const (
	// gorillaReadBuffer is the read buffer gorilla makes for the Conn of
	// a handshake, which wsx drops unused: the least gorilla accepts.
	gorillaReadBuffer = maxControlPayload

	// firstMessageBuffer is the capacity of a connection's message buffer
	// when it first receives a message; it grows as needed.
	firstMessageBuffer = 512

	// keepBuffer is the largest message or write buffer a connection keeps
	// between messages; larger ones are released so a burst does not leave
	// every connection holding its peak.
	keepBuffer = 16 << 10
)

// errClosed is returned by writes on a connection that is closing.
var errClosed = errors.New("connection closed")

// wsConn is one accepted WebSocket connection.
//
// Reads happen only in the connection's one readBurst at a time, frame by
// frame (wsconn_read.go); gorilla only performs the handshake. Every
// outgoing frame is appended whole to pending under mu. At most one goroutine at a time — the
// one that set writing — moves pending bytes to the socket, and it never
// holds mu while doing so. Appending never blocks: a queue over --send-queue
// bytes gets the connection closed as a slow consumer.
//
// This file owns mu and everything it guards: other files change that state
// only through the methods here. Who calls which of them:
//
//	read goroutine (readBurst)   send (echo, a member's error events), onPing,
//	or poller goroutine (inline  onClose, closeWith (1002, 1007, 1008, 1009),
//	reads: readInline)           finish
//	gorilla, via shimConn.Write  queueGorilla (nothing after the handshake)
//	joiner's read goroutine      push (welcome and history, under the room lock)
//	fan-out shards               enqueue + flushAsync, writeShared
//	keepalive goroutine          enqueue(ping) + flushAsync, closeWith(1001, 0)
//	shutdown                     closeWith(1001), abort
//	serve's HTTP API handlers    enqueue + flushAsync (a push), closeWith
//	                             (1000, 3000-4999), queueState
//	timers (time.AfterFunc)      abort
//	the writer of the moment     startWrite, nextWrite, claimWrite,
//	                             releaseWrite, writeFailed (wsconn_write.go)
//
// mu is a leaf: nothing else is locked while it is held, and it is never
// held across a socket write or a log call. The hub's locks, which are
// taken before it, are ordered in hub.go.
type wsConn struct {
	id          uint64
	remote      string
	subprotocol string // negotiated in the handshake
	shim        *shimConn
	sess        session
	nb          nonBlockingWrite
	srv         *wsServer

	// lastSeen is the keepalive tick at which a frame last arrived.
	lastSeen   atomic.Int64
	reading    atomic.Bool    // a goroutine is in readBurst
	polled     bool           // registered with the poller; set before any read
	deflate    bool           // permessage-deflate was negotiated
	pollFD     int32          // the descriptor the poller knows it by
	inline     bool           // read on the poller's goroutine, which must not wait
	msg        []byte         // reused buffer for incoming messages
	rd         readState      // the message being received
	socketOpen sync.WaitGroup // done when the socket is closed; a channel costs 100 bytes more

	mu         sync.Mutex
	pending    []byte // whole frames waiting to be written
	exempt     int    // bytes at the head of pending that enqueue neither counts nor drops
	spare      []byte // the other buffer, swapped with pending by the writer
	writing    bool   // a goroutine owns the socket's write side
	closeSent  bool   // a close frame is queued: no more frames
	closing    bool   // close the socket once pending is written
	closed     bool   // the socket is closed
	peerClosed bool   // the peer's close frame arrived
	dropped    bool   // closed at once (closeWith's grace 0): no linger
	closeCode  int    // our close code, if we closed
}

// send queues one data message made of prefix+payload and writes it from
// the calling goroutine, blocking until it is written, unless another
// goroutine is writing (a ping that met a full socket): then that writer
// takes it, and the queue is held to --send-queue like enqueue's, so a peer that
// sends without reading cannot grow it. Used by request/reply sessions on
// the read goroutine: a slow peer only slows its own reads. Read inline, on
// an event loop's goroutine, it never blocks: what the socket does not take
// at once is written by the goroutine the connection is then handed to,
// which reads on only after. It reports errClosed if the connection is
// closing.
func (c *wsConn) send(op int, prefix, payload []byte) error {
	if c.inline {
		switch claimed, closing := c.claimWrite(); {
		case closing:
			return errClosed
		case claimed:
			c.writeInline(op, prefix, payload)
			return nil
		}
		// Another goroutine writes: queue behind it, and flushNow leaves
		// what it cannot write at once to the goroutine c is handed to.
	}
	c.mu.Lock()
	if c.closeSent || c.closed {
		c.mu.Unlock()
		return errClosed
	}
	if c.writing && c.overflowsLocked(len(prefix)+len(payload)) {
		c.cutSlowConsumerLocked()
		return errClosed
	}
	c.pending = appendFrame(c.pending, op, prefix, payload, c.deflate)
	c.mu.Unlock()
	c.flushNow()
	return nil
}

// enqueue appends an encoded frame without writing it, and reports whether
// the caller must call flushAsync: it queued something, the frame or, when
// the queue would pass --send-queue, a close 1008 "slow consumer" in place of
// everything queued. It never writes to the socket itself.
func (c *wsConn) enqueue(frame []byte) bool {
	c.mu.Lock()
	if c.closeSent || c.closed {
		c.mu.Unlock()
		return false
	}
	if c.overflowsLocked(len(frame)) {
		c.cutSlowConsumerLocked()
		return true
	}
	c.pending = append(c.pending, frame...)
	c.mu.Unlock()
	return true
}

// overflowsLocked reports whether n more bytes would take the queue past
// --send-queue. An empty queue takes any frame, so one message up to
// --max-message-size always fits. The caller holds mu.
func (c *wsConn) overflowsLocked(n int) bool {
	queued := len(c.pending) - c.exempt
	return c.srv.cfg.sendQueue > 0 && queued > 0 && queued+n > c.srv.cfg.sendQueue
}

// cutSlowConsumerLocked replaces what is queued (whole frames only: the
// batch being written stays intact) with close 1008 "slow consumer", which
// the peer reads if it ever reads again, and closes the connection within
// closeGrace. The caller holds mu; it is released.
func (c *wsConn) cutSlowConsumerLocked() {
	c.pending = append(c.pending[:c.exempt], closeFrame(websocket.ClosePolicyViolation, "slow consumer")...)
	c.closeSent, c.closeCode = true, websocket.ClosePolicyViolation
	c.mu.Unlock()
	c.log().Warn("Connection "+c.idText()+" is a slow consumer: its send queue is over "+strconv.Itoa(c.srv.cfg.sendQueue)+" bytes; closing it (1008)",
		"event", evWarn, "send_queue", c.srv.cfg.sendQueue)
	c.shim.Conn.SetWriteDeadline(time.Now().Add(closeGrace))
	time.AfterFunc(closeGrace, c.abort)
}

// push appends an encoded frame that enqueue's bound neither counts nor
// drops, without writing it: for what the client asked for as a whole,
// such as the room's history when it joins.
func (c *wsConn) push(frame []byte) {
	c.mu.Lock()
	if !c.closeSent && !c.closed {
		c.pending = append(c.pending, frame...)
		c.exempt = len(c.pending)
	}
	c.mu.Unlock()
}

// closeWith queues a close frame with code and reason and closes the socket
// when the peer answers, or after grace (at once if grace is 0).
func (c *wsConn) closeWith(code int, reason string, grace time.Duration) {
	c.mu.Lock()
	if c.closeSent || c.closed {
		c.mu.Unlock()
		return
	}
	c.pending = append(c.pending, closeFrame(code, reason)...)
	c.closeSent, c.closeCode, c.dropped = true, code, grace == 0
	c.mu.Unlock()
	if grace == 0 {
		c.shim.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		c.flushAsync()
		c.finish()
		return
	}
	c.flushAsync()
	time.AfterFunc(grace, c.abort)
}

// ourCloseCode is the code of the close frame we sent, or 0.
func (c *wsConn) ourCloseCode() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeCode
}

// queueState returns the bytes queued and not yet taken by a writer, and
// whether the connection is closing: a close frame is queued or sent, or
// the socket is closed.
func (c *wsConn) queueState() (queued int, closing bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending), c.closeSent || c.closed
}

// onPing answers a ping with a pong carrying the same data, queued behind
// whatever is being written.
func (c *wsConn) onPing(data []byte) {
	c.mu.Lock()
	if c.closeSent || c.closed {
		c.mu.Unlock()
		return
	}
	c.pending = appendFrame(c.pending, websocket.PongMessage, nil, data, false)
	c.mu.Unlock()
	c.flushNow()
}

// onClose answers the peer's close frame with the same code, unless we
// already sent ours; the read loop then ends with a CloseError.
func (c *wsConn) onClose(code int) {
	c.mu.Lock()
	c.peerClosed = true
	if c.closeSent || c.closed {
		c.mu.Unlock()
		return
	}
	c.closeSent = true
	if code == websocket.CloseNoStatusReceived {
		c.pending = appendFrame(c.pending, websocket.CloseMessage, nil, nil, false)
	} else {
		c.pending = append(c.pending, closeFrame(code, "")...)
	}
	c.mu.Unlock()
	c.flushNow()
}

// abort closes the socket at once. It is safe to call more than once and
// from any goroutine.
func (c *wsConn) abort() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.pending, c.spare, c.exempt = nil, nil, 0
	c.mu.Unlock()
	c.shim.Conn.Close()
	c.socketOpen.Done()
	// A connection waiting in the poller has no reader to notice.
	c.srv.wake(c)
}

// verbose reports whether per-message log lines are wanted.
func (c *wsConn) verbose() bool { return c.srv.log.Enabled(context.Background(), slog.LevelDebug) }

// log is the server's logger with the connection's attributes. It is made
// for each log line, which is rare, rather than kept by every connection.
func (c *wsConn) log() *slog.Logger { return c.srv.log.With("conn", c.id, "remote", c.remote) }

// idText is the connection id as log lines print it.
func (c *wsConn) idText() string { return strconv.FormatUint(c.id, 10) }

// finish is called when the read side is over: the socket closes as soon as
// the queued frames (such as the answer to the peer's close) are written.
func (c *wsConn) finish() {
	c.mu.Lock()
	c.closing = true
	idle := !c.writing
	c.mu.Unlock()
	if idle {
		c.lingerClose()
		return
	}
	time.AfterFunc(closeGrace, c.abort)
}

// lingerClose closes the socket once the read side is over and everything
// queued is written. If we sent a close the peer has not answered, closing
// at once with its input unread would reset the connection, and a reset
// can destroy our close frame before the peer reads it; so the socket is
// half-closed and drained until the peer closes too, at most closeGrace.
// The drain must be the socket's only reader, so only a connection whose
// reader has ended lingers — one dropped from outside (closeWith's grace
// 0, by the keepalive) may still be in a poller, read at any moment: it is
// closed at once, and abort's wake ends its read side.
func (c *wsConn) lingerClose() {
	c.mu.Lock()
	linger := c.closeCode != 0 && !c.peerClosed && !c.closed && !c.dropped
	c.mu.Unlock()
	tcp, ok := c.shim.Conn.(*net.TCPConn)
	if !linger || !ok {
		c.abort()
		return
	}
	go func() {
		tcp.CloseWrite()
		tcp.SetReadDeadline(time.Now().Add(closeGrace))
		io.Copy(io.Discard, tcp)
		c.abort()
	}()
}

// startWrite makes the caller the writer and hands it the pending bytes, or
// reports false if there is nothing to write or another goroutine writes.
func (c *wsConn) startWrite() ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.writing || len(c.pending) == 0 || c.closed {
		return nil, false
	}
	c.writing = true
	b := c.pending
	c.pending, c.spare, c.exempt = c.spare[:0], nil, 0
	return b, true
}

// nextWrite is called by the writer once b is written: it returns the next
// batch, or gives up the write side and reports false.
func (c *wsConn) nextWrite(b []byte) ([]byte, bool) {
	c.mu.Lock()
	if cap(b) <= keepBuffer {
		c.spare = b[:0]
	}
	if len(c.pending) > 0 && !c.closed {
		b := c.pending
		c.pending, c.spare, c.exempt = c.spare[:0], nil, 0
		c.mu.Unlock()
		return b, true
	}
	c.writing = false
	closeNow := c.closing && !c.closed
	c.mu.Unlock()
	if closeNow {
		c.lingerClose()
	}
	return nil, false
}

// claimWrite makes the caller the writer if nothing is queued and nobody
// writes, for a write that bypasses the queue. closing reports that the
// connection takes no more frames.
func (c *wsConn) claimWrite() (claimed, closing bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closeSent || c.closed:
		return false, true
	case c.writing || len(c.pending) > 0 || c.shim.sock.fd == nil:
		return false, false
	}
	c.writing = true
	return true, false
}

// releaseWrite gives up the write side claimed by claimWrite once its
// write is done, and reports whether the socket must now be closed: the
// read side is over and nothing more is queued.
func (c *wsConn) releaseWrite() (closeNow bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writing = false
	return c.closing && !c.closed && len(c.pending) == 0
}

// writeFailed gives up the write side after a failed write and closes the
// socket.
func (c *wsConn) writeFailed() {
	c.mu.Lock()
	c.writing = false
	c.mu.Unlock()
	c.abort()
}

// start queues the handshake response that gorilla wrote before the
// connection existed, and keeps it; like push's frames, enqueue's bound
// does not count it. It is called before anything else is queued.
func (c *wsConn) start(handshake []byte) {
	c.mu.Lock()
	c.pending, c.exempt = handshake, len(handshake)
	c.mu.Unlock()
}

// queueGorilla joins p, anything gorilla writes after the handshake, to the
// queue and writes it unless another goroutine writes. gorilla's Conn is
// dropped after the handshake, so nothing does today; a close frame would
// still be recorded as ours.
func (c *wsConn) queueGorilla(p []byte) error {
	c.mu.Lock()
	if c.closed || c.closeSent {
		c.mu.Unlock()
		return errClosed
	}
	if len(p) > 0 && p[0]&0x0f == websocket.CloseMessage {
		c.closeSent = true
		if len(p) >= 4 {
			c.closeCode = int(p[2])<<8 | int(p[3])
		}
	}
	c.pending = append(c.pending, p...)
	c.mu.Unlock()
	c.flushNow()
	return nil
}

// releaseIdle lets go of the write buffers of a connection with nothing
// to write, as it goes idle: a busy connection reuses them, an idle one
// should not hold them. It reports whether the socket is closed.
func (c *wsConn) releaseIdle() (closed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.writing && len(c.pending) == 0 {
		c.pending, c.spare = nil, nil
	}
	return c.closed
}
