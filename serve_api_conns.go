package main

import (
	"cmp"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// The API's connections, after Swoole's connection API: list this
// instance's connections, push to one, close one with a code. With a
// backplane the room endpoints span instances; these act only on the
// connections of the instance that answers.

// maxCloseReason is the longest close reason, in bytes: a close frame's
// payload is a control frame's, the 2-byte code and the reason.
const maxCloseReason = maxControlPayload - 2

// connectionInfo is one connection in GET /api/connections.
type connectionInfo struct {
	ID          uint64    `json:"id"`
	Name        string    `json:"name"`
	Room        string    `json:"room"`
	Protocol    string    `json:"protocol"` // "raw" or "json"
	Role        string    `json:"role"`     // "rw" or "ro"
	Remote      string    `json:"remote"`
	Since       time.Time `json:"since"`
	MessagesIn  uint64    `json:"messages_in"`  // received from it
	MessagesOut uint64    `json:"messages_out"` // queued for it or written
	QueuedBytes int       `json:"queued_bytes"` // waiting in its send queue
}

// infoOf describes c.
func infoOf(c *member) connectionInfo {
	queued, _ := c.conn.queueState()
	return connectionInfo{ID: c.conn.id, Name: c.name, Room: c.room, Protocol: protoNames[c.protocol()], Role: c.role,
		Remote: c.conn.remote, Since: c.joined, MessagesIn: c.in.Load(), MessagesOut: c.messagesOut(), QueuedBytes: queued}
}

// listConnections is GET /api/connections[?room=ROOM]: this instance's
// connections by id.
func (a *api) listConnections(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if herr := noUnknownParams(q, "room"); herr != nil {
		writeHTTPError(w, herr)
		return
	}
	room, byRoom := q.Get("room"), q.Has("room")
	list := []connectionInfo{}
	for _, c := range a.hub.localMembers() {
		if !byRoom || c.room == room {
			list = append(list, infoOf(c))
		}
	}
	slices.SortFunc(list, func(x, y connectionInfo) int { return cmp.Compare(x.ID, y.ID) })
	writeJSON(w, http.StatusOK, struct {
		Connections []connectionInfo `json:"connections"`
	}{list})
}

// getConnection is GET /api/connections/{id}: one connection, or 404.
func (a *api) getConnection(w http.ResponseWriter, r *http.Request) {
	c, herr := a.connection(r)
	if herr != nil {
		writeHTTPError(w, herr)
		return
	}
	writeJSON(w, http.StatusOK, infoOf(c))
}

// pushResult is the answer to a push to one connection.
type pushResult struct {
	ID        string `json:"id"`
	Conn      uint64 `json:"conn"`
	Delivered int    `json:"delivered"` // 1: it is queued for the connection
}

// pushToConnection is POST /api/connections/{id}/messages: the body goes
// to that connection alone, under the same rules as a publish. A raw
// client receives it as it is; a JSON client as a message event with seq
// 0, as it is not part of the room's numbered history.
func (a *api) pushToConnection(w http.ResponseWriter, r *http.Request) {
	c, herr := a.connection(r)
	var msg apiMessage
	if herr == nil {
		msg, herr = a.readPublish(w, r, false)
	}
	if herr != nil {
		writeHTTPError(w, herr)
		return
	}
	a.once(w, r, msg.fingerprint("connection "+strconv.FormatUint(c.conn.id, 10)), func() (int, any) {
		m := &chatMessage{kind: kindMessage, id: a.hub.nextID(), room: c.room, from: msg.from, time: time.Now(), op: msg.op, data: msg.body}
		if !c.push(m) {
			return http.StatusNotFound, apiError{fmt.Sprintf("connection %d is closing", c.conn.id)}
		}
		a.metrics.apiPublishes.WithLabelValues("connection").Inc()
		a.log.Debug(fmt.Sprintf("API message %s to connection %d from %s", preview(msg.op, msg.body), c.conn.id, msg.from),
			"event", evMessage, "to", c.conn.id, "from", msg.from, "type", opName(msg.op), "length", len(msg.body))
		return http.StatusAccepted, pushResult{ID: m.id, Conn: c.conn.id, Delivered: 1}
	})
}

// closeResult is the answer to DELETE /api/connections/{id}.
type closeResult struct {
	Conn   uint64 `json:"conn"`
	Code   int    `json:"code"`
	Reason string `json:"reason"`
}

// closeConnection is DELETE /api/connections/{id}?code=CODE&reason=TEXT:
// the connection gets a close frame with that code (default 1000) and
// reason, and is closed once it answers or after closeGrace.
func (a *api) closeConnection(w http.ResponseWriter, r *http.Request) {
	c, herr := a.connection(r)
	var code int
	var reason string
	if herr == nil {
		code, reason, herr = closeParams(r.URL.Query())
	}
	if herr != nil {
		writeHTTPError(w, herr)
		return
	}
	if _, closing := c.conn.queueState(); closing {
		writeError(w, http.StatusNotFound, "connection %d is already closing", c.conn.id)
		return
	}
	c.cut.CompareAndSwap(0, cutAPI+1)
	c.conn.log().Info(fmt.Sprintf("Connection %d (%s) is closed through the API (%d %s)", c.conn.id, c.name, code, reason),
		"event", evClose, "code", code, "reason", reason)
	c.conn.closeWith(code, reason, closeGrace)
	writeJSON(w, http.StatusAccepted, closeResult{Conn: c.conn.id, Code: code, Reason: reason})
}

// closeParams reads ?code= and ?reason= of a close: a code an application
// may send (1000, or 3000-4999), and a reason that fits in a close frame.
func closeParams(q url.Values) (int, string, *httpError) {
	if herr := noUnknownParams(q, "code", "reason"); herr != nil {
		return 0, "", herr
	}
	code := websocket.CloseNormalClosure
	if q.Has("code") {
		n, err := strconv.Atoi(q.Get("code"))
		if err != nil || (n != websocket.CloseNormalClosure && (n < 3000 || n > 4999)) {
			return 0, "", &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf("invalid close code %q: want 1000 or 3000-4999", q.Get("code"))}
		}
		code = n
	}
	reason := q.Get("reason")
	if len(reason) > maxCloseReason || !utf8.ValidString(reason) {
		return 0, "", &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf("invalid close reason: at most %d bytes of UTF-8", maxCloseReason)}
	}
	return code, reason, nil
}

// connection is the {id} of the path: a connection of this instance.
func (a *api) connection(r *http.Request) (*member, *httpError) {
	id, herr := connParam(r.PathValue("id"), "connection id")
	if herr != nil {
		return nil, herr
	}
	c := a.hub.member(id)
	if c == nil {
		return nil, &httpError{status: http.StatusNotFound, msg: fmt.Sprintf("no connection %d on this instance", id)}
	}
	return c, nil
}
