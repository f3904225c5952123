package main

import (
	"bufio"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// connInputBuffer is the connection's own input buffer, in front of
// gorilla's.
const connInputBuffer = 512

// shimConn is the net.Conn gorilla sees.
//
// Writes join the connection's queue: the handshake response is held until
// the session has opened — so a client that sees 101 is already in its room,
// and the response, welcome and history leave in one write — and the control
// frames gorilla sends on its own (a close answering a protocol error or an
// oversized message) never cut into a frame being written.
//
// Reads come through frames, and never past the end of the current frame.
// So when gorilla has read a whole message its own buffer is empty, and
// frames.in.Buffered() alone says whether input is waiting: a connection with
// nothing buffered can wait for the socket in the poller, with no goroutine
// and no input buffer.
type shimConn struct {
	net.Conn
	c         *wsConn // set once the handshake is done
	handshake []byte  // the response, held until c exists

	frames frameReader // reads from sock
	sock   sockReader
}

// inputBuffers holds the input buffers of connections nobody reads: a
// connection parked in the poller holds none.
var inputBuffers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, connInputBuffer) }}

// holdInput gives the shim an input buffer if it has none. Only the reader
// calls it, before reading.
func (o *shimConn) holdInput() {
	if o.frames.in == nil {
		o.frames.in = inputBuffers.Get().(*bufio.Reader)
		o.frames.in.Reset(&o.sock)
	}
}

// releaseInput gives the input buffer back to the pool unless it holds
// input. Only the reader calls it, as it parks the connection.
func (o *shimConn) releaseInput() {
	if in := o.frames.in; in != nil && in.Buffered() == 0 {
		in.Reset(nil)
		inputBuffers.Put(in)
		o.frames.in = nil
	}
}

// newShimConn wraps a hijacked connection.
func newShimConn(conn net.Conn) *shimConn {
	o := &shimConn{Conn: conn}
	o.sock.init(conn)
	o.frames.check = checkRSV1
	return o
}

// poll fills the input buffer with what the socket holds right now, without
// waiting, and reports whether anything is buffered or the socket has ended
// (which the next read reports). Plain TCP only.
func (o *shimConn) poll() bool {
	o.sock.nonBlocking = true
	_, err := o.frames.in.Peek(1)
	o.sock.nonBlocking = false
	return err != errWouldBlock
}

// Read hands gorilla the input, at most to the end of the current frame,
// failing a frame with RSV1 where it may not be.
func (o *shimConn) Read(p []byte) (int, error) { return o.frames.Read(p) }

// buffered reports whether input is waiting in the connection's buffer.
func (o *shimConn) buffered() bool { return o.frames.in.Buffered() > 0 }

// takeControl consumes a ping or pong at the head of the input, answering
// the ping, and reports true; anything else (data, close, or a malformed
// frame) is left for gorilla, which would otherwise handle pings and pongs
// inside its wait for the next data message. It may block until the whole
// frame has arrived. Only the reader calls it, between messages.
func (o *shimConn) takeControl() bool {
	h, err := o.frames.in.Peek(2)
	if err != nil {
		return false
	}
	op := int(h[0] & 0x0f)
	n := int(h[1] & 0x7f)
	if (op != websocket.PingMessage && op != websocket.PongMessage) || h[0]&0xf0 != finBit || h[1]&0x80 == 0 || n > maxControlPayload {
		return false
	}
	f, err := o.frames.in.Peek(6 + n)
	if err != nil {
		return false
	}
	var payload [maxControlPayload]byte
	for i := range n {
		payload[i] = f[6+i] ^ f[2+i%4]
	}
	o.frames.in.Discard(6 + n)
	if op == websocket.PingMessage {
		o.c.onPing(string(payload[:n]))
	} else {
		o.c.onPong("")
	}
	return true
}

// Write joins p, a whole handshake response or control frame from gorilla,
// to the connection's queue and writes it, unless another goroutine writes.
func (o *shimConn) Write(p []byte) (int, error) {
	if o.c == nil {
		o.handshake = append(o.handshake, p...)
		return len(p), nil
	}
	if err := o.c.queueGorilla(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// SetWriteDeadline is ignored after the handshake: the writer sets its own
// deadline per batch.
func (o *shimConn) SetWriteDeadline(t time.Time) error {
	if o.c == nil {
		return o.Conn.SetWriteDeadline(t)
	}
	return nil
}

// SetDeadline only sets the read deadline after the handshake, for the
// same reason.
func (o *shimConn) SetDeadline(t time.Time) error {
	if o.c == nil {
		return o.Conn.SetDeadline(t)
	}
	return o.Conn.SetReadDeadline(t)
}
