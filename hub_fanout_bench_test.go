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
					s.planRoom(batch, members, new([4]uint64))
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

// TestShardCountsMessagesOut checks the counts of messages out that
// shared buffers keep per protocol rather than per member: members that
// shared a batch and the one that got its own frames (the sender, with
// --include-self) each count exactly what they were given, also after
// joining late.
func TestShardCountsMessagesOut(t *testing.T) {
	h := newHub(hubConfig{includeSelf: true}, slog.New(slog.DiscardHandler), nil, nil, 1)
	s := h.shards[0]
	srv := &wsServer{}
	newMember := func(id uint64) *member {
		c := &member{hub: h, room: "r", shard: s, conn: &wsConn{id: id, srv: srv}}
		s.add(c)
		return c
	}
	a, b := newMember(1), newMember(2)
	batch := func(from *member, n int) {
		msgs := make([]*chatMessage, n)
		for i := range msgs {
			msgs[i] = &chatMessage{kind: kindMessage, room: "r", ord: h.ord.Add(1), sender: from, op: websocket.TextMessage, data: []byte("m")}
		}
		s.memMu.Lock()
		s.planRoom(msgs, s.members["r"], s.shared["r"])
		s.memMu.Unlock()
		clear(s.writes)
		s.writes = s.writes[:0]
	}
	batch(a, 3) // a gets its own frames, b the shared buffer
	c := newMember(3)
	batch(nil, 2) // everyone shares
	batch(c, 1)
	for _, tc := range []struct {
		m    *member
		want uint64
	}{{a, 6}, {b, 6}, {c, 3}} {
		if got := tc.m.messagesOut(); got != tc.want {
			t.Errorf("member %d: %d messages out, want %d", tc.m.conn.id, got, tc.want)
		}
	}
}
