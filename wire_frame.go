package main

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// Frame encoding for the server side. Servers send unmasked frames, so a
// frame is a small header followed by the payload: wsx encodes each outgoing
// message once into these bytes and appends them to every receiver's queue.
// Masking (maskBytes, maskAt) serves both sides: clients mask what they
// send, and the server unmasks what it reads.

// Timing of a connection's writes and of its close handshake, the same for
// servers and clients.
const (
	// writeWait is the time allowed to write one batch of frames to a peer.
	writeWait = 10 * time.Second

	// closeGrace is how long a connection waits, after its close frame is
	// queued, for the peer's close before the socket is closed anyway.
	closeGrace = 2 * time.Second
)

const (
	finBit  = 0x80 // last frame of a message
	rsv1Bit = 0x40 // permessage-deflate: the payload is compressed

	// maxHeaderLen is the longest unmasked frame header: 2 bytes plus an
	// 8-byte extended length.
	maxHeaderLen = 10

	// maxControlPayload is the RFC 6455 limit on ping, pong and close payloads.
	maxControlPayload = 125
)

// appendHeader appends the header of a final frame of the given opcode and
// payload length to b.
func appendHeader(b []byte, op int, n int, compressed bool) []byte {
	b0 := byte(finBit | op)
	if compressed {
		b0 |= rsv1Bit
	}
	switch {
	case n < 126:
		return append(b, b0, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(b, b0, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, b0, 127), uint64(n))
	}
}

// appendFrame appends one complete frame carrying prefix+payload to b,
// compressed (permessage-deflate, no context takeover) when deflate is set.
func appendFrame(b []byte, op int, prefix, payload []byte, deflate bool) []byte {
	if deflate && op != websocket.CloseMessage && op != websocket.PingMessage && op != websocket.PongMessage {
		z := compress(prefix, payload)
		b = appendHeader(b, op, z.buf.Len(), true)
		b = append(b, z.buf.Bytes()...)
		compressors.Put(z)
		return b
	}
	b = appendHeader(b, op, len(prefix)+len(payload), false)
	b = append(b, prefix...)
	return append(b, payload...)
}

// encodeFrame returns a new frame; used where the frame is shared by many
// receivers.
func encodeFrame(op int, payload []byte, deflate bool) []byte {
	return appendFrame(make([]byte, 0, len(payload)+maxHeaderLen), op, nil, payload, deflate)
}

// closeFrame returns a close frame with the code and reason, the reason cut
// at a rune boundary to fit the control frame limit.
func closeFrame(code int, reason string) []byte {
	if len(reason) > maxControlPayload-2 {
		reason = reason[:maxControlPayload-2]
		for !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	return encodeFrame(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), false)
}

// compressor is a pooled flate writer with its output buffer; flate writers
// allocate about 600 KiB each, so they are never made per message.
type compressor struct {
	buf bytes.Buffer
	w   *flate.Writer
}

var compressors = sync.Pool{New: func() any {
	c := new(compressor)
	c.w, _ = flate.NewWriter(&c.buf, flate.BestSpeed) // cannot fail for a valid level
	return c
}}

// compressedTail is what a sync flush ends with; permessage-deflate drops it.
var compressedTail = []byte{0x00, 0x00, 0xff, 0xff}

// compress deflates prefix+payload as one permessage-deflate message into a
// pooled compressor's buffer; the caller puts the compressor back.
func compress(prefix, payload []byte) *compressor {
	c := compressors.Get().(*compressor)
	c.buf.Reset()
	c.w.Reset(&c.buf)
	c.w.Write(prefix) // writes to a bytes.Buffer cannot fail
	c.w.Write(payload)
	c.w.Flush()
	c.buf.Truncate(len(bytes.TrimSuffix(c.buf.Bytes(), compressedTail)))
	return c
}

// maskBytes XORs b with the masking key, the first byte of b with key[0].
func maskBytes(key [4]byte, b []byte) {
	k := uint64(binary.LittleEndian.Uint32(key[:]))
	k |= k << 32
	i := 0
	for ; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], binary.LittleEndian.Uint64(b[i:])^k)
	}
	for ; i < len(b); i++ {
		b[i] ^= key[i&3]
	}
}

// maskAt masks or unmasks b, the bytes at offset pos of a payload masked
// with key.
func maskAt(key [4]byte, pos int, b []byte) {
	if r := pos & 3; r != 0 {
		key = [4]byte{key[r], key[(r+1)&3], key[(r+2)&3], key[(r+3)&3]}
	}
	maskBytes(key, b)
}
