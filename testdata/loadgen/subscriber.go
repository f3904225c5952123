package main

import (
	"bytes"
	"sync"
	"sync/atomic"
	"time"
)

// Payload layout, all ASCII so that it survives servers that only relay text
// or that trim and rewrite whitespace (gorilla's chat example):
//
//	"RRRR SSSSSSSSSSSS TTTTTTTTTTTTTTTT " followed by padding 'a'..'z' repeated
//
// R is the run id in hex (0 marks a readiness probe), S the sequence number
// within the run, T the intended send time in nanoseconds since the
// generator's start (monotonic clock). The padding lets every subscriber
// check that the payload arrived byte-exact.
const (
	runDigits = 4
	seqDigits = 12
	tsDigits  = 16
	headerLen = runDigits + 1 + seqDigits + 1 + tsDigits + 1
)

const hexDigits = "0123456789abcdef"

// encodePayload writes the header of a payload into b[:headerLen].
func encodePayload(b []byte, run uint16, seq, ts uint64) {
	putHex(b[0:runDigits], uint64(run))
	b[runDigits] = ' '
	putHex(b[runDigits+1:runDigits+1+seqDigits], seq)
	b[runDigits+1+seqDigits] = ' '
	putHex(b[headerLen-1-tsDigits:headerLen-1], ts)
	b[headerLen-1] = ' '
}

// fillPadding writes the padding pattern into b[headerLen:].
func fillPadding(b []byte) {
	for i := headerLen; i < len(b); i++ {
		b[i] = 'a' + byte(i%26)
	}
}

func putHex(b []byte, v uint64) {
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = hexDigits[v&0xf]
		v >>= 4
	}
}

// decodePayload parses a payload header; ok is false if it is malformed.
func decodePayload(b []byte) (run uint16, seq, ts uint64, ok bool) {
	if len(b) < headerLen || b[runDigits] != ' ' || b[runDigits+1+seqDigits] != ' ' || b[headerLen-1] != ' ' {
		return 0, 0, 0, false
	}
	r, ok1 := parseHex(b[0:runDigits])
	seq, ok2 := parseHex(b[runDigits+1 : runDigits+1+seqDigits])
	ts, ok3 := parseHex(b[headerLen-1-tsDigits : headerLen-1])
	return uint16(r), seq, ts, ok1 && ok2 && ok3
}

func parseHex(b []byte) (uint64, bool) {
	var v uint64
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// subscriber keeps the figures of the current run for one connection. Its
// poller is the only reader of conn; the figures are guarded by mu, which the
// poller holds per socket read and the main goroutine takes between runs.
type subscriber struct {
	conn    *rawConn
	base    time.Time // origin of payload timestamps
	size    int       // expected payload length
	msgType byte      // expected opcode, 0 to accept any
	split   bool      // split frames on '\n'
	padding []byte    // expected payload bytes after the header
	// onMessageFunc is s.onMessage, bound once so parsing allocates nothing.
	onMessageFunc func(op byte, msg []byte)
	ready         atomic.Bool
	dropped       atomic.Bool  // conn failed or the server closed it
	received      atomic.Int64 // deliveries of the current run, read by the drain loop
	mu            sync.Mutex
	run           uint16        // current run id; deliveries of other runs are strays
	next          uint64        // next expected sequence number
	outOfOrd      int64         // deliveries with a sequence number below one already seen
	bad           int64         // malformed, altered or wrongly typed payloads
	stray         int64         // payloads of another run (late ones of a previous step)
	now           time.Duration // time of the socket read being parsed
	maxLat        time.Duration
	latencies     histogram
}

func newSubscriber(c *rawConn, cfg config, base time.Time) *subscriber {
	s := &subscriber{conn: c, base: base, size: cfg.size, split: cfg.splitNewlines}
	if !cfg.splitNewlines {
		// gorilla's chat example always answers in text; otherwise the type must match.
		s.msgType = opText
		if cfg.binary {
			s.msgType = opBinary
		}
	}
	p := make([]byte, cfg.size)
	fillPadding(p)
	s.padding = p[headerLen:]
	s.onMessageFunc = s.onMessage
	return s
}

// readOnce reads what is waiting on the socket and accounts for every
// complete message in it, all with the time of that read. It is called by the
// subscriber's poller only.
func (s *subscriber) readOnce() error {
	now, err := s.conn.fill(s.base)
	if err == errWouldBlock {
		return nil
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
	return s.conn.parse(s.onMessageFunc)
}

// fail records that the connection broke during the run.
func (s *subscriber) fail() { s.dropped.Store(true) }

// onMessage accounts for one data message. s.mu must be held.
func (s *subscriber) onMessage(op byte, msg []byte) {
	switch {
	case s.msgType != 0 && op != s.msgType:
		s.bad++
	case s.split:
		for p := range bytes.SplitSeq(msg, []byte{'\n'}) {
			s.deliver(p, s.now)
		}
	default:
		s.deliver(msg, s.now)
	}
}

// deliver accounts for one payload received at now. s.mu must be held.
func (s *subscriber) deliver(p []byte, now time.Duration) {
	run, seq, ts, ok := decodePayload(p)
	if !ok || len(p) != s.size || !bytes.Equal(p[headerLen:], s.padding) {
		s.bad++
		return
	}
	if run == 0 {
		s.ready.Store(true)
		return
	}
	if run != s.run {
		s.stray++
		return
	}
	s.received.Add(1)
	if seq >= s.next {
		s.next = seq + 1
	} else {
		s.outOfOrd++
	}
	lat := max(now-time.Duration(ts), 0)
	s.latencies.add(lat)
	s.maxLat = max(s.maxLat, lat)
}

// reset starts run id: figures of earlier runs are forgotten.
func (s *subscriber) reset(id uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.run, s.next = id, 0
	s.outOfOrd, s.bad, s.stray, s.maxLat = 0, 0, 0, 0
	s.latencies = histogram{}
	s.received.Store(0)
}

// collect adds the subscriber's figures for the current run to res.
func (s *subscriber) collect(res *result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	res.received += s.received.Load()
	res.outOfOrder += s.outOfOrd
	res.bad += s.bad
	res.stray += s.stray
	res.maxLat = max(res.maxLat, s.maxLat)
	res.latencies.merge(&s.latencies)
	if s.dropped.Load() {
		res.dropped++
	}
}
