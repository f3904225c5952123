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
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

const (
	// gorillaReadBuffer is gorilla's per-connection read buffer, behind
	// outConn's: the least gorilla accepts, as it only needs to hold a
	// control frame; large payloads are read past it.
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

// session is what a command does with one accepted connection. Its methods
// are called from the connection's read goroutine only, one at a time.
type session interface {
	// open is called once the handshake is done.
	open(c *wsConn)
	// message is called for each complete data message. data is only valid
	// during the call.
	message(c *wsConn, op int, data []byte)
	// close is called once when the connection has ended.
	close(c *wsConn, code int, reason string)
}

// wsConn is one accepted WebSocket connection.
//
// Reads happen only in the connection's one readBurst at a time, through
// gorilla. Writes never go through gorilla's writers: every outgoing frame,
// including the control frames gorilla itself emits through outConn, is
// appended whole to pending under mu. At most one goroutine at a time — the
// one that set writing — moves pending bytes to the socket, and it never holds
// mu while doing so. Appending never blocks: a queue over maxQueue bytes
// gets the connection closed as a slow consumer.
type wsConn struct {
	id      uint64
	remote  string
	ws      *websocket.Conn
	shim    *shimConn
	sess    session
	raw     net.Conn
	fd      syscall.RawConn // for non-blocking writes; nil on TLS connections
	nb      nonBlockingWrite
	deflate bool // permessage-deflate was negotiated
	log     *slog.Logger
	srv     *wsServer

	// lastSeen is the keepalive tick at which a frame last arrived.
	lastSeen     atomic.Int64
	reading      atomic.Bool // a goroutine is in readBurst
	polled       bool        // registered with the poller; set before any read
	pollFD       int32       // the descriptor the poller knows it by
	maxQueue     int
	msg          []byte        // reused buffer for incoming messages
	socketClosed chan struct{} // closed when the socket is closed

	mu         sync.Mutex
	pending    []byte // whole frames waiting to be written
	exempt     int    // bytes at the head of pending that enqueue neither counts nor drops
	spare      []byte // the other buffer, swapped with pending by the writer
	writing    bool   // a goroutine owns the socket's write side
	closeSent  bool   // a close frame is queued: no more frames
	closing    bool   // close the socket once pending is written
	closed     bool   // the socket is closed
	closeCode  int    // our close code, if we closed
	peerClosed bool   // the peer's close frame arrived
}

// send queues one data message made of prefix+payload and writes it from
// the calling goroutine, blocking until it is written, unless another
// goroutine is writing (a ping that met a full socket): then that writer
// takes it, and the queue is held to maxQueue like enqueue's, so a peer that
// sends without reading cannot grow it. Used by request/reply sessions on
// the read goroutine: a slow peer only slows its own reads. It reports
// errClosed if the connection is closing.
func (c *wsConn) send(op int, prefix, payload []byte) error {
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
// the queue would pass maxQueue, a close 1008 "slow consumer" in place of
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
// maxQueue. An empty queue takes any frame, so one message up to
// --max-message-size always fits. The caller holds mu.
func (c *wsConn) overflowsLocked(n int) bool {
	queued := len(c.pending) - c.exempt
	return c.maxQueue > 0 && queued > 0 && queued+n > c.maxQueue
}

// cutSlowConsumerLocked replaces what is queued (whole frames only: the
// batch being written stays intact) with close 1008 "slow consumer", which
// the peer reads if it ever reads again, and closes the connection within
// closeGrace. The caller holds mu; it is released.
func (c *wsConn) cutSlowConsumerLocked() {
	c.pending = append(c.pending[:c.exempt], closeFrame(websocket.ClosePolicyViolation, "slow consumer")...)
	c.closeSent, c.closeCode = true, websocket.ClosePolicyViolation
	c.mu.Unlock()
	c.log.Warn("Connection "+c.idText()+" is a slow consumer: its send queue is over "+strconv.Itoa(c.maxQueue)+" bytes; closing it (1008)",
		"event", evWarn, "send_queue", c.maxQueue)
	c.raw.SetWriteDeadline(time.Now().Add(closeGrace))
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
	c.closeSent, c.closeCode = true, code
	c.mu.Unlock()
	if grace == 0 {
		c.raw.SetWriteDeadline(time.Now().Add(time.Second))
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

// onPing answers a ping with a pong carrying the same data; gorilla's
// default handler would write it itself, from the read goroutine, into the
// middle of whatever is being written.
func (c *wsConn) onPing(data string) error {
	c.lastSeen.Store(c.srv.tick.Load())
	c.mu.Lock()
	if c.closeSent || c.closed {
		c.mu.Unlock()
		return nil
	}
	c.pending = appendFrame(c.pending, websocket.PongMessage, nil, []byte(data), false)
	c.mu.Unlock()
	c.flushNow()
	return nil
}

// onPong notes that the peer is alive.
func (c *wsConn) onPong(string) error {
	c.lastSeen.Store(c.srv.tick.Load())
	return nil
}

// onClose answers the peer's close frame with the same code, unless we
// already sent ours; the read loop then ends with a CloseError.
func (c *wsConn) onClose(code int, _ string) error {
	c.mu.Lock()
	c.peerClosed = true
	if c.closeSent || c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closeSent = true
	if code == websocket.CloseNoStatusReceived {
		c.pending = appendFrame(c.pending, websocket.CloseMessage, nil, nil, false)
	} else {
		c.pending = append(c.pending, closeFrame(code, "")...)
	}
	c.mu.Unlock()
	c.flushNow()
	return nil
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
	c.raw.Close()
	close(c.socketClosed)
	// A connection waiting in the poller has no reader to notice.
	c.srv.wake(c)
}

// verbose reports whether per-message log lines are wanted.
func (c *wsConn) verbose() bool { return c.log.Enabled(context.Background(), slog.LevelDebug) }

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
func (c *wsConn) lingerClose() {
	c.mu.Lock()
	linger := c.closeCode != 0 && !c.peerClosed && !c.closed
	c.mu.Unlock()
	tcp, ok := c.raw.(*net.TCPConn)
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

// readMessage reads the next data message into the connection's reused
// buffer. The returned slice is valid until the next call.
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
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, nil, err
		}
	}
	if cap(b) <= keepBuffer {
		c.msg = b
	} else {
		c.msg = nil
	}
	return op, b, nil
}
