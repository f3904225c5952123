package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"
)

// chatApp admits chat clients and serves the HTTP side of wsx serve.
type chatApp struct {
	cfg     *serveConfig
	hub     *hub
	ws      *wsServer
	api     *api
	metrics *serveMetrics
}

// routes is serve's HTTP handler: WebSocket upgrades on any path join the
// path's room; plain requests get /healthz, /readyz, the API under /api/,
// /metrics, or the chat page.
func (a *chatApp) routes(ws http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.HandleFunc("GET /readyz", a.readyz)
	apiHandler := a.api.handler()
	mux.Handle("/api", apiHandler)
	mux.Handle("/api/", apiHandler)
	mux.Handle("/metrics", a.metrics.handler(a.cfg.api))
	handleAssets(mux)
	mux.Handle("/", methods{http.MethodGet: a.page})
	upgrade := a.metrics.countRefusals(ws)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if websocket.IsWebSocketUpgrade(r) {
			upgrade.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// page serves the chat page of a room, but not for a reserved room name
// such as /metrics/x.
func (a *chatApp) page(w http.ResponseWriter, r *http.Request) {
	if room := roomOf(r.URL.Path); reservedRoom(room) {
		writeHTTPError(w, reservedRoomError(room))
		return
	}
	servePage(w, r)
}

// healthz answers the server's state as JSON: "ok", or "degraded" while
// the backplane is down (the process itself is alive: 200 either way).
func (a *chatApp) healthz(w http.ResponseWriter, _ *http.Request) {
	bh := a.hub.broker.health()
	v := struct {
		Status      string `json:"status"`
		Connections int64  `json:"connections"`
		Rooms       int    `json:"rooms"`
		Broker      string `json:"broker"`              // "local" or "redis"
		Backplane   string `json:"backplane,omitempty"` // "up" or "down", with --redis
		Error       string `json:"error,omitempty"`     // why it is down
	}{Status: "ok", Connections: a.ws.active.Load(), Rooms: a.hub.activeRooms(), Broker: bh.kind}
	if bh.kind != "local" {
		v.Backplane = "up"
		if !bh.up {
			v.Status, v.Backplane, v.Error = "degraded", "down", bh.err
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// readyz answers whether the server can take clients: 503 while the
// backplane cannot deliver, so that a load balancer sends new clients to
// another process.
func (a *chatApp) readyz(w http.ResponseWriter, _ *http.Request) {
	if bh := a.hub.broker.health(); !bh.up {
		writeJSON(w, http.StatusServiceUnavailable, struct {
			Status string `json:"status"`
			Error  string `json:"error"`
		}{"unavailable", bh.err})
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Status string `json:"status"`
	}{"ready"})
}

// roomOf is the room a request path names: "/" is the lobby.
func roomOf(path string) string {
	room := strings.Trim(path, "/")
	if room == "" {
		return lobby
	}
	return room
}

// validRoom reports whether a room name is usable: non-empty printable text.
func validRoom(room string) bool {
	if room == "" || len(room) > 128 {
		return false
	}
	for _, r := range room {
		if r < ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

// admit authenticates the request and picks the client's room and name.
func (a *chatApp) admit(r *http.Request) (session, *httpError) {
	room := roomOf(r.URL.Path)
	if !validRoom(room) {
		return nil, &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf("invalid room %q", room)}
	}
	if reservedRoom(room) {
		return nil, reservedRoomError(room)
	}
	resume, herr := parseResume(r.URL.Query())
	if herr != nil {
		return nil, herr
	}
	u, herr := a.cfg.auth.authenticate(r, room)
	if herr != nil {
		return nil, herr
	}
	if bh := a.hub.broker.health(); !bh.up {
		return nil, &httpError{status: http.StatusServiceUnavailable, msg: bh.err, header: http.Header{"Retry-After": {"2"}}}
	}
	name := u.name
	if name == "" {
		if name = r.URL.Query().Get("name"); name == "" {
			name = u.basicName
		}
		if herr := a.checkChosenName(name); herr != nil {
			return nil, herr
		}
	}
	c := &member{hub: a.hub, room: room, name: name, role: u.role, resume: resume}
	if a.cfg.hub.rate > 0 {
		c.limiter = rate.NewLimiter(rate.Limit(a.cfg.hub.rate), max(1, int(a.cfg.hub.rate)))
	}
	return c, nil
}

// checkChosenName refuses a name a client picked itself (?name= or the
// Basic auth user name with the shared token) that is malformed, that
// --stdin uses, or that belongs to a user of the users file.
func (a *chatApp) checkChosenName(name string) *httpError {
	switch {
	case name == "":
		return nil
	case !validName.MatchString(name):
		return &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf("invalid name %q: 1-32 letters, digits, '-', '_' or '.'", name)}
	case name == serverName || name == apiName || a.cfg.auth.hasUser(name):
		return &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf("the name %q is reserved", name)}
	}
	return nil
}

// relayStdin sends each line of stdin to --stdin-room, from "server". The
// last line is sent even without a newline.
func (a *chatApp) relayStdin(in io.Reader) {
	br := bufio.NewReader(in)
	for {
		line, err := br.ReadBytes('\n')
		line = bytes.TrimSuffix(line, []byte("\n"))
		if len(line) > 0 || err == nil {
			op := websocket.TextMessage
			if !utf8.Valid(line) {
				a.hub.log.Warn("--stdin: a line that is not valid UTF-8 is sent as a binary message", "event", evWarn)
				op = websocket.BinaryMessage
			}
			a.hub.publish(&chatMessage{kind: kindMessage, room: a.cfg.stdinRoom, from: serverName, time: time.Now(), op: op, data: line})
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				a.hub.log.Error("An error has occurred: --stdin: "+err.Error(), "event", evError)
			}
			return
		}
	}
}
