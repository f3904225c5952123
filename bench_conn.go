package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// benchConn is one connection of a run after its opening handshake.
//
// Writes: the frameWriter is guarded by wmu, held for one batch of frames
// and its socket write. The data writer is the connection's sender (open
// loop, publishers) or, in a closed loop, whoever saw the last reply
// arrive; the reader also writes pongs, but only when wmu is free
// (tryControl), so a reader never waits for a write. A close is written
// last, after the senders stopped.
//
// Reads: one reader at a time, the poller or the connection's own
// goroutine (bench_read.go), owns every field below "reader state".
type benchConn struct {
	id        int      // index among the run's connections of its kind
	conn      net.Conn // the socket, or the TLS connection over it
	pending   []byte   // what arrived with the handshake response, parsed first
	deflate   bool     // permessage-deflate was negotiated
	publisher bool     // a broadcast publisher: what it receives is not measured
	pollFD    int32    // its descriptor in the run's poller, if it is there

	wmu sync.Mutex
	w   *frameWriter

	// Closed-loop state, shared by the reader and the watchdog through
	// atomics. sent counts the data messages written.
	sent     atomic.Int64
	awaiting atomic.Int64 // sequence number whose reply is awaited; -1: none
	lastSend atomic.Int64 // nanoseconds since the run's base of the last send
	quota    int64        // messages to send in all; 0 for no limit
	payload  []byte       // the message being sent, under wmu
	ready    atomic.Bool  // broadcast: a probe arrived, the server has the subscriber
	ended    atomic.Bool  // the reader saw the connection end

	// reader state
	sock    sockReader
	rest    []byte   // a partial frame left from the last read
	frag    []byte   // a fragmented message so far
	fragOp  byte     // its opcode; 0 for none
	fragZ   bool     // it is compressed
	tracks  []track  // per publisher: which sequence numbers arrived
	inflate inflater // for compressed messages
}

// dialBench opens one connection to u with the shared handshake options,
// through HTTP_PROXY as dial does. gorilla makes the handshake and is then
// dropped: bench reads the socket below its tap (client_conn.go), starting
// with what the tap had read past the 101 response (a welcome).
func dialBench(ctx context.Context, u string, o handshakeOptions) (*benchConn, *http.Response, error) {
	ws, resp, err := o.dialer(nil).DialContext(ctx, u, o.header)
	if err != nil {
		return nil, resp, err
	}
	t, ok := ws.NetConn().(*tapConn)
	if !ok {
		ws.NetConn().Close()
		return nil, resp, errors.New("no tap below the handshake") // dialer always installs one
	}
	c, pending := t.detach()
	c.SetDeadline(time.Time{})
	deflate := offersDeflate(resp.Header)
	conn := &benchConn{conn: c, pending: pending, deflate: deflate, w: newFrameWriter(c, deflate, 0)}
	conn.awaiting.Store(-1)
	conn.sock.init(c)
	return conn, resp, nil
}

// send writes data messages, each payload one message of type op, in one
// socket write.
func (c *benchConn) send(op int, payloads ...[]byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for _, p := range payloads {
		c.w.message(op, p)
	}
	return c.w.flush()
}

// tryControl writes a control frame unless another write is under way; it
// reports whether it did. A reader answers pings with it, and never waits.
func (c *benchConn) tryControl(op int, payload []byte) bool {
	if !c.wmu.TryLock() {
		return false
	}
	defer c.wmu.Unlock()
	c.w.control(op, payload)
	return c.w.flush() == nil
}

// closeNormal writes a close frame with 1000, once the senders stopped.
func (c *benchConn) closeNormal() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.w.control(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	c.w.flushFinal()
}
