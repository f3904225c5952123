package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"
)

// found is one visit of markerCodec.scan.
type found struct {
	m         marker
	exact, ok bool
}

func scanAll(c *markerCodec, msg []byte) (int, []found) {
	var got []found
	n := c.scan(msg, func(m marker, exact, ok bool) { got = append(got, found{m, exact, ok}) })
	return n, got
}

func TestMarkerScan(t *testing.T) {
	c := newMarkerCodec(0x2a2a2a, 64)
	payload := func(seq int64) []byte {
		p := c.newPayload()
		c.encode(p, marker{kind: markMessage, pub: 7, seq: seq, intended: 5 * time.Second, actual: 5*time.Second + 300*time.Microsecond})
		return p
	}
	p1, p2 := payload(1), payload(2)
	envelope, _ := json.Marshal(map[string]any{"event": "message", "seq": 3, "data": string(p1)})
	binEnvelope, _ := json.Marshal(map[string]any{"event": "message", "type": "binary", "data": base64.StdEncoding.EncodeToString(p2)})
	altered := bytes.Clone(p1)
	altered[len(altered)-1] ^= 1
	other := newMarkerCodec(0x777, 64)
	stranger := other.newPayload()
	other.encode(stranger, marker{kind: markMessage, seq: 1})
	tests := []struct {
		name      string
		msg       []byte
		wantSeqs  []int64 // of the markers that parsed
		wantExact bool
	}{
		{name: "bare", msg: p1, wantSeqs: []int64{1}, wantExact: true},
		{name: "prefix", msg: append([]byte("Data received: "), p1...), wantSeqs: []int64{1}, wantExact: true},
		{name: "suffix", msg: append(bytes.Clone(p1), " (echoed)"...), wantSeqs: []int64{1}, wantExact: true},
		{name: "batched with newlines", msg: bytes.Join([][]byte{p1, p2}, []byte("\n")), wantSeqs: []int64{1, 2}, wantExact: true},
		{name: "JSON envelope", msg: envelope, wantSeqs: []int64{1}, wantExact: true},
		{name: "binary as base64 in JSON", msg: binEnvelope, wantSeqs: []int64{2}, wantExact: true},
		{name: "altered padding", msg: altered, wantSeqs: []int64{1}, wantExact: false},
		{name: "another run", msg: stranger},
		{name: "welcome", msg: []byte(`{"event":"welcome","you":{"conn":1}}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, got := scanAll(c, tt.msg)
			if n != len(tt.wantSeqs) || len(got) != len(tt.wantSeqs) {
				t.Fatalf("scan(%q) found %d markers %+v, want %d", tt.msg, n, got, len(tt.wantSeqs))
			}
			for i, f := range got {
				want := marker{kind: markMessage, pub: 7, seq: tt.wantSeqs[i], intended: 5 * time.Second, actual: 5*time.Second + 300*time.Microsecond}
				if !f.ok || f.m != want || f.exact != tt.wantExact {
					t.Errorf("scan(%q) marker %d = %+v exact %v ok %v, want %+v exact %v", tt.msg, i, f.m, f.exact, f.ok, want, tt.wantExact)
				}
			}
		})
	}
}

func TestMarkerIsJSONSafe(t *testing.T) {
	c := newMarkerCodec(1<<42-1, markerLen)
	p := c.newPayload()
	c.encode(p, marker{kind: markMessage, pub: 1<<18 - 1, seq: 1<<36 - 1, intended: 1<<54 - 1, actual: 1<<60 - 1})
	enc, _ := json.Marshal(string(p))
	if string(enc) != `"`+string(p)+`"` {
		t.Errorf("JSON encodes the marker %q as %s: a receiver could not find it", p, enc)
	}
	if len(p) != markerLen || markerLen%3 != 0 || headLen%3 != 0 {
		t.Errorf("marker %q: length %d, head %d; both must be multiples of 3 for base64", p, len(p), headLen)
	}
}

func TestMarkerRejectsGarbage(t *testing.T) {
	c := newMarkerCodec(99, 64)
	p := c.newPayload()
	c.encode(p, marker{kind: markMessage, seq: 4})
	p[headLen+5] = '!' // not a digit
	n, got := scanAll(c, p)
	if n != 1 || len(got) != 1 || got[0].ok {
		t.Errorf("scan of a marker with a bad digit = %d, %+v; want one visit with ok false", n, got)
	}
	n, got = scanAll(c, p[:markerLen-3]) // cut short
	if n != 1 || len(got) != 1 || got[0].ok {
		t.Errorf("scan of a cut marker = %d, %+v; want one visit with ok false", n, got)
	}
}

func TestTrackMark(t *testing.T) {
	tests := []struct {
		name     string
		seqs     []int64
		wantDup  int
		wantLate int
	}{
		{name: "in order", seqs: []int64{0, 1, 2, 3}},
		{name: "gap then late", seqs: []int64{0, 2, 1}, wantLate: 1},
		{name: "duplicate", seqs: []int64{0, 1, 1, 2}, wantDup: 1},
		{name: "far apart", seqs: []int64{5000, 3, 5000}, wantDup: 1, wantLate: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := track{high: -1}
			var dups, lates int
			for _, s := range tt.seqs {
				dup, late := tr.mark(s)
				if dup {
					dups++
				}
				if late {
					lates++
				}
			}
			if dups != tt.wantDup || lates != tt.wantLate {
				t.Errorf("mark(%v): %d duplicates, %d late; want %d, %d", tt.seqs, dups, lates, tt.wantDup, tt.wantLate)
			}
		})
	}
}

func TestShare(t *testing.T) {
	tests := []struct {
		n       int64
		senders int
		want    []int64
	}{
		{10, 3, []int64{4, 3, 3}},
		{2, 3, []int64{1, 1, 0}},
		{9, 3, []int64{3, 3, 3}},
	}
	for _, tt := range tests {
		var sum int64
		for i := range tt.senders {
			got := share(tt.n, i, tt.senders)
			sum += got
			if got != tt.want[i] {
				t.Errorf("share(%d, %d, %d) = %d, want %d", tt.n, i, tt.senders, got, tt.want[i])
			}
		}
		if sum != tt.n {
			t.Errorf("shares of %d over %d sum to %d", tt.n, tt.senders, sum)
		}
	}
}
