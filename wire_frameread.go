package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"unicode/utf8"
)

// Reading frames as they arrive: frame headers, the frame-by-frame reader
// dial's tap puts below gorilla, and UTF-8 checked as a message arrives.

// Frame header bits and opcodes, as RFC 6455 §5.2 numbers them.
const (
	rsvBits            = 0x70 // RSV1, RSV2 and RSV3
	maskBit            = 0x80 // second byte: the payload is masked
	opContinuation     = 0x0
	firstControlOpcode = 0x8 // close, ping, pong and reserved control opcodes
)

// protocolError is input that breaks RFC 6455 or an extension's rules:
// the connection is failed with 1002 and the reason.
type protocolError struct{ reason string }

func (e *protocolError) Error() string { return e.reason }

// frameHeader is a parsed frame header.
type frameHeader struct {
	b0     byte  // FIN, RSV1-3 and the opcode
	masked bool  // a mask key follows the length
	size   int   // header length, with the extended length and mask key
	length int64 // payload length
}

// op is the frame's opcode.
func (h frameHeader) op() int { return int(h.b0 & 0x0f) }

// parseFrameHeader parses the frame header at the start of b: ok is false
// if b does not hold all of it yet (need says how many bytes it does
// need).
func parseFrameHeader(b []byte) (h frameHeader, need int, ok bool) {
	if len(b) < 2 {
		return h, 2, false
	}
	h.size = 2
	switch b[1] & 0x7f {
	case 126:
		h.size += 2
	case 127:
		h.size += 8
	}
	if b[1]&maskBit != 0 {
		h.size += 4
	}
	if len(b) < h.size {
		return h, h.size, false
	}
	var n uint64
	switch b[1] & 0x7f {
	case 126:
		n = uint64(binary.BigEndian.Uint16(b[2:]))
	case 127:
		n = binary.BigEndian.Uint64(b[2:])
	default:
		n = uint64(b[1] & 0x7f)
	}
	// RFC 6455 §5.2: the most significant bit must be 0. Such a length is
	// kept negative, for checkLength to refuse.
	h.b0, h.masked, h.length = b[0], b[1]&maskBit != 0, int64(n)
	return h, h.size, true
}

// checkLength fails a frame whose 64-bit length has its top bit set.
func checkLength(h frameHeader) error {
	if h.length < 0 {
		return &protocolError{"frame length with the most significant bit set"}
	}
	return nil
}

// checkRSV1 fails a frame that carries RSV1 where permessage-deflate does
// not allow it, on a continuation or control frame (RFC 7692 §6.1): gorilla
// accepts both once compression is negotiated.
func checkRSV1(h frameHeader) error {
	if h.b0&rsv1Bit != 0 && (h.op() == opContinuation || h.op() >= firstControlOpcode) {
		return &protocolError{"RSV1 set on a continuation or control frame"}
	}
	return nil
}

// frameReader hands its input out one frame at a time: a Read never goes
// past the end of the current frame, and each frame's header is checked
// before any of it is handed out. So a reader above it, gorilla, has
// nothing buffered once it has read a whole message.
type frameReader struct {
	in    *bufio.Reader
	left  int64                   // bytes of the current frame not yet handed out
	check func(frameHeader) error // nil: no check
}

// Read reads at most to the end of the current frame.
func (f *frameReader) Read(p []byte) (int, error) {
	if f.left == 0 {
		h, err := f.peekHeader()
		if err != nil {
			return 0, err
		}
		if err := checkLength(h); err != nil {
			return 0, err
		}
		if f.check != nil {
			if err := f.check(h); err != nil {
				return 0, err
			}
		}
		f.left = int64(h.size) + h.length
	}
	if int64(len(p)) > f.left {
		p = p[:f.left]
	}
	n, err := f.in.Read(p)
	f.left -= int64(n)
	return n, err
}

// peekHeader waits for the next frame's header without consuming it.
func (f *frameReader) peekHeader() (frameHeader, error) { return peekFrameHeader(f.in) }

// peekFrameHeader waits for the next frame's header in in without
// consuming it.
func peekFrameHeader(in *bufio.Reader) (frameHeader, error) {
	need := 2
	for {
		b, err := in.Peek(need)
		if err != nil {
			return frameHeader{}, err
		}
		h, n, ok := parseFrameHeader(b)
		if ok {
			return h, nil
		}
		need = n
	}
}

// errInvalidUTF8 ends a text message at its first byte that is not UTF-8.
var errInvalidUTF8 = errors.New("invalid UTF-8 in text message")

// utf8Stream checks a text message for valid UTF-8 as its bytes arrive,
// so an invalid one fails at its first bad byte rather than at its end.
type utf8Stream struct{ checked int }

// check reports whether msg, the message so far, is valid UTF-8 but for a
// last character that more bytes may still complete. Only what was not
// checked before is read again.
func (u *utf8Stream) check(msg []byte) bool {
	end := len(msg)
	for i := len(msg) - 1; i >= u.checked && i >= len(msg)-utf8.UTFMax+1; i-- {
		if utf8.RuneStart(msg[i]) {
			if !utf8.FullRune(msg[i:]) {
				end = i
			}
			break
		}
	}
	if !utf8.Valid(msg[u.checked:end]) {
		return false
	}
	u.checked = end
	return true
}

// done reports whether the whole message, msg, is valid UTF-8.
func (u *utf8Stream) done(msg []byte) bool {
	return utf8.Valid(msg[u.checked:])
}
