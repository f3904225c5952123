package main

import (
	"context"
	"slices"
	"sync"
	"time"
)

// shard is one fan-out goroutine and the room members it writes to.
//
// Every member of a room gets the same frames in the same order, so a
// shard builds the frames of a batch once per protocol as one contiguous
// buffer and writes that buffer to each member that has nothing queued:
// one non-blocking write(2) per member per batch and no copy. Only members
// that are behind (something queued), that sent one of the batch's
// messages, or that joined during the batch get their frames copied into
// their own queue.
type shard struct {
	h    *hub
	wake chan struct{} // signalled when the inbox turns non-empty

	inMu  sync.Mutex
	inbox []*chatMessage

	memMu   sync.Mutex
	members map[string][]*member // by room
	// shared counts, by room and frame index, the frames written to the
	// room's members through shared buffers. A member's count of messages
	// out is its own count plus its index's shared count, so that sharing
	// a batch costs nothing per member (member.out).
	shared map[string]*[4]uint64

	// Used by run only, kept between batches to allocate nothing.
	rooms     []roomBatch
	roomIndex map[string]int // index in rooms by room name
	writes    []sharedWrite
	slow      []*member // members of a room's plan that got their own frames

	stats shardStats
}

// roomBatch is the messages of one room in a batch, in order.
type roomBatch struct {
	room string
	msgs []*chatMessage
}

// sharedWrite is one member's part of a batch: the shared buffer to write,
// or nil when its frames were queued on it instead.
type sharedWrite struct {
	c    *member
	data []byte
}

// push queues m for the shard without blocking.
func (s *shard) push(m *chatMessage) {
	s.inMu.Lock()
	s.inbox = append(s.inbox, m)
	s.inMu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default: // already signalled
	}
}

// add and remove change the shard's members; after remove returns, the
// shard queues nothing more for the client. memMu also guards the
// members' counts of messages out.
func (s *shard) add(c *member) {
	s.memMu.Lock()
	s.members[c.room] = append(s.members[c.room], c)
	counts := s.shared[c.room]
	if counts == nil {
		counts = new([4]uint64)
		s.shared[c.room] = counts
	}
	c.shared = counts
	c.out -= counts[c.frameIndex()] // wraps; only the sum c.out+shared means anything
	s.memMu.Unlock()
}

func (s *shard) remove(c *member) {
	s.memMu.Lock()
	defer s.memMu.Unlock()
	list := s.members[c.room]
	if i := slices.Index(list, c); i >= 0 {
		list[i] = list[len(list)-1]
		list[len(list)-1] = nil
		list = list[:len(list)-1]
	}
	if len(list) == 0 {
		delete(s.members, c.room)
		delete(s.shared, c.room) // its members keep the counts they point to
		return
	}
	s.members[c.room] = list
}

// run fans out until ctx is done: it takes the whole inbox, works out what
// each member gets, then writes, holding no lock while writing.
func (s *shard) run(ctx context.Context) {
	var batch []*chatMessage
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		}
		// Under load, let messages gather so each client gets several per
		// write: a write costs about 1 µs of system time whatever it
		// carries. A message after a quiet spell goes out at once.
		if wait := s.h.cfg.flushInterval - time.Since(last); wait > 0 {
			time.Sleep(wait)
		}
		last = time.Now()
		s.inMu.Lock()
		batch, s.inbox = s.inbox, batch[:0]
		s.inMu.Unlock()

		s.groupByRoom(batch)
		s.memMu.Lock()
		for _, rb := range s.rooms {
			s.planRoom(rb.msgs, s.members[rb.room], s.shared[rb.room])
		}
		s.memMu.Unlock()

		for _, w := range s.writes {
			if w.data != nil {
				w.c.conn.writeShared(w.data)
			} else {
				w.c.conn.flushAsync()
			}
		}
		clear(s.writes)
		s.writes = s.writes[:0]
		for i := range s.rooms {
			clear(s.rooms[i].msgs)
			s.rooms[i].msgs = s.rooms[i].msgs[:0]
		}
		s.rooms = s.rooms[:0]
		clear(batch)
	}
}

// groupByRoom splits a batch into its rooms, keeping each room's order. A
// client is in one room, so it then appears in one plan per batch.
func (s *shard) groupByRoom(batch []*chatMessage) {
	clear(s.roomIndex)
	for _, m := range batch {
		i, ok := s.roomIndex[m.room]
		if !ok {
			if len(s.rooms) < cap(s.rooms) {
				s.rooms = s.rooms[:len(s.rooms)+1]
				s.rooms[len(s.rooms)-1].room = m.room
			} else {
				s.rooms = append(s.rooms, roomBatch{room: m.room})
			}
			i = len(s.rooms) - 1
			s.roomIndex[m.room] = i
		}
		s.rooms[i].msgs = append(s.rooms[i].msgs, m)
	}
}

// planRoom decides what each member of a room gets from msgs: the shared
// buffer of its protocol, or, for the few that need their own sequence,
// frames queued on them one by one. It counts what they get per batch, not
// per message, and the shared buffers per protocol, not per member: only
// the few that got their own frames are counted one by one. The caller
// holds memMu.
func (s *shard) planRoom(msgs []*chatMessage, members []*member, counts *[4]uint64) {
	var shared [4][]byte // by frameIndex, built on first use
	var frames [4]uint64 // the number of frames in each shared buffer
	var built [4]bool
	var sharedTo, sentBytes uint64
	firstOrd := msgs[0].ord
	for _, c := range members {
		if c.joinOrd >= firstOrd || sentOneOf(c, msgs) {
			if s.queueEach(c, msgs) {
				s.writes = append(s.writes, sharedWrite{c: c})
			}
			s.slow = append(s.slow, c)
			continue
		}
		i := c.frameIndex()
		if !built[i] {
			shared[i], frames[i] = joinFrames(c, msgs)
			built[i] = true
		}
		if len(shared[i]) > 0 {
			s.writes = append(s.writes, sharedWrite{c: c, data: shared[i]})
			sharedTo++
			sentBytes += uint64(len(shared[i]))
		}
	}
	if counts != nil {
		for i, n := range frames {
			counts[i] += n
		}
		// The members that got their own frames did not get the shared
		// ones their index counted.
		for _, c := range s.slow {
			c.out -= frames[c.frameIndex()]
		}
	}
	clear(s.slow)
	s.slow = s.slow[:0]
	if sharedTo > 0 {
		var byType [2]uint64
		for _, m := range msgs {
			if m.kind == kindMessage {
				byType[typeIndex(m.op)]++
			}
		}
		s.count(byType, sharedTo, sentBytes)
	}
}

// count adds to the shard's counters: n members got byType messages each,
// in sentBytes bytes in all.
func (s *shard) count(byType [2]uint64, n, sentBytes uint64) {
	for i, k := range byType {
		if k > 0 {
			s.stats.delivered[i].Add(k * n)
		}
	}
	s.stats.sentBytes.Add(sentBytes)
}

// queueEach queues on c the frames of msgs it wants, and reports whether
// anything was queued.
func (s *shard) queueEach(c *member, msgs []*chatMessage) bool {
	var byType [2]uint64
	var sentBytes uint64
	for _, m := range msgs {
		if !s.h.wants(c, m) {
			continue
		}
		if f := m.frameFor(c); f != nil && c.conn.enqueue(f) {
			c.out++
			sentBytes += uint64(len(f))
			if m.kind == kindMessage {
				byType[typeIndex(m.op)]++
			}
		}
	}
	if sentBytes == 0 {
		return false
	}
	s.count(byType, 1, sentBytes)
	return true
}

// sentOneOf reports whether c sent one of msgs (or joined or left with it).
func sentOneOf(c *member, msgs []*chatMessage) bool {
	for _, m := range msgs {
		if m.sender == c {
			return true
		}
	}
	return false
}

// joinFrames returns the frames of msgs for c's protocol back to back,
// and how many there are.
func joinFrames(c *member, msgs []*chatMessage) ([]byte, uint64) {
	n, frames := 0, uint64(0)
	for _, m := range msgs {
		if f := m.frameFor(c); f != nil {
			n += len(f)
			frames++
		}
	}
	if n == 0 {
		return nil, 0
	}
	b := make([]byte, 0, n)
	for _, m := range msgs {
		b = append(b, m.frameFor(c)...)
	}
	return b, frames
}

// wants reports whether m goes to c: not what c saw in its history, and
// not its own messages unless --include-self, nor its own join or leave,
// nor a message that excluded it.
func (h *hub) wants(c *member, m *chatMessage) bool {
	if m.ord <= c.joinOrd {
		return false
	}
	if m.sender == c {
		return m.kind == kindMessage && h.cfg.includeSelf && m.exclude == 0
	}
	return true
}
