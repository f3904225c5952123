package main

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"slices"
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

// dialBench opens one connection to u with the shared handshake options.
// It connects directly, ignoring HTTP_PROXY: bench measures the server.
// The dialer hands gorilla only the bytes of the handshake response, so
// that frames the server sends right after it (a welcome) stay for
// bench's own reader instead of in gorilla's buffer.
func dialBench(ctx context.Context, u string, o handshakeOptions) (*benchConn, *http.Response, error) {
	d := o.dialer(nil)
	d.Proxy = nil
	var bc *boundedConn
	base := &net.Dialer{}
	d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := base.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		bc = &boundedConn{Conn: c}
		return bc, nil
	}
	d.NetDialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := base.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		cfg := o.tls.Clone()
		if cfg == nil {
			cfg = &tls.Config{}
		}
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
		}
		tc := tls.Client(c, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, err
		}
		bc = &boundedConn{Conn: tc}
		return bc, nil
	}
	ws, resp, err := d.DialContext(ctx, u, o.header)
	if err != nil {
		return nil, resp, err
	}
	_ = ws // gorilla's Conn is not used past the handshake: bench reads and writes frames itself
	c := bc.Conn
	c.SetDeadline(time.Time{})
	deflate := offersDeflate(resp.Header)
	conn := &benchConn{conn: c, pending: bc.extra, deflate: deflate, w: newFrameWriter(c, deflate, 0)}
	conn.awaiting.Store(-1)
	conn.sock.init(c)
	return conn, resp, nil
}

// boundedConn returns no byte past the end of an HTTP header block
// ("\r\n\r\n") in one Read; what a read brought beyond it is kept in extra
// and returned first by the next Read. After the handshake, extra holds
// the first bytes of the WebSocket stream.
type boundedConn struct {
	net.Conn
	extra   []byte
	matched int // how many bytes of "\r\n\r\n" the stream so far ends with
}

func (b *boundedConn) Read(p []byte) (int, error) {
	var n int
	if len(b.extra) > 0 {
		n = copy(p, b.extra)
		b.extra = b.extra[n:]
	} else {
		var err error
		if n, err = b.Conn.Read(p); n == 0 {
			return 0, err
		}
	}
	const end = "\r\n\r\n"
	for i := range n {
		switch {
		case p[i] == end[b.matched]:
			b.matched++
		case p[i] == '\r':
			b.matched = 1
		default:
			b.matched = 0
		}
		if b.matched == len(end) {
			b.matched = 0
			b.extra = append(slices.Clone(p[i+1:n]), b.extra...)
			return i + 1, nil
		}
	}
	return n, nil
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
