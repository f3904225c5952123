package main

import (
	"sync"
	"sync/atomic"
)

// room is one room's order, history and membership.
type room struct {
	name  string
	count atomic.Int64 // members, readable without the lock

	mu        sync.Mutex
	forgotten bool   // dropped from the hub; lockRoom looks again
	seq       uint64 // number of the last message
	history   []*chatMessage
	// historyBytes is the data size of the history.
	historyBytes int
	members      map[*member]struct{}
}

// remember appends m to the history, keeping the last n messages and, of
// those, no more than maxBytes of data (the newest message always): every
// joiner gets a copy of the history, so its size must be bounded like a
// client's send queue.
func (r *room) remember(m *chatMessage, n, maxBytes int) {
	if n <= 0 {
		return
	}
	r.history = append(r.history, m)
	r.historyBytes += len(m.data)
	drop := 0
	for len(r.history)-drop > n || (r.historyBytes > maxBytes && len(r.history)-drop > 1) {
		r.historyBytes -= len(r.history[drop].data)
		drop++
	}
	if drop > 0 {
		// Shift rather than reslice, so the array does not grow forever.
		k := copy(r.history, r.history[drop:])
		clear(r.history[k:])
		r.history = r.history[:k]
	}
}

// online lists the members. The caller holds r.mu.
func (r *room) online() []onlineUser {
	list := make([]onlineUser, 0, len(r.members))
	for c := range r.members {
		list = append(list, onlineUser{Conn: c.conn.id, Name: c.name})
	}
	return list
}
