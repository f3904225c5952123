package main

import (
	"bufio"
	"errors"
	"net"
	"sync"
	"time"
)

// connInputBuffer is the size of a connection's input buffer, taken from
// a pool while the connection is read.
const connInputBuffer = 512

// shimConn is the net.Conn gorilla sees during the handshake, and the
// connection's input afterwards.
//
// gorilla's handshake response is held until the session has opened, so a
// client that sees 101 is already in its room, and the response, welcome
// and history leave in one write. After the handshake gorilla's Conn is
// dropped: the connection's reader reads frames from in, so
// in.Buffered() alone says whether input is waiting, and a
// connection with nothing buffered can wait for the socket in the poller,
// with no goroutine and no input buffer.
type shimConn struct {
	net.Conn
	c         *wsConn // set once the handshake is done
	handshake *[]byte // the response, held until c exists

	in   *bufio.Reader // reads from sock while the connection is read; nil when parked
	sock sockReader
}

// inputBuffers holds the input buffers of connections nobody reads: a
// connection parked in the poller holds none.
var inputBuffers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, connInputBuffer) }}

// holdInput gives the shim an input buffer if it has none. Only the reader
// calls it, before reading.
func (o *shimConn) holdInput() {
	if o.in == nil {
		o.in = inputBuffers.Get().(*bufio.Reader)
		o.in.Reset(&o.sock)
	}
}

// releaseInput gives the input buffer back to the pool unless it holds
// input. Only the reader calls it, as it parks the connection.
func (o *shimConn) releaseInput() {
	if in := o.in; in != nil && in.Buffered() == 0 {
		in.Reset(nil)
		inputBuffers.Put(in)
		o.in = nil
	}
}

// newShimConn wraps a hijacked connection.
func newShimConn(conn net.Conn) *shimConn {
	o := &shimConn{Conn: conn, handshake: new([]byte)}
	o.sock.init(conn)
	return o
}

// poll fills the input buffer with what the socket holds right now, without
// waiting, and reports whether anything is buffered or the socket has ended
// (which the next read reports). Plain TCP only.
func (o *shimConn) poll() bool {
	o.sock.noWait(1)
	_, err := o.in.Peek(1)
	o.sock.wait()
	return err != errWouldBlock
}

// bufferedFrame reports the header of the frame at the head of the input
// buffer, and whether all of that frame is buffered.
func (o *shimConn) bufferedFrame() (frameHeader, bool) {
	b, _ := o.in.Peek(o.in.Buffered())
	h, _, ok := parseFrameHeader(b)
	return h, ok && h.length >= 0 && h.length <= int64(len(b)-h.size)
}

// errShimRead: nothing reads through the shim; the connection's reader
// reads in.
var errShimRead = errors.New("the connection's frames are read by its reader")

// Read refuses: gorilla does not read during the handshake, and its Conn
// is dropped after it.
func (o *shimConn) Read([]byte) (int, error) { return 0, errShimRead }

// buffered reports whether input is waiting in the connection's buffer.
func (o *shimConn) buffered() bool { return o.in.Buffered() > 0 }

// Write holds gorilla's handshake response until the connection exists;
// anything after it joins the connection's queue.
func (o *shimConn) Write(p []byte) (int, error) {
	if o.c == nil {
		*o.handshake = append(*o.handshake, p...)
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
