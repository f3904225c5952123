package main

import (
	"crypto/rand"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// room is one room's order, history and membership.
type room struct {
	name  string
	count atomic.Int64 // members, readable without the lock

	mu        sync.Mutex
	forgotten bool   // dropped from the hub; lockRoom looks again
	seq       uint64 // number of the last message
	// epoch names the numbering seq belongs to: it changes when the
	// room's messages are lost and seq starts again from 1.
	epoch   string
	history []*chatMessage
	// historyBytes is the data size of the history.
	historyBytes int
	members      map[*member]struct{} // the members of this process

	// With a shared broker (hub_remote.go) the room is a copy of the
	// broker's: pos numbers its events (messages, joins, leaves), the
	// online list spans every process, and events that arrive while the
	// copy is not synced wait in pending.
	pos      uint64
	synced   bool
	presence map[uint64]string // by connection id: name; nil with the local broker
	pending  []*chatMessage
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

// online lists the room's clients, of every process. The caller holds r.mu.
func (r *room) online() []onlineUser {
	if r.presence != nil {
		list := make([]onlineUser, 0, len(r.presence))
		for id, name := range r.presence {
			list = append(list, onlineUser{Conn: id, Name: name})
		}
		return list
	}
	list := make([]onlineUser, 0, len(r.members))
	for c := range r.members {
		list = append(list, onlineUser{Conn: c.conn.id, Name: c.name})
	}
	return list
}

// clients counts the room's clients, of every process. The caller holds r.mu.
func (r *room) clients() int {
	if r.presence != nil {
		return len(r.presence)
	}
	return len(r.members)
}

// newEpoch names the numbering of the rooms a process starts: its start
// time in base 36 and 40 random bits, so two processes never share one.
func newEpoch() string {
	return strconv.FormatInt(time.Now().UnixMilli(), 36) + "-" + strings.ToLower(rand.Text()[:8])
}

// resumePoint is where a reconnecting client left a room: the last seq it
// saw, in the numbering named by epoch (?since= and ?epoch=).
type resumePoint struct {
	since uint64
	epoch string
}

// catchUp returns what a joiner gets of the history. Without a resume
// point, all of it. With one, if the history still holds every message
// after since in the same numbering, exactly those messages and recovered
// true; otherwise all of it and recovered false. A since past the room's
// seq cannot be of this numbering (a store restored from an older copy
// numbers new messages again from there), so it does not recover either.
// The caller holds r.mu.
func (r *room) catchUp(p *resumePoint) (msgs []*chatMessage, recovered bool) {
	if p == nil || p.epoch != r.epoch || p.since > r.seq {
		return r.history, false
	}
	want := r.seq - p.since
	if want > uint64(len(r.history)) {
		return r.history, false
	}
	tail := r.history[len(r.history)-int(want):]
	// Messages are numbered without gaps, but a store line that did not
	// load leaves one: the tail must run from since+1 to seq.
	if want > 0 && (tail[0].seq != p.since+1 || tail[len(tail)-1].seq != r.seq) {
		return r.history, false
	}
	return tail, true
}
