package main

// The hub's side of a shared broker (--redis): its rooms are copies of the
// broker's, kept current by the events the broker sends in each room's
// order. A copy is made when the first member of this process joins and
// dropped when the last leaves (the broker's follow and unfollow). Every
// event carries pos, the room's event number: an event that does not come
// right after the last one means some were missed, and the copy is synced
// again from a snapshot.

// maxPending bounds the events a room holds while it is synced: past it
// they are dropped, and the next sync finds the gap and syncs again.
const maxPending = 10_000

// awaitRoom makes name's copy hold the events that arrive until syncRoom.
func (h *hub) awaitRoom(name string) {
	r := h.lockRoom(name)
	r.synced = false
	r.mu.Unlock()
}

// syncRoom replaces name's copy with snap, then applies the events that
// came in the meantime. Members already in the room get the messages they
// missed (those the history still holds), so that a lost connection to the
// broker loses nothing it kept. It reports false if the events held show a
// gap: the room must be synced again.
func (h *hub) syncRoom(name string, snap roomSnapshot) bool {
	r := h.lockRoom(name)
	defer r.mu.Unlock()
	if r.presence != nil && r.epoch == snap.epoch && len(r.members) > 0 {
		for _, m := range snap.history {
			if m.seq > r.seq {
				h.applyLocked(r, m)
			}
		}
	}
	r.epoch, r.seq, r.pos = snap.epoch, snap.seq, snap.pos
	clear(r.history)
	r.history, r.historyBytes = r.history[:0], 0
	for _, m := range snap.history {
		r.remember(m, h.cfg.history, h.cfg.historyBytes)
	}
	r.presence = make(map[uint64]string, len(snap.online))
	for _, u := range snap.online {
		r.presence[u.Conn] = u.Name
	}
	pending := r.pending
	r.pending, r.synced = nil, true
	for _, m := range pending {
		if !h.nextLocked(r, m) {
			return false
		}
	}
	return true
}

// deliverRemote applies an event from the broker to its room's copy and
// fans it out. It reports true if the event shows that the copy missed
// some: the room must be synced again.
func (h *hub) deliverRemote(m *chatMessage) (resync bool) {
	h.mu.Lock()
	r := h.rooms[m.room]
	h.mu.Unlock()
	if r == nil {
		return false // a room no member of this process is in
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.forgotten {
		return false
	}
	if !r.synced {
		if len(r.pending) < maxPending {
			r.pending = append(r.pending, m)
		}
		return false
	}
	return !h.nextLocked(r, m)
}

// nextLocked applies m if it is the room's next event, ignores it if it is
// one already applied, and otherwise marks the copy out of sync (holding
// m) and returns false. The caller holds r.mu.
func (h *hub) nextLocked(r *room, m *chatMessage) bool {
	switch {
	case m.epoch == r.epoch && m.pos <= r.pos:
		return true
	case m.epoch == r.epoch && m.pos == r.pos+1:
		h.applyLocked(r, m)
		return true
	}
	r.synced = false
	r.pending = append(r.pending[:0], m)
	return false
}

// applyLocked makes m the room's last event and queues it on every shard.
// The sender, and a connection the message excluded, are named by id: the
// member with that id, if this process has it, is the one m skips. The
// caller holds r.mu.
func (h *hub) applyLocked(r *room, m *chatMessage) {
	r.pos = max(r.pos, m.pos)
	for _, id := range [2]uint64{m.fromConn, m.exclude} {
		if c := h.member(id); id != 0 && c != nil && c.room == r.name {
			m.sender = c
		}
	}
	switch m.kind {
	case kindMessage:
		r.seq = max(r.seq, m.seq)
		r.remember(m, h.cfg.history, h.cfg.historyBytes)
	case kindJoin:
		r.presence[m.fromConn] = m.from
	case kindLeave:
		delete(r.presence, m.fromConn)
	}
	m.ord = h.ord.Add(1)
	for _, s := range h.shards {
		s.push(m)
	}
}

// dropRoom forgets name's copy: no member of this process is in it any
// more, and the broker no longer sends its events.
func (h *hub) dropRoom(name string) {
	r := h.lockRoom(name)
	defer r.mu.Unlock()
	r.forgotten = true
	h.mu.Lock()
	if h.rooms[name] == r {
		delete(h.rooms, name)
	}
	h.mu.Unlock()
}

// snapshot is the local broker's view of a room: the hub's own state.
func (h *hub) snapshot(name string) roomSnapshot {
	st, online, history := h.roomView(name)
	return roomSnapshot{epoch: st.epoch, seq: st.seq, history: history, online: online}
}

// view returns a room's state, online list and history for the API: the
// hub's copy if it follows the room, or else the broker's.
func (h *hub) view(name string) (roomStat, []onlineUser, []*chatMessage, error) {
	if h.remote && !h.follows(name) {
		snap, err := h.broker.view(name)
		if err != nil {
			return roomStat{}, nil, nil, err
		}
		st := roomStat{name: name, clients: len(snap.online), seq: snap.seq, epoch: snap.epoch, history: len(snap.history)}
		for _, m := range snap.history {
			st.historyBytes += len(m.data)
		}
		return st, snap.online, snap.history, nil
	}
	st, online, history := h.roomView(name)
	return st, online, history, nil
}

// follows reports whether the hub has a synced copy of the room.
func (h *hub) follows(name string) bool {
	h.mu.Lock()
	r := h.rooms[name]
	h.mu.Unlock()
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.forgotten && r.synced
}
