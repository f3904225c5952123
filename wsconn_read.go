package main

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"sync"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// The read side of wsConn: frames straight from the connection's input
// buffer, one at a time. gorilla only performs the handshake; reading
// frames here costs no allocation per message, keeps nothing per idle
// connection (gorilla's Conn is 700 bytes with its buffers), and checks
// what gorilla does not (RSV1 where RFC 7692 forbids it, UTF-8 as it
// arrives). Only the connection's reader calls these, so the state they
// use needs no lock.

// minReadGrowth is the least a message buffer grows by when a frame's
// payload needs more room.
const minReadGrowth = 4 << 10

// deflateTail ends a permessage-deflate message for the inflater: the
// empty stored block the sender removed, then a final empty block.
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// inflaters are reused flate readers (each holds a 32 KiB window).
var inflaters sync.Pool

// readState is the message being received — its opcode (0: none),
// whether it is compressed, and how much of it is checked UTF-8 — and the
// frame being read: the payload bytes still to come, its mask key and the
// key's position, and whether it ends the message. A frame whose payload
// is read without waiting (inline) keeps its place here when the socket
// runs dry, and the next readFrame goes on from there.
type readState struct {
	text       utf8Stream
	left       int // payload bytes of the frame still to read
	key        [4]byte
	pos        uint8 // the key's position for the next payload byte
	op         uint8
	compressed bool
	fin        bool
}

// readFrame reads one frame and handles it: a ping is answered, a pong
// noted, a close answered and returned as a *websocket.CloseError, and a
// data frame added to the message in progress. When a frame completes a
// data message it returns the message's opcode and data, valid until the
// next call; otherwise op is 0. Read without waiting, it returns
// errWouldBlock when the socket has no more for now, with nothing lost:
// a header or control frame not yet whole is left unread, and a data
// frame's payload goes on where it stopped.
func (c *wsConn) readFrame() (op int, data []byte, err error) {
	if c.rd.left > 0 {
		c.lastSeen.Store(c.srv.tick.Load()) // a large frame arriving slowly is the peer answering too
		return c.dataFrame()
	}
	in := c.shim.in
	h, err := peekFrameHeader(c.shim.in)
	if err != nil {
		return 0, nil, err
	}
	c.lastSeen.Store(c.srv.tick.Load())
	if err := c.checkFrame(h); err != nil {
		return 0, nil, err
	}
	if h.op() >= firstControlOpcode {
		// Whole before any of it is taken; at most 139 bytes, which the
		// input buffer holds.
		frame, err := in.Peek(h.size + int(h.length))
		if err != nil {
			return 0, nil, err
		}
		return 0, nil, c.controlFrame(h, frame)
	}
	hdr, _ := in.Peek(h.size) // peekHeader has it buffered
	if h.op() != opContinuation {
		c.rd = readState{op: uint8(h.op()), compressed: h.b0&rsv1Bit != 0}
		if c.msg == nil && c.inline {
			l := c.srv.loopOf(c)
			c.msg, l.msg = l.msg, nil
		}
		if c.msg == nil {
			c.msg = make([]byte, 0, firstMessageBuffer)
		}
		c.msg = c.msg[:0]
	}
	copy(c.rd.key[:], hdr[h.size-4:])
	c.rd.left, c.rd.pos, c.rd.fin = int(h.length), 0, h.b0&finBit != 0
	in.Discard(h.size)
	return c.dataFrame()
}

// checkFrame applies RFC 6455 §5 (and RFC 7692 §6.1) to a client frame's
// header before any of its payload is read.
func (c *wsConn) checkFrame(h frameHeader) error {
	op := h.op()
	switch {
	case h.length < 0:
		return checkLength(h)
	case !h.masked:
		return &protocolError{"client frame without a MASK"}
	case h.b0&(rsvBits&^rsv1Bit) != 0:
		return &protocolError{"RSV2 or RSV3 set"}
	case h.b0&rsv1Bit != 0 && !c.deflate:
		return &protocolError{"RSV1 set without permessage-deflate"}
	case op > websocket.BinaryMessage && op < websocket.CloseMessage || op > websocket.PongMessage:
		return &protocolError{fmt.Sprintf("unknown opcode %d", op)}
	case op >= firstControlOpcode && h.b0&finBit == 0:
		return &protocolError{"fragmented control frame"}
	case op >= firstControlOpcode && h.length > maxControlPayload:
		return &protocolError{"control frame over 125 bytes"}
	case op == opContinuation && c.rd.op == 0:
		return &protocolError{"continuation frame with no message to continue"}
	case op != opContinuation && op < firstControlOpcode && c.rd.op != 0:
		return &protocolError{"new message before the fragmented one ended"}
	}
	if err := checkRSV1(h); err != nil {
		return err
	}
	sofar := 0 // bytes of the message before this frame
	if op == opContinuation {
		sofar = len(c.msg)
	}
	if op < firstControlOpcode && int64(sofar)+h.length > c.srv.cfg.maxMessageSize {
		c.closeWith(websocket.CloseMessageTooBig, "", closeGrace)
		return websocket.ErrReadLimit
	}
	return nil
}

// controlFrame handles a ping, pong or close, the whole frame buffered in
// frame, and consumes it.
func (c *wsConn) controlFrame(h frameHeader, frame []byte) error {
	var buf [maxControlPayload]byte
	p := buf[:h.length]
	copy(p, frame[h.size:])
	maskBytes([4]byte(frame[h.size-4:h.size]), p)
	c.shim.in.Discard(len(frame))
	switch h.op() {
	case websocket.PingMessage:
		c.onPing(p)
	case websocket.PongMessage:
		// lastSeen is set: nothing more to do.
	case websocket.CloseMessage:
		code, reason, err := parseCloseFrame(p)
		if err != nil {
			return err
		}
		c.onClose(code)
		return &websocket.CloseError{Code: code, Text: reason}
	}
	return nil
}

// parseCloseFrame reads a close frame's payload: no code (1005), or a
// code that may be sent (RFC 6455 §7.4) and a UTF-8 reason.
func parseCloseFrame(p []byte) (code int, reason string, err error) {
	switch {
	case len(p) == 0:
		return websocket.CloseNoStatusReceived, "", nil
	case len(p) == 1:
		return 0, "", &protocolError{"close frame with a 1-byte payload"}
	}
	code = int(binary.BigEndian.Uint16(p))
	if !receivableCloseCode(code) {
		return 0, "", &protocolError{fmt.Sprintf("invalid close code %d", code)}
	}
	if !utf8.Valid(p[2:]) {
		return 0, "", &protocolError{"invalid UTF-8 in close reason"}
	}
	return code, string(p[2:]), nil
}

// receivableCloseCode reports whether a peer may send code: the codes RFC
// 6455 §7.4 and its registry define for sending, and 3000-4999.
func receivableCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	}
	return code >= 3000 && code <= 4999
}

// dataFrame reads the rest of a text, binary or continuation frame's
// payload into the message in progress, checking text for UTF-8 as it
// arrives.
func (c *wsConn) dataFrame() (int, []byte, error) {
	checkText := c.rd.op == websocket.TextMessage && !c.rd.compressed
	for c.rd.left > 0 {
		// Piece by piece as it arrives, so invalid text fails at once; and
		// the buffer grows with what arrives, not with what the header
		// claims, or headers alone could make the server allocate.
		if len(c.msg) == cap(c.msg) {
			c.msg = slices.Grow(c.msg, min(c.rd.left, max(cap(c.msg), minReadGrowth)))
		}
		room := c.msg[len(c.msg):min(cap(c.msg), len(c.msg)+c.rd.left)]
		k, err := c.shim.in.Read(room)
		maskAt(c.rd.key, int(c.rd.pos), room[:k])
		c.rd.pos = uint8((int(c.rd.pos) + k) & 3)
		c.msg = c.msg[:len(c.msg)+k]
		c.rd.left -= k
		if checkText && !c.rd.text.check(c.msg) {
			return 0, nil, errInvalidUTF8
		}
		if err != nil && c.rd.left > 0 {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, nil, err
		}
	}
	if !c.rd.fin {
		return 0, nil, nil
	}
	rd := c.rd
	c.rd = readState{}
	data := c.msg
	if rd.compressed {
		var err error
		if data, err = c.inflate(data); err != nil {
			return 0, nil, err
		}
	}
	if rd.op == websocket.TextMessage && ((rd.compressed && !utf8.Valid(data)) || (!rd.compressed && !rd.text.done(data))) {
		return 0, nil, errInvalidUTF8
	}
	if cap(c.msg) > keepBuffer {
		c.msg = nil
	}
	return int(rd.op), data, nil
}

// inflate decompresses a permessage-deflate message, failing it with 1009
// if it inflates past --max-message-size.
func (c *wsConn) inflate(compressed []byte) ([]byte, error) {
	src := io.MultiReader(bytes.NewReader(compressed), bytes.NewReader(deflateTail))
	fr, _ := inflaters.Get().(io.ReadCloser)
	if fr == nil {
		fr = flate.NewReader(src)
	} else {
		fr.(flate.Resetter).Reset(src, nil)
	}
	defer inflaters.Put(fr)
	limit := c.srv.cfg.maxMessageSize
	out, err := io.ReadAll(io.LimitReader(fr, limit+1))
	if err != nil {
		return nil, &protocolError{"permessage-deflate: " + err.Error()}
	}
	if int64(len(out)) > limit {
		c.closeWith(websocket.CloseMessageTooBig, "", closeGrace)
		return nil, websocket.ErrReadLimit
	}
	return out, nil
}
