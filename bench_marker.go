package main

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"time"
)

// Every message bench sends starts with a marker, so that a receiver can
// find it anywhere in what arrives: after a prefix ("Data received: "),
// inside a JSON envelope such as wsx.chat.v1's "data" field, among several
// messages a server batched into one frame. The marker is ASCII that JSON
// never escapes:
//
//	~wsx RRRRRRR . K PPP SSSSSS IIIIIIIII DDDDDDD ~      (no spaces)
//
// R is the run id, K the kind (m: measured message, p: readiness probe), P
// the publisher (echo: the connection), S the sequence number, I the
// intended send time in nanoseconds since the run's start and D how much
// later the message was actually sent; each field is fixed-width in base-64
// digits (0-9A-Za-z-_), most significant first. The rest of the payload is
// padding that a receiver compares, to see altered payloads.
//
// A binary payload that a JSON server relays as base64 carries its marker
// base64-encoded: the marker starts the payload and its length and its
// head's are multiples of 3, so the encoded head is a fixed string too.
const (
	markerTag   = "~wsx"
	runDigits   = 7 // 42 bits, drawn at random per run
	pubDigits   = 3 // 18 bits
	seqDigits   = 6 // 36 bits
	timeDigits  = 9 // 54 bits of nanoseconds: 208 days
	delayDigits = 7 // 42 bits of nanoseconds: 73 minutes

	// headLen is the length of the fixed head: tag, run id and ".".
	headLen   = len(markerTag) + runDigits + 1
	markerLen = headLen + 1 + pubDigits + seqDigits + timeDigits + delayDigits + 1

	markMessage = 'm'
	markProbe   = 'p'

	// maxBenchSize bounds --size.
	maxBenchSize = 16 << 20
)

// digits is the alphabet of marker fields, in value order.
const digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_"

// digitValue maps a byte to its value in digits, or 0xff.
var digitValue = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i := range len(digits) {
		t[digits[i]] = byte(i)
	}
	return t
}()

// marker is what a marker says about its message.
type marker struct {
	kind     byte
	pub      int           // publisher (echo: connection) index
	seq      int64         // sequence number of the publisher's messages
	intended time.Duration // intended send time since the run's base
	actual   time.Duration // actual send time since the run's base
}

// markerCodec writes and finds the markers of one run.
type markerCodec struct {
	head    []byte // markerTag, run id, "."
	head0   uint64 // head[:8] as a little-endian word
	head1   uint32 // head[8:12]
	head64  []byte // head in base64, as it starts a base64-encoded payload
	padding []byte // the payload after the marker
}

// newMarkerCodec returns the codec for run id run and payloads of size bytes.
func newMarkerCodec(run uint64, size int) *markerCodec {
	head := make([]byte, 0, headLen)
	head = append(head, markerTag...)
	head = appendDigits(head, run, runDigits)
	head = append(head, '.')
	c := &markerCodec{head: head, head64: []byte(base64.StdEncoding.EncodeToString(head)),
		head0: binary.LittleEndian.Uint64(head), head1: binary.LittleEndian.Uint32(head[8:])}
	c.padding = make([]byte, size-markerLen)
	for i := range c.padding {
		c.padding[i] = 'a' + byte((markerLen+i)%26)
	}
	return c
}

// newPayload returns a payload with its padding in place.
func (c *markerCodec) newPayload() []byte {
	b := make([]byte, markerLen+len(c.padding))
	copy(b[markerLen:], c.padding)
	return b
}

// encode writes a marker into b[:markerLen].
func (c *markerCodec) encode(b []byte, m marker) {
	b = append(b[:0], c.head...)
	b = append(b, m.kind)
	b = appendDigits(b, uint64(m.pub), pubDigits)
	b = appendDigits(b, uint64(m.seq), seqDigits)
	b = appendDigits(b, uint64(m.intended), timeDigits)
	delay := min(max(m.actual-m.intended, 0), 1<<(6*delayDigits)-1)
	b = appendDigits(b, uint64(delay), delayDigits)
	_ = append(b, '~')
}

// appendDigits appends v in n base-64 digits; higher bits are dropped.
func appendDigits(b []byte, v uint64, n int) []byte {
	for i := n - 1; i >= 0; i-- {
		b = append(b, digits[(v>>(6*uint(i)))&63])
	}
	return b
}

// scan calls visit for each marker of this run in msg, with exact true when
// the padding after it arrived unaltered (a base64-encoded marker's padding
// is not checked and counts as exact). It returns how many it found; a
// marker that does not parse counts as found and is visited with ok false.
func (c *markerCodec) scan(msg []byte, visit func(m marker, exact, ok bool)) int {
	cache := newMarkerCache(1)
	found := 0
	for rest := msg; ; found++ {
		e, exact, more, hit := c.next(rest, cache)
		if !hit {
			break
		}
		if e == nil {
			visit(marker{}, false, false)
		} else {
			visit(e.m, exact, e.ok)
		}
		rest = more
	}
	if found > 0 {
		return found
	}
	return c.scan64(msg, visit)
}

// next finds the first marker of this run in msg, as scan does, and
// returns what it says (nil when it is cut short), valid until the next
// call, with what follows it; hit is false when there is none. A reader
// calls it for every delivery, so the usual case (the marker starts the
// message, whole, followed by its padding) takes a few word compares.
func (c *markerCodec) next(msg []byte, cache *markerCache) (e *cachedMarker, exact bool, rest []byte, hit bool) {
	if len(msg) < headLen {
		return nil, false, nil, false
	}
	if binary.LittleEndian.Uint64(msg) != c.head0 || binary.LittleEndian.Uint32(msg[8:]) != c.head1 {
		i := bytes.Index(msg, c.head)
		if i < 0 {
			return nil, false, nil, false
		}
		msg = msg[i:]
	}
	if len(msg) < markerLen {
		return nil, false, nil, true
	}
	e = cache.parse(c, msg[:markerLen])
	rest = msg[markerLen:]
	if exact = e.ok && bytes.HasPrefix(rest, c.padding); exact {
		rest = rest[len(c.padding):]
	}
	return e, exact, rest, true
}

// markerCache remembers what recently parsed markers said, by their bytes.
// In a broadcast every subscriber receives the same markers, and the
// poller reads many subscribers in a round, so with cacheSlots slots a
// marker is parsed once per round instead of once per subscriber, even
// when each socket holds a backlog of that many messages. A reader owns
// its cache; a reader of one connection, which never sees a marker twice,
// has one slot: where next parses into.
type markerCache struct {
	entries []cachedMarker
	mask    uint
}

// cacheSlots is the number of markers the poller's markerCache holds.
const cacheSlots = 1 << 12

// cachedMarker is a parsed marker and the bytes it was parsed from.
type cachedMarker struct {
	key   markerKey
	m     marker
	ok    bool
	valid bool
}

// newMarkerCache returns a cache of slots slots, a power of two.
func newMarkerCache(slots int) *markerCache {
	return &markerCache{entries: make([]cachedMarker, slots), mask: uint(slots - 1)}
}

// markerKey is the marker after its head (27 bytes) as four overlapping
// words, which compare faster than the bytes.
type markerKey [4]uint64

func keyOf(b []byte) markerKey {
	k := b[headLen:markerLen]
	return markerKey{binary.LittleEndian.Uint64(k), binary.LittleEndian.Uint64(k[8:]),
		binary.LittleEndian.Uint64(k[16:]), binary.LittleEndian.Uint64(k[len(k)-8:])}
}

// parse returns what the marker b says, from the cache when b was seen
// lately.
func (mc *markerCache) parse(c *markerCodec, b []byte) *cachedMarker {
	// The two lowest sequence-number digits pick the slot (their bytes
	// differ for 64 consecutive numbers each), shifted by the publisher.
	const seqEnd = headLen + 1 + pubDigits + seqDigits
	slot := uint(b[seqEnd-2])<<7 | uint(b[seqEnd-1]) + 31*uint(b[headLen+pubDigits])
	e := &mc.entries[slot&mc.mask]
	key := keyOf(b)
	if e.valid && e.key == key {
		return e
	}
	e.m, e.ok = c.parse(b)
	e.key, e.valid = key, true
	return e
}

// scan64 finds base64-encoded markers: binary payloads in JSON envelopes.
func (c *markerCodec) scan64(msg []byte, visit func(m marker, exact, ok bool)) int {
	const encodedLen = markerLen / 3 * 4
	found := 0
	for rest := msg; ; {
		i := bytes.Index(rest, c.head64)
		if i < 0 {
			return found
		}
		found++
		rest = rest[i:]
		var raw [markerLen]byte
		if len(rest) < encodedLen {
			visit(marker{}, false, false)
			return found
		}
		n, err := base64.StdEncoding.Decode(raw[:], rest[:encodedLen])
		m, ok := c.parse(raw[:n])
		ok = ok && err == nil && n == markerLen
		visit(m, ok, ok)
		rest = rest[encodedLen:]
	}
}

// parse reads a marker of this run from b, which starts with c.head. It
// runs for every delivery, so the digits are read from a fixed-size array
// (no bounds checks) and checked all at once.
func (c *markerCodec) parse(b []byte) (marker, bool) {
	if len(b) < markerLen || b[markerLen-1] != '~' {
		return marker{}, false
	}
	m := marker{kind: b[headLen]}
	if m.kind != markMessage && m.kind != markProbe {
		return m, false
	}
	d := (*[markerLen - headLen - 2]byte)(b[headLen+1 : markerLen-1])
	var bad byte
	var pub, seq, t, delay uint64
	for i := 0; i < pubDigits; i++ {
		x := digitValue[d[i]]
		bad |= x
		pub = pub<<6 | uint64(x)
	}
	for i := pubDigits; i < pubDigits+seqDigits; i++ {
		x := digitValue[d[i]]
		bad |= x
		seq = seq<<6 | uint64(x)
	}
	for i := pubDigits + seqDigits; i < pubDigits+seqDigits+timeDigits; i++ {
		x := digitValue[d[i]]
		bad |= x
		t = t<<6 | uint64(x)
	}
	for i := pubDigits + seqDigits + timeDigits; i < len(d); i++ {
		x := digitValue[d[i]]
		bad |= x
		delay = delay<<6 | uint64(x)
	}
	m.pub, m.seq, m.intended = int(pub), int64(seq), time.Duration(t)
	m.actual = m.intended + time.Duration(delay)
	return m, bad&0x80 == 0 // digitValue is 0xff for a byte that is not a digit
}
