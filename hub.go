package main

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The hub relays messages between the clients of each room.
//
// A message goes from a client's read goroutine to the broker, which hands
// it — and every message of other wsx processes, once a backplane exists —
// to hub.deliver. deliver numbers it under the room's lock, records it in
// the history and the store, and appends it to the inbox of every shard.
// Each shard is one goroutine owning a slice of the room's members: it
// takes its whole inbox at once, appends the message's frame (encoded once
// per protocol) to each member's write queue, then starts one write per
// member for everything queued. Fan-out is thus spread over the cores, a
// delivery costs an append rather than a channel send and a wake-up, and a
// busy shard naturally batches several messages into one socket write.
//
// Lock order: a goroutine that holds one of these locks may take only those
// below it, never one above.
//
//	room.mu        a room's order, history and members (hub_room.go)
//	hub.mu         the map of rooms; held only to look up, add or drop one
//	hub.connMu     the local members by connection id: a leaf
//	store.mu       the --store file, appended to under room.mu (hub_store.go)
//	shard.memMu    a shard's members, by room, and their counts of messages out (hub_fanout.go)
//	shard.inMu     a shard's inbox
//	wsConn.mu      a connection's write queue (wsconn.go): a leaf
//
// wsServer.mu and poller.mu are leaves too, never held with any of these.
// No lock is held across a socket write: shards plan under memMu and write
// after releasing it, and a connection's writer never holds wsConn.mu while
// writing.

// Kinds of relayed events.
const (
	kindMessage = iota // a client's (or --stdin's) text or binary message
	kindJoin           // a client joined the room
	kindLeave          // a client left the room
)

// hubConfig is what the hub needs of serve's configuration.
type hubConfig struct {
	history      int     // messages kept per room for late joiners
	historyBytes int     // and at most this many bytes of them
	includeSelf  bool    // a sender receives its own messages
	notices      bool    // raw clients get text notices of joins and leaves
	welcome      string  // --welcome: sent to each new member
	rate         float64 // --rate: messages per second per member; 0 = unlimited
	// maxMessageSize is --max-message-size, told to JSON clients in the
	// welcome so that a page can refuse a larger file before sending it.
	maxMessageSize int64

	// flushInterval is the least time between two fan-outs of a shard,
	// so at most one socket write per client per interval: at high rates
	// each write carries every message of the interval.
	flushInterval time.Duration
}

// hub owns the rooms and the fan-out shards.
type hub struct {
	cfg    hubConfig
	log    *slog.Logger
	broker broker
	store  *store // nil without --store
	shards []*shard
	next   atomic.Uint32 // round-robin shard assignment
	ids    atomic.Uint64 // message ids, unique in this process
	ord    atomic.Uint64 // order of the last event delivered, across rooms
	idBase string        // makes ids unique across restarts
	epoch  string        // the numbering of rooms new in this process
	stats  hubStats
	// remote is set when the broker is shared with other processes: the
	// rooms are then copies of the broker's, made and dropped by it.
	remote bool

	mu    sync.Mutex
	rooms map[string]*room

	// connMu guards conns, the local members by connection id, for the
	// API and for resolving a publish's ?exclude=, and joining, those whose
	// join is on its way to the broker.
	connMu  sync.Mutex
	conns   map[uint64]*member
	joining map[uint64]*member
}

// newHub returns a hub with n shards and the history loaded from the store.
func newHub(cfg hubConfig, log *slog.Logger, st *store, loaded []*chatMessage, n int) *hub {
	h := &hub{cfg: cfg, log: log, store: st, rooms: make(map[string]*room), conns: make(map[uint64]*member), joining: make(map[uint64]*member),
		idBase: strconv.FormatInt(time.Now().UnixMilli(), 36) + "-", epoch: newEpoch()}
	h.broker = localBroker{h}
	for range max(n, 1) {
		h.shards = append(h.shards, &shard{h: h, wake: make(chan struct{}, 1), members: make(map[string][]*member), shared: make(map[string]*[4]uint64), roomIndex: make(map[string]int)})
	}
	for _, m := range loaded {
		r := h.room(m.room)
		r.seq = max(r.seq, m.seq)
		r.epoch = m.epoch // a stored room keeps its numbering: the last line's
		r.remember(m, cfg.history, cfg.historyBytes)
	}
	return h
}

// run runs the shards until ctx is done.
func (h *hub) run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, s := range h.shards {
		wg.Add(1)
		go func() { defer wg.Done(); s.run(ctx) }()
	}
	wg.Wait()
}

// room returns the named room, creating it.
func (h *hub) room(name string) *room {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, ok := h.rooms[name]
	if !ok {
		r = &room{name: name, epoch: h.epoch, members: make(map[*member]struct{})}
		h.rooms[name] = r
	}
	return r
}

// lockRoom returns the named room, created if need be, locked; never one
// that forget has just dropped.
func (h *hub) lockRoom(name string) *room {
	for {
		r := h.room(name)
		r.mu.Lock()
		if !r.forgotten {
			return r
		}
		r.mu.Unlock()
	}
}

// forgetIfUnusedLocked drops a room nobody is in and nobody ever wrote to,
// so that clients trying paths at random do not grow the hub forever.
// Rooms with messages stay: their numbering must go on. The caller holds
// r.mu.
func (h *hub) forgetIfUnusedLocked(r *room) {
	if h.remote || len(r.members) > 0 || r.seq > 0 {
		return
	}
	r.forgotten = true
	h.mu.Lock()
	if h.rooms[r.name] == r {
		delete(h.rooms, r.name)
	}
	h.mu.Unlock()
}

// activeRooms counts the rooms with at least one member.
func (h *hub) activeRooms() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.rooms {
		if r.count.Load() > 0 {
			n++
		}
	}
	return n
}

// publish sends a message from a local client, --stdin or the HTTP API to
// the broker, and returns its place once it is in the room's order.
func (h *hub) publish(m *chatMessage) (msgPlace, error) { return h.broker.publish(m) }

// refused tells the sender of a message sent without waiting (broker.send)
// that it was not relayed. Joins and leaves the broker could not take are
// made later by the broker, which rebuilds the online lists.
func (h *hub) refused(m *chatMessage, err error) {
	if m.kind == kindMessage && m.sender != nil {
		m.sender.refused(m.sender.conn, err)
	}
}

// nextID returns a message id unique in this process and across restarts.
func (h *hub) nextID() string { return h.idBase + strconv.FormatUint(h.ids.Add(1), 10) }

// deliver is called by the broker for every message. It gives the message
// its place in the room's order, stores it (before anyone can receive it,
// so a relayed message is always in the store), and queues it on every
// shard.
func (h *hub) deliver(m *chatMessage) (msgPlace, error) {
	r := h.lockRoom(m.room)
	defer r.mu.Unlock()
	defer h.forgetIfUnusedLocked(r)
	// One order for all rooms, so that a room forgotten and made again
	// cannot confuse a joiner with events still in a shard's inbox.
	m.ord = h.ord.Add(1)
	var place msgPlace
	if m.kind == kindMessage {
		if m.seq == 0 {
			r.seq++
			m.seq = r.seq
		}
		if m.id == "" {
			m.id = h.nextID()
		}
		m.epoch = r.epoch
		if h.store != nil {
			if err := h.store.append(m); err != nil {
				// Relayed means stored: a message that cannot be stored is
				// not relayed.
				h.log.Error("An error has occurred: --store: "+err.Error()+"; message dropped", "event", evError)
				r.seq--
				return msgPlace{}, errNotStored
			}
		}
		r.remember(m, h.cfg.history, h.cfg.historyBytes)
		place = msgPlace{id: m.id, seq: m.seq, epoch: m.epoch, receivers: h.receiversLocked(r, m)}
	}
	for _, s := range h.shards {
		s.push(m)
	}
	return place, nil
}

// receiversLocked counts the members of r that m goes to, first resolving
// the connection a publish excluded to the local member it skips. The
// caller holds r.mu.
func (h *hub) receiversLocked(r *room, m *chatMessage) int {
	if m.exclude != 0 && m.sender == nil {
		if c := h.member(m.exclude); c != nil && c.room == r.name {
			m.sender = c
		}
	}
	n := len(r.members)
	if _, in := r.members[m.sender]; in && (m.exclude != 0 || !h.cfg.includeSelf) {
		n--
	}
	return n
}

// member returns the local member on connection id, or nil.
func (h *hub) member(id uint64) *member {
	h.connMu.Lock()
	defer h.connMu.Unlock()
	return h.conns[id]
}

// localMembers returns every member of this process, in no order.
func (h *hub) localMembers() []*member {
	h.connMu.Lock()
	defer h.connMu.Unlock()
	list := make([]*member, 0, len(h.conns))
	for _, c := range h.conns {
		list = append(list, c)
	}
	return list
}

// presentMembers returns the members of this process that belong in the
// online lists: the local members and those joining.
func (h *hub) presentMembers() []*member {
	h.connMu.Lock()
	defer h.connMu.Unlock()
	list := make([]*member, 0, len(h.conns)+len(h.joining))
	for _, c := range h.conns {
		list = append(list, c)
	}
	for _, c := range h.joining {
		list = append(list, c)
	}
	return list
}

// join adds a client to its room: the client gets the welcome and the
// history (or, resuming, the messages it missed), then every message after
// them, none twice and none missed. It fails only when the broker cannot
// bring the room's state.
func (h *hub) join(c *member) error {
	if err := h.broker.follow(c.room); err != nil {
		return err
	}
	// The join is in the room's online list, on every process, before c
	// is welcomed: a client welcomed after c sees it. c does not get its
	// own join (its joinOrd is past it, or it is the sender). Meanwhile c
	// is joining, so that a rebuild of the online lists keeps it; a join
	// the broker cannot take now is made by such a rebuild.
	h.connMu.Lock()
	h.joining[c.conn.id] = c
	h.connMu.Unlock()
	h.publish(&chatMessage{kind: kindJoin, room: c.room, from: c.name, fromConn: c.conn.id, sender: c, time: time.Now()})
	r := h.lockRoom(c.room)
	c.joinOrd = h.ord.Load() // every event of the room so far is ≤ this
	r.members[c] = struct{}{}
	msgs, recovered := r.catchUp(c.resume)
	online := r.online()
	if h.remote && !slices.ContainsFunc(online, func(u onlineUser) bool { return u.Conn == c.conn.id }) {
		// Its own join has not come back through the broker yet.
		online = append(online, onlineUser{Conn: c.conn.id, Name: c.name})
	}
	c.welcome(msgs, online, r.epoch, recovered)
	r.count.Add(1)
	c.shard = h.shards[h.next.Add(1)%uint32(len(h.shards))]
	c.shard.add(c)
	h.connMu.Lock()
	h.conns[c.conn.id] = c
	delete(h.joining, c.conn.id)
	h.connMu.Unlock()
	r.mu.Unlock()
	return nil
}

// leave removes a client from its room.
func (h *hub) leave(c *member) {
	h.connMu.Lock()
	delete(h.conns, c.conn.id)
	h.connMu.Unlock()
	r := h.lockRoom(c.room)
	delete(r.members, c)
	r.count.Add(-1)
	c.shard.remove(c)
	h.forgetIfUnusedLocked(r)
	r.mu.Unlock()
	// A leave the broker cannot take now is made when it is back.
	h.broker.send(&chatMessage{kind: kindLeave, room: c.room, from: c.name, fromConn: c.conn.id, sender: c, time: time.Now()})
	h.broker.unfollow(c.room)
}
