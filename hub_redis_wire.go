package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// redisHeader is an event's fields other than its data, as it crosses
// Redis: plain values, the sender named by its connection id. Time is in
// milliseconds, the precision Redis's Lua keeps for the leaves it makes.
type redisHeader struct {
	Kind    int    `json:"k"`
	ID      string `json:"i,omitempty"`
	Room    string `json:"r"`
	From    string `json:"f"`
	Conn    uint64 `json:"c,omitempty"`
	Exclude uint64 `json:"x,omitempty"`
	Time    int64  `json:"t"`
	Op      int    `json:"o,omitempty"`
	Name    string `json:"n,omitempty"`
	Mime    string `json:"m,omitempty"`
}

// encodeRedisEvent is m as the scripts take it: "HEADER\nDATA". They put
// "POS SEQ EPOCH " in front.
func encodeRedisEvent(m *chatMessage) string {
	h := redisHeader{Kind: m.kind, ID: m.id, Room: m.room, From: m.from, Conn: m.fromConn, Exclude: m.exclude,
		Time: m.time.UnixMilli(), Op: m.op, Name: m.name, Mime: m.mime}
	b, _ := json.Marshal(h) // strings and numbers cannot fail
	var sb strings.Builder
	sb.Grow(len(b) + 1 + len(m.data))
	sb.Write(b)
	sb.WriteByte('\n')
	sb.Write(m.data)
	return sb.String()
}

// errBadEvent is what a malformed published event is: never expected, as
// only wsx's scripts publish on its channels, but nothing is trusted.
var errBadEvent = errors.New("malformed event")

// decodeRedisEvent parses "POS SEQ EPOCH HEADER\nDATA".
func decodeRedisEvent(s string) (*chatMessage, error) {
	fields := strings.SplitN(s, " ", 4)
	if len(fields) != 4 {
		return nil, errBadEvent
	}
	pos, err1 := strconv.ParseUint(fields[0], 10, 64)
	seq, err2 := strconv.ParseUint(fields[1], 10, 64)
	header, data, ok := strings.Cut(fields[3], "\n")
	if err1 != nil || err2 != nil || !ok {
		return nil, errBadEvent
	}
	var h redisHeader
	if err := json.Unmarshal([]byte(header), &h); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadEvent, err)
	}
	if h.Kind < kindMessage || h.Kind > kindLeave || h.Room == "" || (h.Kind == kindMessage && seq == 0) {
		return nil, errBadEvent
	}
	m := &chatMessage{kind: h.Kind, id: h.ID, seq: seq, pos: pos, epoch: fields[2], room: h.Room, from: h.From,
		fromConn: h.Conn, exclude: h.Exclude, time: time.UnixMilli(h.Time), op: h.Op, name: h.Name, mime: h.Mime}
	if h.Kind == kindMessage {
		m.data = []byte(data)
	}
	return m, nil
}
