package main

import (
	"slices"
	"sync/atomic"

	"github.com/gorilla/websocket"
)

// The hub's counters, read by serve's /metrics and connection API.
//
// Nothing here is touched per delivery: a shard adds its deliveries once
// per room per batch to counters of its own (shardStats), and a member's
// count of messages out is a plain field its shard adds to while planning,
// under the lock it already holds. Per received message, the receiving
// goroutine adds to hubStats, as it already does to the hub's order.

// Indexes of counters kept by message type and by protocol.
const (
	typeText   = 0
	typeBinary = 1

	protoRaw  = 0
	protoJSON = 1
)

// typeNames and protoNames are the label values of those indexes.
var (
	typeNames  = [2]string{"text", "binary"}
	protoNames = [2]string{"raw", "json"}
)

// typeIndex is the counter index of a message type.
func typeIndex(op int) int {
	if op == websocket.BinaryMessage {
		return typeBinary
	}
	return typeText
}

// Reasons the server cuts a client, as counted.
const (
	cutSlowConsumer = iota // its send queue overflowed (1008)
	cutRate                // it kept flooding past --rate (1008)
	cutSize                // it sent a message over --max-message-size (1009)
	cutUTF8                // it sent text that is not UTF-8 (1007)
	cutReadOnly            // a read-only raw client sent a message (1008)
	cutAPI                 // DELETE /api/connections/{id}
	cutUnavailable         // it sent, or joined, while the backplane was down (1013)
	numCutReasons
)

// cutNames are the label values of the cut reasons.
var cutNames = [numCutReasons]string{"slow_consumer", "rate", "size", "utf8", "read_only", "api", "unavailable"}

// hubStats are the hub's counters outside the fan-out.
type hubStats struct {
	received      [2]atomic.Uint64 // data messages from clients, by type
	receivedBytes atomic.Uint64    // their payload bytes
	opened        [2]atomic.Uint64 // connections that joined, by protocol
	open          [2]atomic.Int64  // connections in a room now, by protocol
	cut           [numCutReasons]atomic.Uint64
	pushed        [2]atomic.Uint64 // messages pushed to one connection, by type
	sentBytes     atomic.Uint64    // welcome, history and pushed frames' bytes
}

// shardStats are one shard's fan-out counters: only its goroutine adds to
// them, once per room per batch.
type shardStats struct {
	_         [64]byte         // off the cache line of the inbox lock, which publishers take
	delivered [2]atomic.Uint64 // messages queued or written for a member, by type
	sentBytes atomic.Uint64    // bytes of the frames queued or written
}

// deliveries sums the messages delivered to members by type, and the
// bytes of every data frame sent to them: the fan-out's, the welcome's and
// history's, and the API's pushes.
func (h *hub) deliveries() (delivered [2]uint64, sentBytes uint64) {
	for _, s := range h.shards {
		for i := range delivered {
			delivered[i] += s.stats.delivered[i].Load()
		}
		sentBytes += s.stats.sentBytes.Load()
	}
	for i := range delivered {
		delivered[i] += h.stats.pushed[i].Load()
	}
	return delivered, sentBytes + h.stats.sentBytes.Load()
}

// roomStat is one room's state, for metrics and the API.
type roomStat struct {
	name         string
	clients      int
	seq          uint64
	epoch        string // the numbering seq belongs to
	history      int    // messages kept for late joiners
	historyBytes int    // and their data bytes
}

// roomStats returns the state of every room the hub knows, in no order.
func (h *hub) roomStats() []roomStat {
	h.mu.Lock()
	rooms := make([]*room, 0, len(h.rooms))
	for _, r := range h.rooms {
		rooms = append(rooms, r)
	}
	h.mu.Unlock()
	stats := make([]roomStat, 0, len(rooms))
	for _, r := range rooms {
		r.mu.Lock()
		if !r.forgotten {
			stats = append(stats, roomStat{name: r.name, clients: r.clients(), seq: r.seq, epoch: r.epoch, history: len(r.history), historyBytes: r.historyBytes})
		}
		r.mu.Unlock()
	}
	return stats
}

// roomView returns a room's state, its online list and a copy of its
// history, without creating the room: a room the hub does not know is
// empty.
func (h *hub) roomView(name string) (roomStat, []onlineUser, []*chatMessage) {
	h.mu.Lock()
	r := h.rooms[name]
	h.mu.Unlock()
	if r == nil {
		return roomStat{name: name, epoch: h.epoch}, []onlineUser{}, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.forgotten {
		return roomStat{name: name, epoch: h.epoch}, []onlineUser{}, nil
	}
	st := roomStat{name: name, clients: r.clients(), seq: r.seq, epoch: r.epoch, history: len(r.history), historyBytes: r.historyBytes}
	return st, r.online(), slices.Clone(r.history)
}
