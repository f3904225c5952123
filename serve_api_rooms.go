package main

import (
	"cmp"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// The API's rooms: publish to a room, list the rooms, read one room's
// online list and history.

// publishResult is the answer to a publish: where the message landed.
type publishResult struct {
	ID        string `json:"id"`
	Seq       uint64 `json:"seq"`
	Epoch     string `json:"epoch"` // names the room's numbering of seq (see ?since=)
	Room      string `json:"room"`
	Delivered int    `json:"delivered"` // the room's clients it was sent to
}

// publishToRoom is POST /api/rooms/{room}/messages: the body becomes a
// message of the room, sent exactly as a client's message is, in order
// with them, into the history and the store.
func (a *api) publishToRoom(w http.ResponseWriter, r *http.Request) {
	room, herr := roomParam(r)
	var msg apiMessage
	if herr == nil {
		msg, herr = a.readPublish(w, r, true)
	}
	if herr != nil {
		writeHTTPError(w, herr)
		return
	}
	a.once(w, r, msg.fingerprint("room "+room), func() (int, any) {
		place, err := a.hub.publish(&chatMessage{kind: kindMessage, room: room, from: msg.from, exclude: msg.exclude,
			time: time.Now(), op: msg.op, data: msg.body})
		if err != nil {
			return publishErrorStatus(err), apiError{err.Error()}
		}
		a.metrics.apiPublishes.WithLabelValues("room").Inc()
		a.log.Debug(fmt.Sprintf("API message %s to room %s from %s, sent to %d connection%s", preview(msg.op, msg.body), room, msg.from, place.receivers, plural(int64(place.receivers))),
			"event", evMessage, "room", room, "from", msg.from, "type", opName(msg.op), "length", len(msg.body), "seq", place.seq)
		return http.StatusAccepted, publishResult{ID: place.id, Seq: place.seq, Epoch: place.epoch, Room: room, Delivered: place.receivers}
	})
}

// publishErrorStatus is the HTTP status of a failed publish or view: 503
// while the backplane is down, so that the caller retries later.
func publishErrorStatus(err error) int {
	if backplaneUnavailable(err) {
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// roomSummary is one room in GET /api/rooms.
type roomSummary struct {
	Room    string `json:"room"`
	Clients int    `json:"clients"`
	Seq     uint64 `json:"seq"` // the number of its last message
}

// listRooms is GET /api/rooms: every room with clients or messages, by name.
func (a *api) listRooms(w http.ResponseWriter, r *http.Request) {
	stats, err := a.hub.broker.rooms()
	if err != nil {
		writeJSON(w, publishErrorStatus(err), apiError{err.Error()})
		return
	}
	list := make([]roomSummary, 0, len(stats))
	for _, st := range stats {
		list = append(list, roomSummary{Room: st.name, Clients: st.clients, Seq: st.seq})
	}
	slices.SortFunc(list, func(x, y roomSummary) int { return strings.Compare(x.Room, y.Room) })
	writeJSON(w, http.StatusOK, struct {
		Rooms []roomSummary `json:"rooms"`
	}{list})
}

// roomDetail is GET /api/rooms/{room}.
type roomDetail struct {
	Room    string       `json:"room"`
	Clients int          `json:"clients"`
	Seq     uint64       `json:"seq"`
	Epoch   string       `json:"epoch"`   // names the numbering of seq
	History int          `json:"history"` // messages kept for late joiners
	Online  []onlineUser `json:"online"`  // by connection id
}

// getRoom is GET /api/rooms/{room}: its online list and order. A room
// nobody has used is empty, not missing: rooms exist by being named.
func (a *api) getRoom(w http.ResponseWriter, r *http.Request) {
	room, herr := roomParam(r)
	if herr != nil {
		writeHTTPError(w, herr)
		return
	}
	st, online, _, err := a.hub.view(room)
	if err != nil {
		writeJSON(w, publishErrorStatus(err), apiError{err.Error()})
		return
	}
	slices.SortFunc(online, func(x, y onlineUser) int { return cmp.Compare(x.Conn, y.Conn) })
	writeJSON(w, http.StatusOK, roomDetail{Room: room, Clients: st.clients, Seq: st.seq, Epoch: st.epoch, History: st.history, Online: online})
}

// roomHistory is GET /api/rooms/{room}/messages?since=SEQ&limit=N: the
// kept messages after SEQ (default all), the first N of them (default
// all), as message events.
func (a *api) roomHistory(w http.ResponseWriter, r *http.Request) {
	room, herr := roomParam(r)
	q := r.URL.Query()
	if herr == nil {
		herr = noUnknownParams(q, "since", "limit")
	}
	var since, limit uint64
	if herr == nil && q.Has("since") {
		since, herr = uintParam(q.Get("since"), "since", 0)
	}
	if herr == nil && q.Has("limit") {
		limit, herr = uintParam(q.Get("limit"), "limit", 1)
	}
	if herr != nil {
		writeHTTPError(w, herr)
		return
	}
	st, _, history, err := a.hub.view(room)
	if err != nil {
		writeJSON(w, publishErrorStatus(err), apiError{err.Error()})
		return
	}
	events := make([]messageEvent, 0, len(history))
	for _, m := range history {
		if m.seq > since && (limit == 0 || uint64(len(events)) < limit) {
			events = append(events, m.wire())
		}
	}
	writeJSON(w, http.StatusOK, struct {
		Room     string         `json:"room"`
		Seq      uint64         `json:"seq"`
		Epoch    string         `json:"epoch"`
		Messages []messageEvent `json:"messages"`
	}{room, st.seq, st.epoch, events})
}

// apiMessage is what a publish request asks to send.
type apiMessage struct {
	from    string // ?from=, else "api"
	exclude uint64 // ?exclude=, else 0
	op      int    // websocket.TextMessage or BinaryMessage
	body    []byte
}

// readPublish reads a publish request's query (?from=, and ?exclude= if
// allowed) and body.
func (a *api) readPublish(w http.ResponseWriter, r *http.Request, allowExclude bool) (apiMessage, *httpError) {
	q := r.URL.Query()
	known := []string{"from"}
	if allowExclude {
		known = append(known, "exclude")
	}
	var msg apiMessage
	herr := noUnknownParams(q, known...)
	if herr == nil {
		msg.from, herr = fromParam(q)
	}
	if herr == nil && q.Has("exclude") {
		msg.exclude, herr = connParam(q.Get("exclude"), "exclude")
	}
	if herr == nil {
		msg.op, msg.body, herr = a.readMessage(w, r)
	}
	return msg, herr
}

// fingerprint identifies the request to send msg to target, for
// Idempotency-Key.
func (msg apiMessage) fingerprint(target string) [sha256.Size]byte {
	return requestFingerprint(target, msg.from, msg.exclude, msg.op, msg.body)
}

// readMessage reads the body of a publish: a text/* or JSON body is a
// text message and must be valid UTF-8; any other body is binary. Bodies
// over --max-message-size are refused 413.
func (a *api) readMessage(w http.ResponseWriter, r *http.Request) (int, []byte, *httpError) {
	op := websocket.BinaryMessage
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil {
			return 0, nil, &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf("invalid Content-Type %q: %v", ct, err)}
		}
		if isTextType(mt) {
			op = websocket.TextMessage
		}
	}
	tooBig := &httpError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("the message is over --%s (%d bytes)", flagMaxMessageSize, a.maxBody)}
	if r.ContentLength > a.maxBody {
		return 0, nil, tooBig
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return 0, nil, tooBig
		}
		return 0, nil, &httpError{status: http.StatusBadRequest, msg: "reading the body: " + err.Error()}
	}
	if op == websocket.TextMessage && !utf8.Valid(body) {
		return 0, nil, &httpError{status: http.StatusBadRequest, msg: "the body is text (Content-Type " + r.Header.Get("Content-Type") + ") but not valid UTF-8; send binary data as application/octet-stream"}
	}
	return op, body, nil
}

// isTextType reports whether a media type makes a text message: text/*,
// application/json and any +json type.
func isTextType(mediaType string) bool {
	return strings.HasPrefix(mediaType, "text/") || mediaType == "application/json" || strings.HasSuffix(mediaType, "+json")
}

// roomParam is the {room} of the path: a valid room name, not a reserved one.
func roomParam(r *http.Request) (string, *httpError) {
	room := r.PathValue("room")
	switch {
	case !validRoom(room) || room != strings.Trim(room, "/"):
		// A room is joined by its path, which loses slashes at its ends.
		return "", &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf("invalid room %q", room)}
	case reservedRoom(room):
		return "", reservedRoomError(room)
	}
	return room, nil
}

// reservedRoomError refuses a room name that serve's endpoints use.
func reservedRoomError(room string) *httpError {
	if strings.HasPrefix(room, assetPrefix) {
		return &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf("invalid room %q: names starting with %s are reserved for the chat page's files", room, assetPrefix)}
	}
	return &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf("the room name %q is reserved: %s and the paths under them are the server's", room, strings.Join(reservedRooms, ", "))}
}

// fromParam is ?from=, the sender name of an API message: like a name a
// client picks, or "api" when absent.
func fromParam(q url.Values) (string, *httpError) {
	if !q.Has("from") {
		return apiName, nil
	}
	from := q.Get("from")
	if !validName.MatchString(from) {
		return "", &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf("invalid from %q: 1-32 letters, digits, '-', '_' or '.'", from)}
	}
	return from, nil
}

// connParam parses a connection id.
func connParam(s, what string) (uint64, *httpError) {
	return uintParam(s, what, 1)
}

// uintParam parses a decimal parameter of at least least.
func uintParam(s, what string, least uint64) (uint64, *httpError) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n < least {
		return 0, &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf("invalid %s %q: want a whole number of at least %d", what, s, least)}
	}
	return n, nil
}

// noUnknownParams refuses query parameters other than known ones, so a
// misspelt ?exclude= does not silently send to everyone.
func noUnknownParams(q url.Values, known ...string) *httpError {
	for k := range q {
		if !slices.Contains(known, k) {
			return &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf("unknown query parameter %q (known: %s)", k, strings.Join(known, ", "))}
		}
	}
	return nil
}
