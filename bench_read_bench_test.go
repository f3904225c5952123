package main

import (
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// BenchmarkBenchReader measures what bench spends per delivery once the
// bytes are read: parsing a server's batch of frames, finding and checking
// each marker, the duplicate check and the latency samples.
func BenchmarkBenchReader(b *testing.B) {
	const perBatch = 64
	run := &benchRun{cfg: benchConfig{mode: modeBroadcast, publishers: 1}, base: time.Now()}
	run.codec = newMarkerCodec(12345, defaultBenchSize)
	run.rep = startReporter(nil)
	defer run.rep.finish()
	pub := &benchConn{}
	pub.sent.Store(1 << 40)
	run.pubs = []*benchConn{pub}
	run.pubList.Store(&run.pubs)
	sub := &benchConn{tracks: []track{{high: -1}}}
	payload := run.codec.newPayload()
	var batch []byte
	for i := range perBatch {
		run.codec.encode(payload, marker{kind: markMessage, seq: int64(i), intended: time.Second, actual: time.Second})
		batch = appendFrame(batch, websocket.TextMessage, nil, payload, false)
	}
	r := newReader(run, pollChunk, cacheSlots)
	r.now = 2 * time.Second
	b.ReportAllocs()
	for b.Loop() {
		sub.tracks[0].high = -1
		clear(sub.tracks[0].seen)
		if rest, err := r.frames(sub, batch); err != nil || len(rest) != 0 {
			b.Fatalf("frames: %v, %d bytes left", err, len(rest))
		}
		r.received.Add(r.fresh) // as readFrom does after each read
		r.fresh = 0
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perBatch), "ns/delivery")
	if got := r.received.Load(); got != int64(b.N*perBatch) {
		b.Fatalf("received %d, want %d", got, b.N*perBatch)
	}
}
