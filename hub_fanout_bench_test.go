package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"testing"

	"github.com/gorilla/websocket"
)

// BenchmarkShardPlan measures what a fan-out shard does per batch before
// it writes: for every member of a room, choose the shared buffer of its
// protocol (built once per batch) and count what it gets. No socket is
// involved, so this is the CPU cost the counters add to the hot path,
// without BenchmarkServeBroadcast's noise of sockets and scheduling. Each
// op is one batch of msgs messages to subs members.
func BenchmarkShardPlan(b *testing.B) {
	for _, subs := range []int{10, 500} {
		for _, msgs := range []int{1, 16} {
			b.Run(fmt.Sprintf("subscribers=%d/batch=%d", subs, msgs), func(b *testing.B) {
				h := newHub(hubConfig{}, slog.New(slog.DiscardHandler), nil, nil, 1)
				s := h.shards[0]
				members := make([]*member, subs)
				for i := range members {
					members[i] = &member{hub: h, room: "r", conn: &wsConn{id: uint64(i + 1)}}
				}
				batch := make([]*chatMessage, msgs)
				for i := range batch {
					batch[i] = &chatMessage{kind: kindMessage, room: "r", ord: uint64(i + 1), seq: uint64(i + 1),
						op: websocket.BinaryMessage, data: bytes.Repeat([]byte("m"), 64)}
				}
				b.ReportAllocs()
				for b.Loop() {
					s.planRoom(batch, members)
					if len(s.writes) != subs {
						b.Fatalf("%d writes planned, want %d", len(s.writes), subs)
					}
					clear(s.writes)
					s.writes = s.writes[:0]
				}
			})
		}
	}
}
