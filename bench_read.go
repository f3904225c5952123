package main

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// The read side of a run. A reader parses the frames its connections
// receive in place, in one buffer, finds the markers in each message and
// accounts for them: a delivery costs no allocation, no goroutine wake-up
// and no channel send. Samples go to the reporter in batches of
// batchLen (bench_report.go); the live count of deliveries is an atomic
// with the reader as its only writer. On Linux one reader, the poller's
// goroutine, reads every plain-TCP connection when input arrives
// (bench_poll.go); TLS connections, and every connection elsewhere, have a
// reader goroutine each.

const (
	// pollChunk is the least room a read gets in the poller's buffer,
	// which every plain-TCP connection shares. It is small enough (about
	// 250 short messages) that, when the sockets hold a backlog, the
	// level-triggered poller's round-robin keeps them in step, so that
	// the poller's markerCache still holds what the next socket brings;
	// and large enough that a read costs little per message.
	pollChunk = 16 << 10
	// connChunk is the least room a read gets in a reader goroutine's own
	// buffer: one per connection, so small.
	connChunk = 4 << 10
	// maxBenchFrame bounds one frame or message from the server.
	maxBenchFrame = 64 << 20
)

// errClosedByServer ends a connection on the server's close frame.
var errClosedByServer = errors.New("closed by the server")

// reader accounts for what its connections receive. Only its goroutine
// uses it.
type reader struct {
	run      *benchRun
	buf      []byte        // socket bytes: a connection's rest, then what one read brought
	chunk    int           // least room for a read in buf
	batch    *sampleBatch  // samples not yet sent to the reporter
	now      time.Duration // time of the socket read being parsed, since the run's base
	conn     *benchConn    // connection being parsed
	received atomic.Int64  // deliveries so far, read live by the run; added to once per read
	fresh    int64         // deliveries of the read being parsed
	visit    func(m marker, exact, ok bool)
	cache    *markerCache // what recent markers said
}

// newReader returns a reader for run whose reads get at least chunk bytes
// and whose markerCache has cacheSlots slots.
func newReader(run *benchRun, chunk, cacheSlots int) *reader {
	r := &reader{run: run, chunk: chunk, cache: newMarkerCache(cacheSlots)}
	r.visit = func(m marker, exact, ok bool) { r.onMarker(&m, exact, ok) } // bound once
	return r
}

// readFrom reads c's socket once (blocking or not, as c.sock is set) and
// handles every complete frame. It returns errWouldBlock when nothing was
// waiting, and the error that ended the connection.
func (r *reader) readFrom(c *benchConn) error {
	r.buf = append(append(r.buf[:0], c.pending...), c.rest...)
	c.pending = nil
	if cap(r.buf)-len(r.buf) < r.chunk {
		r.buf = append(r.buf, make([]byte, r.chunk)...)[:len(r.buf)]
	}
	n, err := c.sock.Read(r.buf[len(r.buf):cap(r.buf)])
	if n == 0 && len(r.buf) == 0 {
		if err == nil {
			err = io.EOF
		}
		return err
	}
	r.buf = r.buf[:len(r.buf)+n]
	r.now = time.Since(r.run.base)
	rest, perr := r.frames(c, r.buf)
	r.received.Add(r.fresh)
	r.fresh = 0
	c.rest = append(c.rest[:0], rest...)
	if perr != nil {
		return perr
	}
	if n == 0 && err != nil && err != errWouldBlock {
		return err
	}
	return nil
}

// frames handles the complete frames at the start of data and returns
// what is left: the start of a frame still arriving.
func (r *reader) frames(c *benchConn, data []byte) ([]byte, error) {
	r.conn = c
	for {
		h, _, ok := parseFrameHeader(data)
		switch {
		case !ok:
			return data, nil
		case h.masked:
			return nil, &protocolError{"protocol: the server sent a masked frame"}
		case h.length > maxBenchFrame:
			return nil, &protocolError{fmt.Sprintf("protocol: a frame of %d bytes", h.length)}
		}
		if err := checkRSV1(h); err != nil {
			return nil, &protocolError{"protocol: " + err.Error()}
		}
		end := h.size + int(h.length)
		if len(data) < end {
			return data, nil
		}
		if err := r.frame(c, h.b0, data[h.size:end]); err != nil {
			return nil, err
		}
		data = data[end:]
	}
}

// frame handles one frame: data messages are accounted for (fragments
// joined first), pings answered, a close answered and returned as the end.
func (r *reader) frame(c *benchConn, b0 byte, payload []byte) error {
	fin, z, op := b0&finBit != 0, b0&rsv1Bit != 0, b0&0x0f
	switch op {
	case websocket.TextMessage, websocket.BinaryMessage:
		if fin {
			return r.message(c, payload, z)
		}
		c.fragOp, c.fragZ, c.frag = op, z, append(c.frag[:0], payload...)
	case opContinuation:
		if c.fragOp == 0 {
			return &protocolError{"protocol: a continuation frame without a message"}
		}
		if len(c.frag)+len(payload) > maxBenchFrame {
			return &protocolError{fmt.Sprintf("protocol: a message over %d bytes", maxBenchFrame)}
		}
		c.frag = append(c.frag, payload...)
		if fin {
			c.fragOp = 0
			return r.message(c, c.frag, c.fragZ)
		}
	case websocket.PingMessage:
		c.tryControl(websocket.PongMessage, payload)
	case websocket.CloseMessage:
		code := websocket.CloseNoStatusReceived
		if len(payload) >= 2 {
			code = int(binary.BigEndian.Uint16(payload))
		}
		c.tryControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""))
		return &closeCodeError{code: code}
	}
	return nil
}

// closeCodeError is the end of a connection by the server's close frame.
type closeCodeError struct{ code int }

func (e *closeCodeError) Error() string { return fmt.Sprintf("closed by the server (%d)", e.code) }
func (e *closeCodeError) Unwrap() error { return errClosedByServer }

// message accounts for one data message.
func (r *reader) message(c *benchConn, payload []byte, compressed bool) error {
	if compressed {
		var err error
		if payload, err = c.inflate.inflate(payload); err != nil {
			return &protocolError{"protocol: inflate: " + err.Error()}
		}
	}
	if c.publisher {
		return nil // what publishers receive is not measured
	}
	codec := r.run.codec
	if codec == nil {
		r.sampleBatch().other++
		return nil
	}
	found := 0
	for rest := payload; ; found++ {
		e, exact, more, hit := codec.next(rest, r.cache)
		if !hit {
			break
		}
		if e == nil {
			r.onMarker(nil, false, false)
		} else {
			r.onMarker(&e.m, exact, e.ok)
		}
		rest = more
	}
	if found == 0 && codec.scan64(payload, r.visit) == 0 {
		r.sampleBatch().other++
	}
	return nil
}

// onMarker accounts for one marker found in a message of r.conn; m is
// nil, and ok false, for one cut short.
func (r *reader) onMarker(m *marker, exact, ok bool) {
	b, c := r.sampleBatch(), r.conn
	if !ok {
		b.altered++
		return
	}
	if m.kind == markProbe {
		c.ready.Store(true)
		return
	}
	t, sender := r.run.trackOf(c, m.pub)
	if t == nil || m.seq >= sender.sent.Load() {
		b.stray++ // another connection's, or a sequence number never sent
		return
	}
	dup, late := t.mark(m.seq)
	if dup {
		b.duplicated++
		return
	}
	r.fresh++
	b.received++
	if late {
		b.outOfOrder++
	}
	if !exact {
		b.altered++
	}
	b.add(r.now-m.intended, r.now-m.actual)
	if b.n == batchLen {
		r.flush()
	}
	r.run.delivered(sender, m.seq)
}

// sampleBatch returns the batch being filled, taking one if there is none.
func (r *reader) sampleBatch() *sampleBatch {
	if r.batch == nil {
		r.batch = r.run.rep.newBatch()
	}
	return r.batch
}

// flush hands the samples so far to the reporter.
func (r *reader) flush() {
	if r.batch != nil {
		r.run.rep.events <- benchEvent{batch: r.batch}
		r.batch = nil
	}
}

// track is which sequence numbers of one publisher a connection received.
type track struct {
	seen []uint64 // bit seq%64 of word seq/64
	high int64    // highest sequence number seen; -1 for none
}

// mark records seq; dup reports that it arrived before, late that a higher
// one arrived before it.
func (t *track) mark(seq int64) (dup, late bool) {
	w := int(seq >> 6)
	if w >= len(t.seen) {
		t.seen = append(t.seen, make([]uint64, max(w+1-len(t.seen), len(t.seen)))...)
	}
	bit := uint64(1) << (seq & 63)
	if t.seen[w]&bit != 0 {
		return true, false
	}
	t.seen[w] |= bit
	if seq < t.high {
		return false, true
	}
	t.high = seq
	return false, false
}

// inflater decompresses permessage-deflate messages; gorilla negotiates
// no context takeover, so each message stands alone.
type inflater struct {
	in  []byte
	src bytes.Reader
	fr  io.ReadCloser
	out bytes.Buffer
}

// deflateEnd ends a message's deflate stream: the tail permessage-deflate
// strips, then an empty final block.
var deflateEnd = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

func (z *inflater) inflate(p []byte) ([]byte, error) {
	z.in = append(append(z.in[:0], p...), deflateEnd...)
	z.src.Reset(z.in)
	if z.fr == nil {
		z.fr = flate.NewReader(&z.src)
	} else if err := z.fr.(flate.Resetter).Reset(&z.src, nil); err != nil {
		return nil, err
	}
	z.out.Reset()
	_, err := z.out.ReadFrom(io.LimitReader(z.fr, maxBenchFrame))
	return z.out.Bytes(), err
}

// readLoop is a connection's own reader goroutine, where there is no
// poller or the connection is TLS: it reads until the connection ends,
// then reports how it ended.
func (r *reader) readLoop(c *benchConn) {
	var err error
	for err == nil {
		err = r.readFrom(c)
	}
	r.flush()
	r.run.connEnded(c, err)
}
