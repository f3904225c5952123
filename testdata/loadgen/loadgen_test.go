package main

// These tests run with `go test ./testdata/loadgen`; `go test ./...` skips
// testdata, so they never slow the project's own suite.

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestPayloadRoundTrip(t *testing.T) {
	tests := []struct {
		name         string
		run          uint16
		seq, ts      uint64
		size         int
		wantDecodeOK bool
	}{
		{name: "probe", run: 0, seq: 0, ts: 0, size: 64, wantDecodeOK: true},
		{name: "large values", run: 0xffff, seq: 1<<48 - 1, ts: 1<<63 + 5, size: 64, wantDecodeOK: true},
		{name: "minimum size", run: 7, seq: 42, ts: 123456789, size: headerLen + 1, wantDecodeOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := make([]byte, tt.size)
			fillPadding(b)
			encodePayload(b, tt.run, tt.seq, tt.ts)
			if bytes.ContainsAny(b, "\n\t\r") || b[len(b)-1] == ' ' {
				t.Errorf("payload %q holds characters gorilla's chat example would rewrite", b)
			}
			run, seq, ts, ok := decodePayload(b)
			if ok != tt.wantDecodeOK || run != tt.run || seq != tt.seq || ts != tt.ts {
				t.Errorf("decodePayload(%q) = %d, %d, %d, %v; want %d, %d, %d, %v",
					b, run, seq, ts, ok, tt.run, tt.seq, tt.ts, tt.wantDecodeOK)
			}
		})
	}
	if _, _, _, ok := decodePayload([]byte("0001 zzzzzzzzzzzz 0000000000000000 abc")); ok {
		t.Error("decodePayload accepted a non-hex sequence number")
	}
}

// frame builds an unmasked server frame.
func frame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	f := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		f = append(f, byte(n))
	case n < 1<<16:
		f = append(f, 126, byte(n>>8), byte(n))
	default:
		f = append(f, 127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(f, payload...)
}

func TestParseFrames(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 70000)
	mid := bytes.Repeat([]byte("y"), 300)
	var stream []byte
	stream = append(stream, frame(true, opText, []byte("one"))...)
	stream = append(stream, frame(false, opText, []byte("tw"))...)
	stream = append(stream, frame(false, opContinuation, []byte("o"))...)
	stream = append(stream, frame(true, opContinuation, []byte("!"))...)
	stream = append(stream, frame(true, opPong, nil)...)
	stream = append(stream, frame(true, opBinary, mid)...)
	stream = append(stream, frame(true, opBinary, big)...)
	want := []string{"text:one", "text:two!", "binary:" + string(mid), "binary:" + string(big)}

	// Feed the stream in chunks of every awkward size, as reads would.
	for _, chunk := range []int{1, 2, 3, 7, 100, 4096, len(stream)} {
		rc := &rawConn{buf: make([]byte, 512)}
		var got []string
		onMessage := func(op byte, p []byte) {
			kind := "text:"
			if op == opBinary {
				kind = "binary:"
			}
			got = append(got, kind+string(p))
		}
		for rest := stream; len(rest) > 0; {
			n := min(chunk, len(rest))
			for rc.n+n > len(rc.buf) {
				rc.buf = append(rc.buf, make([]byte, len(rc.buf))...)
			}
			rc.n += copy(rc.buf[rc.n:], rest[:n])
			rest = rest[n:]
			if err := rc.parse(onMessage); err != nil {
				t.Fatalf("chunk %d: parse: %v", chunk, err)
			}
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("chunk %d: got %d messages %.40q, want %d %.40q", chunk, len(got), got, len(want), want)
		}
		if rc.n != 0 {
			t.Errorf("chunk %d: %d bytes left over", chunk, rc.n)
		}
	}
}

func TestParseClose(t *testing.T) {
	rc := &rawConn{buf: frame(true, opClose, []byte{0x03, 0xe8})}
	rc.n = len(rc.buf)
	if err := rc.parse(func(byte, []byte) {}); err != errClosed {
		t.Errorf("parse(close frame) = %v, want errClosed", err)
	}
}

func TestSubscriberCounts(t *testing.T) {
	cfg := config{size: 64, splitNewlines: true}
	s := newSubscriber(&rawConn{}, cfg, time.Now())
	s.reset(1)
	msg := func(run uint16, seq uint64) []byte {
		b := make([]byte, 64)
		fillPadding(b)
		encodePayload(b, run, seq, 0)
		return b
	}
	joined := bytes.Join([][]byte{msg(1, 0), msg(1, 1), msg(1, 3)}, []byte{'\n'})
	s.onMessage(opText, joined)
	s.onMessage(opText, msg(1, 2))               // late: out of order
	s.onMessage(opText, msg(0, 9))               // probe
	s.onMessage(opText, msg(2, 0))               // another run
	s.onMessage(opText, []byte("not a payload")) // bad
	altered := msg(1, 4)
	altered[60] ^= 1
	s.onMessage(opText, altered)

	var res result
	s.collect(&res)
	if res.received != 4 || res.outOfOrder != 1 || res.stray != 1 || res.bad != 2 || !s.ready.Load() {
		t.Errorf("received %d, out of order %d, stray %d, bad %d, ready %v; want 4, 1, 1, 2, true",
			res.received, res.outOfOrder, res.stray, res.bad, s.ready.Load())
	}
}

func TestHistogramQuantile(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Millisecond)
	}
	tests := []struct {
		q    float64
		want time.Duration
	}{
		{0.5, 500 * time.Millisecond},
		{0.99, 990 * time.Millisecond},
		{1, 1000 * time.Millisecond},
	}
	for _, tt := range tests {
		got := h.quantile(tt.q)
		if diff := float64(got-tt.want) / float64(tt.want); diff < -0.035 || diff > 0.035 {
			t.Errorf("quantile(%v) = %v, want %v within 3.5%%", tt.q, got, tt.want)
		}
	}
	for us := uint64(0); us < 1<<20; us += 997 {
		if i := bucketOf(us); i >= numBuckets || bucketMid(i) < float64(us)*0.96 || bucketMid(i) > float64(us)*1.04+1 {
			t.Fatalf("bucketOf(%d) = %d, mid %v", us, i, bucketMid(i))
		}
	}
}
