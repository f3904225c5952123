package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// chatProtocol is the subprotocol of JSON clients: they receive events as
// JSON text messages (README: "wsx serve protocol").
const chatProtocol = "wsx.chat.v1"

// chatMessage is one relayed event. It does not change once delivered,
// except for its frames, each encoded at most once, when the first
// receiver that needs it comes.
type chatMessage struct {
	kind     int
	id       string // unique message id (messages only)
	seq      uint64 // number in the room, from 1 (messages only)
	ord      uint64 // place among all events of the hub, for joins
	pos      uint64 // place among the room's events, with a shared broker
	room     string
	from     string // sender's name; "server" for --stdin, "api" or ?from= for the API
	fromConn uint64 // sender's connection id; 0 for the server and the API
	exclude  uint64 // connection the API asked to skip (?exclude=); 0 for none
	// sender is the local member the message skips: the member that sent
	// it (unless --include-self), or the one on connection exclude; nil if
	// none.
	sender *member
	time   time.Time // when the server received it
	op     int       // websocket.TextMessage or BinaryMessage
	data   []byte
	epoch  string // the room's numbering that seq belongs to (messages only)
	// name and mime describe a file a JSON client announced before sending
	// it as this binary message; empty if none.
	name, mime string

	frames [4]lazyFrame // indexed by client.frameIndex
}

// lazyFrame is a frame encoded on first use.
type lazyFrame struct {
	once sync.Once
	b    []byte
}

// frameFor returns the frame that carries m to c, or nil if c gets
// nothing for it (a raw client and a join without --notices).
func (m *chatMessage) frameFor(c *member) []byte {
	f := &m.frames[c.frameIndex()]
	f.once.Do(func() { f.b = m.encode(c.json, c.conn.deflate, c.hub.cfg.notices) })
	return f.b
}

// encode builds m's frame for a JSON or raw client.
func (m *chatMessage) encode(asJSON, deflate, notices bool) []byte {
	switch {
	case asJSON:
		return encodeFrame(websocket.TextMessage, m.eventJSON(), deflate)
	case m.kind == kindMessage:
		return encodeFrame(m.op, m.data, deflate)
	case notices && m.kind == kindJoin:
		return encodeFrame(websocket.TextMessage, []byte(m.from+" joined"), deflate)
	case notices && m.kind == kindLeave:
		return encodeFrame(websocket.TextMessage, []byte(m.from+" left"), deflate)
	}
	return nil
}

// eventJSON is m as the JSON event clients of chatProtocol receive.
func (m *chatMessage) eventJSON() []byte {
	var v any
	switch m.kind {
	case kindMessage:
		v = m.wire()
	case kindJoin:
		v = noticeEvent{Event: "join", Room: m.room, Conn: m.fromConn, Name: m.from, Time: m.time}
	default:
		v = noticeEvent{Event: "leave", Room: m.room, Conn: m.fromConn, Name: m.from, Time: m.time}
	}
	b, _ := json.Marshal(v) // plain structs of strings and numbers cannot fail
	return b
}

// wire is m as a message event, also the line format of --store.
func (m *chatMessage) wire() messageEvent {
	e := messageEvent{Event: "message", ID: m.id, Seq: m.seq, Room: m.room, From: m.from, Conn: m.fromConn, Time: m.time,
		Type: "text", Data: string(m.data), Name: m.name, Mime: m.mime}
	if m.op == websocket.BinaryMessage {
		e.Type, e.Data = "binary", base64.StdEncoding.EncodeToString(m.data)
	}
	return e
}

// messageFromWire turns a stored message event back into a message.
func messageFromWire(e messageEvent) (*chatMessage, error) {
	m := &chatMessage{kind: kindMessage, id: e.ID, seq: e.Seq, room: e.Room, from: e.From, fromConn: e.Conn, time: e.Time, name: e.Name, mime: e.Mime}
	switch e.Type {
	case "text":
		m.op, m.data = websocket.TextMessage, []byte(e.Data)
	case "binary":
		data, err := base64.StdEncoding.DecodeString(e.Data)
		if err != nil {
			return nil, fmt.Errorf("binary data: %w", err)
		}
		m.op, m.data = websocket.BinaryMessage, data
	default:
		return nil, fmt.Errorf("unknown type %q", e.Type)
	}
	if e.Event != "message" || e.Room == "" || e.Seq == 0 {
		return nil, fmt.Errorf("not a stored message")
	}
	return m, nil
}

// messageEvent is the JSON of a relayed message.
type messageEvent struct {
	Event string    `json:"event"` // "message"
	ID    string    `json:"id"`
	Seq   uint64    `json:"seq"`
	Room  string    `json:"room"`
	From  string    `json:"from"`
	Conn  uint64    `json:"conn"` // sender's connection id; 0 for the server
	Time  time.Time `json:"time"`
	Type  string    `json:"type"`           // "text" or "binary"
	Data  string    `json:"data"`           // the text, or base64 of the binary
	Name  string    `json:"name,omitempty"` // a file's name, as its sender announced it
	Mime  string    `json:"mime,omitempty"` // a file's type/subtype, as its sender announced it
}

// noticeEvent is the JSON of a join or leave.
type noticeEvent struct {
	Event string    `json:"event"` // "join" or "leave"
	Room  string    `json:"room"`
	Conn  uint64    `json:"conn"`
	Name  string    `json:"name"`
	Time  time.Time `json:"time"`
}

// welcomeEvent is the first event a JSON client receives.
type welcomeEvent struct {
	Event          string         `json:"event"` // "welcome"
	You            onlineUser     `json:"you"`
	Role           string         `json:"role"` // "rw" or "ro"
	Room           string         `json:"room"`
	Epoch          string         `json:"epoch"`               // names the room's numbering (seq)
	Recovered      *bool          `json:"recovered,omitempty"` // with ?since=: whether history is exactly the messages missed
	MaxMessageSize int64          `json:"max_message_size"`    // --max-message-size in bytes
	Online         []onlineUser   `json:"online"`
	History        []messageEvent `json:"history"`
	Welcome        string         `json:"welcome,omitempty"` // --welcome
}

// onlineUser is one member of a room.
type onlineUser struct {
	Conn uint64 `json:"conn"`
	Name string `json:"name"`
}

// errorEvent tells a JSON client that something it sent was refused.
type errorEvent struct {
	Event   string `json:"event"` // "error"
	Code    string `json:"code"`  // "read-only", "rate-limited" or "bad-request"
	Message string `json:"message"`
}
