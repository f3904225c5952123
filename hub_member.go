package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"
)

// Roles a member may have.
const (
	roleReadWrite = "rw" // send and receive
	roleReadOnly  = "ro" // receive only
)

// floodFactor: a member whose dropped messages in a row exceed this many
// seconds' worth of --rate is closed with 1008.
const floodFactor = 5

// member is one chat connection: its identity, room and permissions. Its
// session methods run on the connection's read goroutine.
type member struct {
	hub  *hub
	conn *wsConn
	room string
	name string // from the users file, ?name= or guest-ID
	role string // roleReadWrite or roleReadOnly
	json bool   // speaks chatProtocol

	shard   *shard
	joinOrd uint64       // the room's order when the client joined
	resume  *resumePoint // ?since= and ?epoch=; nil on a first join
	file    *fileMeta    // announced for the next binary message; nil if none
	// out plus shared[frameIndex()] is the number of messages queued for
	// it: shared counts those of the fan-out's shared buffers, out the
	// others, less the shared ones it did not get. Guarded by shard.memMu.
	out    uint64
	shared *[4]uint64

	joined time.Time     // when it joined its room
	in     atomic.Uint64 // messages received from it
	cut    atomic.Int32  // why the server cut it: a cut reason + 1; 0 if it did not

	limiter *rate.Limiter // nil without --rate
	dropped int           // messages dropped in a row by the limiter

	warnedReadOnly bool // the read-only warning was logged
}

func (c *member) open(conn *wsConn) {
	c.conn = conn
	c.json = conn.subprotocol == chatProtocol
	if c.name == "" {
		c.name = "guest-" + strconv.FormatUint(conn.id, 10)
	}
	c.joined = time.Now()
	c.hub.stats.opened[c.protocol()].Add(1)
	c.hub.stats.open[c.protocol()].Add(1)
	conn.log().Info(fmt.Sprintf("New connection! (%d) %s from %s room=%s", conn.id, c.name, conn.remote, c.room),
		"event", evOpen, "name", c.name, "room", c.room, "role", c.role, "json", c.json)
	if err := c.hub.join(c); err != nil {
		conn.log().Warn(fmt.Sprintf("Connection %d (%s) could not join room %s: %v; closing it (1013)", conn.id, c.name, c.room, err), "event", evWarn)
		c.cut.CompareAndSwap(0, cutUnavailable+1)
		conn.closeWith(websocket.CloseTryAgainLater, "backplane unavailable", closeGrace)
	}
}

// welcome queues the welcome and the room's history, or the messages a
// resuming client missed. It is called by the hub with the room locked, so
// nothing can come between them and the live messages. These frames are not
// held to --send-queue: they are what the client asked for by joining.
func (c *member) welcome(history []*chatMessage, online []onlineUser, epoch string, recovered bool) {
	if c.json {
		e := welcomeEvent{Event: "welcome", You: onlineUser{Conn: c.conn.id, Name: c.name}, Role: c.role,
			Room: c.room, Epoch: epoch, MaxMessageSize: c.hub.cfg.maxMessageSize,
			Online: online, History: make([]messageEvent, len(history)), Welcome: c.hub.cfg.welcome}
		if c.resume != nil {
			e.Recovered = &recovered
		}
		for i, m := range history {
			e.History[i] = m.wire()
		}
		b, _ := json.Marshal(e) // plain structs cannot fail
		c.pushCounted(encodeFrame(websocket.TextMessage, b, c.conn.deflate))
		return
	}
	if c.hub.cfg.welcome != "" {
		c.pushCounted(encodeFrame(websocket.TextMessage, []byte(c.hub.cfg.welcome), c.conn.deflate))
	}
	for _, m := range history {
		c.pushCounted(m.frameFor(c))
	}
}

// pushCounted pushes a frame of the welcome and counts it. The member is
// not in a shard yet, so its count of messages out is still its own.
func (c *member) pushCounted(frame []byte) {
	c.conn.push(frame)
	c.out++
	c.hub.stats.sentBytes.Add(uint64(len(frame)))
}

func (c *member) message(conn *wsConn, op int, data []byte) {
	c.in.Add(1)
	c.hub.stats.received[typeIndex(op)].Add(1)
	c.hub.stats.receivedBytes.Add(uint64(len(data)))
	if c.json && op == websocket.TextMessage {
		if meta, ok, err := parseFileAnnouncement(data); ok {
			c.announce(meta, err)
			return
		}
	}
	// An announcement holds for the very next message only.
	file := c.file
	c.file = nil
	if c.limiter != nil && !c.limiter.Allow() {
		c.dropped++
		if c.dropped == 1 {
			conn.log().Warn(fmt.Sprintf("Connection %d (%s) is over --rate %g/s: dropping its messages", conn.id, c.name, c.hub.cfg.rate), "event", evWarn)
		}
		if float64(c.dropped) > floodFactor*max(c.hub.cfg.rate, 1) {
			conn.log().Warn(fmt.Sprintf("Connection %d (%s) keeps flooding: closing it (1008)", conn.id, c.name), "event", evWarn)
			c.cut.CompareAndSwap(0, cutRate+1)
			conn.closeWith(websocket.ClosePolicyViolation, "rate limit exceeded", closeGrace)
			return
		}
		if c.json {
			c.sendError("rate-limited", fmt.Sprintf("over %g messages per second: message dropped", c.hub.cfg.rate))
		}
		return
	}
	if c.role == roleReadOnly {
		if !c.warnedReadOnly {
			c.warnedReadOnly = true
			conn.log().Warn(fmt.Sprintf("Connection %d (%s) is read-only: its messages are dropped", conn.id, c.name), "event", evWarn)
		}
		if c.json {
			c.sendError("read-only", "you have read-only access: your messages are not relayed")
			return
		}
		c.cut.CompareAndSwap(0, cutReadOnly+1)
		conn.closeWith(websocket.ClosePolicyViolation, "read-only", closeGrace)
		return
	}
	c.dropped = 0
	if conn.verbose() {
		others := c.hub.room(c.room).count.Load() - 1
		if c.hub.cfg.includeSelf {
			others++
		}
		conn.log().Debug(fmt.Sprintf("Connection %d sending message %s to %d other connection%s", conn.id, preview(op, data), others, plural(others)),
			"event", evMessage, "type", opName(op), "length", len(data))
	}
	m := &chatMessage{kind: kindMessage, room: c.room, from: c.name, fromConn: conn.id, sender: c,
		time: time.Now(), op: op, data: bytes.Clone(data)}
	if file != nil && op == websocket.BinaryMessage {
		m.name, m.mime = file.name, file.mime
	}
	c.hub.broker.send(m)
}

// refused tells c that its message was not relayed: a JSON client gets an
// error event, a raw client — which has no other way to learn it — is
// closed 1013 (try again later) while the backplane is down. A raw
// client's message that --store could not write is only logged, by the hub.
func (c *member) refused(conn *wsConn, err error) {
	if c.json {
		code := "unavailable"
		if errors.Is(err, errNotStored) {
			code = "not-stored"
		}
		c.sendError(code, err.Error())
		return
	}
	if backplaneUnavailable(err) {
		c.cut.CompareAndSwap(0, cutUnavailable+1)
		conn.closeWith(websocket.CloseTryAgainLater, "backplane unavailable", closeGrace)
	}
}

// push queues m for c alone and counts it; it reports false if c is
// closing. m is framed for c's protocol only, so it is built here rather
// than through frameFor's shared frames.
func (c *member) push(m *chatMessage) bool {
	frame := encodeFrame(m.op, m.data, c.conn.deflate)
	if c.json {
		b, _ := json.Marshal(m.wire()) // plain structs cannot fail
		frame = encodeFrame(websocket.TextMessage, b, c.conn.deflate)
	}
	if !c.conn.enqueue(frame) {
		return false
	}
	c.conn.flushAsync()
	c.addOut(1)
	c.hub.stats.pushed[typeIndex(m.op)].Add(1)
	c.hub.stats.sentBytes.Add(uint64(len(frame)))
	return true
}

// protocol is the counter index of c's protocol: protoRaw or protoJSON.
func (c *member) protocol() int {
	if c.json {
		return protoJSON
	}
	return protoRaw
}

// frameIndex says which of a message's frames c receives: raw or JSON,
// plain or compressed.
func (c *member) frameIndex() int {
	i := 0
	if c.json {
		i = 2
	}
	if c.conn.deflate {
		i++
	}
	return i
}

// sendError sends a JSON client an error event.
func (c *member) sendError(code, msg string) {
	b, _ := json.Marshal(errorEvent{Event: "error", Code: code, Message: msg})
	// Queued, not written here: the caller may be the broker's publish
	// loop, which must not wait on one client's socket.
	if c.conn.enqueue(encodeFrame(websocket.TextMessage, b, c.conn.deflate)) {
		c.conn.flushAsync()
		c.addOut(1)
	}
}

// addOut counts n messages sent to c outside the fan-out.
func (c *member) addOut(n uint64) {
	c.shard.memMu.Lock()
	c.out += n
	c.shard.memMu.Unlock()
}

// messagesOut is the number of messages queued for c so far.
func (c *member) messagesOut() uint64 {
	c.shard.memMu.Lock()
	defer c.shard.memMu.Unlock()
	if c.shared == nil {
		return c.out
	}
	return c.out + c.shared[c.frameIndex()]
}

func (c *member) close(conn *wsConn, _ int, _ string) {
	c.hub.stats.open[c.protocol()].Add(-1)
	if reason, ok := c.cutReason(conn.ourCloseCode()); ok {
		c.hub.stats.cut[reason].Add(1)
	}
	if c.shard != nil { // it joined its room
		c.hub.leave(c)
	}
}

// cutReason says why the server cut c, given the code of the close frame
// the server sent it (0 if none), and reports false if it did not cut it.
// The hub and the API record their own reasons; the server engine's cuts
// are told apart by their codes, which nothing else sends.
func (c *member) cutReason(ourCode int) (int, bool) {
	if r := c.cut.Load(); r > 0 {
		return int(r - 1), true
	}
	switch ourCode {
	case websocket.ClosePolicyViolation:
		return cutSlowConsumer, true
	case websocket.CloseMessageTooBig:
		return cutSize, true
	case websocket.CloseInvalidFramePayloadData:
		return cutUTF8, true
	}
	return 0, false
}
