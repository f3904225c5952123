package main

import (
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// Frame encoding for the client side. gorilla performs dial's handshake and
// parses what the server sends, but its message writer cannot batch several
// messages into one socket write, nor cut a message at a chosen size, so wsx
// dial encodes its own frames: masked, as RFC 6455 requires of a client,
// compressed when permessage-deflate was negotiated, and fragmented with
// --fragment.

const (
	// maxBatch is how many bytes of frames the write pump gathers before
	// writing them to the socket in one call.
	maxBatch = 64 << 10

	// continuationFrame is the opcode of every frame of a message but the first.
	continuationFrame = 0
)

// frameWriter gathers frames in buf and writes them to the socket with
// flush. It is not safe for concurrent use: the write pump owns it, which
// makes it the only writer of the socket.
type frameWriter struct {
	conn     net.Conn
	mu       sync.Mutex // orders cut against flush's deadlines
	busy     bool       // flush is writing
	stopped  bool       // cut was called: no more messages
	broken   bool       // cut stopped a write midway: no more frames at all
	buf      []byte
	deflate  bool // permessage-deflate was negotiated
	fragment int  // largest payload per frame; 0 sends each message as one frame
	// rng draws the masking keys. ChaCha8 is a cryptographic generator, so
	// the keys are unpredictable, as RFC 6455 section 5.3 requires.
	rng *rand.ChaCha8
}

// newFrameWriter returns a frameWriter for conn.
func newFrameWriter(conn net.Conn, deflate bool, fragment int) *frameWriter {
	var seed [32]byte
	crand.Read(seed[:]) // never returns an error (crypto/rand documents it)
	return &frameWriter{conn: conn, deflate: deflate, fragment: fragment, rng: rand.NewChaCha8(seed)}
}

// message appends a data message of type op, compressed if negotiated and
// cut into frames of at most w.fragment bytes when fragment is set.
func (w *frameWriter) message(op int, data []byte) {
	payload, rsv1 := data, byte(0)
	if w.deflate {
		z := compress(nil, data)
		defer compressors.Put(z)
		payload, rsv1 = z.buf.Bytes(), rsv1Bit
	}
	if w.fragment <= 0 || len(payload) <= w.fragment {
		w.frame(finBit|rsv1|byte(op), payload)
		return
	}
	w.frame(rsv1|byte(op), payload[:w.fragment])
	for payload = payload[w.fragment:]; len(payload) > w.fragment; payload = payload[w.fragment:] {
		w.frame(continuationFrame, payload[:w.fragment])
	}
	w.frame(finBit|continuationFrame, payload)
}

// control appends a ping, pong or close frame. Payloads over the control
// frame limit are cut, at a rune boundary for a close reason.
func (w *frameWriter) control(op int, payload []byte) {
	if len(payload) > maxControlPayload {
		payload = payload[:maxControlPayload]
		for op == websocket.CloseMessage && len(payload) > 2 && !utf8.Valid(payload[2:]) {
			payload = payload[:len(payload)-1]
		}
	}
	w.frame(finBit|byte(op), payload)
}

// frame appends one masked frame with first header byte b0.
func (w *frameWriter) frame(b0 byte, payload []byte) {
	const maskBit = 0x80
	n := len(payload)
	switch {
	case n < 126:
		w.buf = append(w.buf, b0, maskBit|byte(n))
	case n <= 0xffff:
		w.buf = binary.BigEndian.AppendUint16(append(w.buf, b0, maskBit|126), uint16(n))
	default:
		w.buf = binary.BigEndian.AppendUint64(append(w.buf, b0, maskBit|127), uint64(n))
	}
	var key [4]byte
	binary.LittleEndian.PutUint32(key[:], uint32(w.rng.Uint64()))
	w.buf = append(w.buf, key[:]...)
	start := len(w.buf)
	w.buf = append(w.buf, payload...)
	maskBytes(key, w.buf[start:])
}

// buffered is the number of bytes waiting for flush.
func (w *frameWriter) buffered() int { return len(w.buf) }

// flush writes the gathered frames. Each write of up to maxBatch bytes gets
// writeWait, so a large message on a slow link fails only when it stops
// making progress.
func (w *frameWriter) flush() error { return w.write(false) }

// flushFinal writes the gathered frames, a close frame among them, even
// after cut, unless cut broke a frame; within closeGrace.
func (w *frameWriter) flushFinal() error { return w.write(true) }

func (w *frameWriter) write(final bool) error {
	var err error
	for b := w.buf; len(b) > 0 && err == nil; {
		n := min(len(b), maxBatch)
		w.mu.Lock()
		if w.broken || (w.stopped && !final) {
			w.mu.Unlock()
			err = errWriteCut
			break
		}
		w.busy = true
		if final {
			w.conn.SetWriteDeadline(time.Now().Add(closeGrace))
		} else {
			w.conn.SetWriteDeadline(time.Now().Add(writeWait))
		}
		w.mu.Unlock()
		n, err = w.conn.Write(b[:n])
		b = b[n:]
	}
	w.mu.Lock()
	w.busy = false
	if err != nil && err != errWriteCut {
		w.broken = true // a failed write may have left a frame unfinished
	}
	w.mu.Unlock()
	if cap(w.buf) > 2*maxBatch {
		w.buf = nil // do not keep a large message's buffer
	} else {
		w.buf = w.buf[:0]
	}
	return err
}

// errWriteCut is what a write returns after cut.
var errWriteCut = errors.New("write interrupted")

// cut stops the messages: Ctrl-C and --timeout must not wait for a server
// that stopped reading. A write in progress ends at once, which leaves a
// frame unfinished; otherwise flushFinal can still send a close.
func (w *frameWriter) cut() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	if w.busy {
		w.broken = true
		w.conn.SetWriteDeadline(time.Now())
	}
}

// state reports whether cut was called and whether it broke a frame.
func (w *frameWriter) state() (stopped, broken bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stopped, w.broken
}
