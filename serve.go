package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"github.com/urfave/cli/v2"
	"golang.org/x/time/rate"
)

// Defaults of the serve flags.
const (
	defaultHistory       = 50
	defaultFlushInterval = 4 * time.Millisecond
	lobby                = "lobby" // the room of "/"
	serverName           = "server"

	// floodFactor: a client whose dropped messages in a row exceed this many
	// seconds' worth of --rate is closed with 1008.
	floodFactor = 5
)

// Names of the serve flags.
const (
	flagIncludeSelf = "include-self"
	flagNotices     = "notices"
	flagStdin       = "stdin"
	flagStdinRoom   = "stdin-room"
	flagToken       = "token"
	flagUsers       = "users"
	flagHistory     = "history"
	flagStore       = "store"
	flagSendQueue   = "send-queue"
	flagRate        = "rate"
	flagFlush       = "flush-interval"
)

// serveCommand is wsx serve: the broadcast chat server.
func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "broadcast chat server with rooms, history and a browser page",
		UsageText: `wsx serve [options]

   wsx serve                                  # ws://localhost:8080/, page at http://localhost:8080/
   wsx serve --include-self --history 100
   wsx serve --users users.txt --store chat.jsonl
   echo "maintenance at 5pm" | wsx serve --stdin`,
		Description: `Every message a client sends is relayed byte-exact, in the same message
type, to every other client of its room: the URL path (/ is the lobby,
/team-a is room team-a). Clients that ask for the subprotocol wsx.chat.v1
receive JSON events instead (see README). A plain GET serves the chat page;
GET /healthz answers JSON.`,
		Flags: append(append(serverFlags(), globalFlags()...),
			&cli.BoolFlag{Name: flagIncludeSelf, Usage: "relay a client's messages back to it too"},
			&cli.BoolFlag{Name: flagNotices, Usage: "send raw clients text notices of joins and leaves"},
			welcomeFlag(),
			&cli.BoolFlag{Name: flagStdin, Usage: "send each line of standard input to the clients, from \"server\""},
			&cli.StringFlag{Name: flagStdinRoom, Value: lobby, Usage: "the `ROOM` that --stdin lines go to"},
			&cli.StringFlag{Name: flagToken, EnvVars: []string{"WSX_TOKEN"}, Usage: "shared secret `TOKEN` clients must present (Bearer, Basic password or ?token=)"},
			&cli.StringFlag{Name: flagUsers, Usage: "users `FILE`: lines name:token:role[:room,room...], role rw or ro"},
			&cli.IntFlag{Name: flagHistory, Value: defaultHistory, Usage: "replay the last `N` messages of a room to each new client (0 = none)"},
			&cli.StringFlag{Name: flagStore, Usage: "append every message to this JSON-lines `FILE` and load the history from it"},
			&cli.StringFlag{Name: flagSendQueue, Value: defaultSendQueue, Usage: "bound on a client's queued outgoing bytes (`SIZE`); past it the client is closed 1008 as a slow consumer"},
			&cli.DurationFlag{Name: flagFlush, Value: defaultFlushInterval, Usage: "write to each client at most once per `INTERVAL`; messages within it share the write (0 = write each at once)"},
			&cli.Float64Flag{Name: flagRate, Usage: "most messages per second per client (`N`, with a burst of N); excess is dropped (0 = unlimited)"},
		),
		Action: func(c *cli.Context) error {
			cfg, err := readServeConfig(c)
			if err != nil {
				return err
			}
			o, err := readLogOptions(c)
			if err != nil {
				return err
			}
			return runServe(c.Context, cfg, o, c.App.Reader)
		},
	}
}

// serveConfig is wsx serve's configuration.
type serveConfig struct {
	server    serverConfig
	hub       hubConfig
	welcome   string     // sent to each new client
	stdin     bool       // relay stdin lines
	stdinRoom string     // room of the stdin lines
	auth      authConfig // who may connect, with which role
	store     string     // JSON-lines file of all messages
	rate      float64    // messages per second per client; 0 = unlimited
}

// readServeConfig reads and validates the serve flags.
func readServeConfig(c *cli.Context) (serveConfig, error) {
	server, err := readServerConfig(c)
	if err != nil {
		return serveConfig{}, err
	}
	server.subprotocols = append(server.subprotocols, chatProtocol)
	cfg := serveConfig{
		server: server,
		hub: hubConfig{
			history:       c.Int(flagHistory),
			includeSelf:   c.Bool(flagIncludeSelf),
			notices:       c.Bool(flagNotices),
			flushInterval: c.Duration(flagFlush),
		},
		welcome:   c.String(flagWelcome),
		stdin:     c.Bool(flagStdin),
		stdinRoom: c.String(flagStdinRoom),
		auth:      authConfig{token: c.String(flagToken)},
		store:     c.String(flagStore),
		rate:      c.Float64(flagRate),
	}
	if err := validText(flagWelcome, cfg.welcome); err != nil {
		return cfg, err
	}
	queue, err := parseSize(c.String(flagSendQueue))
	if err != nil {
		return cfg, usagef("invalid value for flag --%s: %v", flagSendQueue, err)
	}
	cfg.server.sendQueue = int(queue)
	cfg.hub.historyBytes = int(queue)
	switch {
	case cfg.hub.history < 0:
		return cfg, usagef("invalid value for flag --%s: must not be negative", flagHistory)
	case cfg.hub.flushInterval < 0:
		return cfg, usagef("invalid value for flag --%s: must not be negative", flagFlush)
	case cfg.rate < 0:
		return cfg, usagef("invalid value for flag --%s: must not be negative", flagRate)
	case !validRoom(cfg.stdinRoom):
		return cfg, usagef("invalid value %q for flag --%s", cfg.stdinRoom, flagStdinRoom)
	}
	if path := c.String(flagUsers); path != "" {
		if cfg.auth.users, err = loadUsers(path); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// runServe runs the chat server until ctx is done.
func runServe(ctx context.Context, cfg serveConfig, o logOptions, stdin io.Reader) error {
	log := o.logger()
	var st *store
	var loaded []*chatMessage
	if cfg.store != "" {
		var err error
		if st, loaded, err = openStore(cfg.store, log); err != nil {
			return err
		}
		defer st.close()
	}
	h := newHub(cfg.hub, log, st, loaded, runtime.GOMAXPROCS(0))
	hubCtx, stopHub := context.WithCancel(context.Background())
	defer stopHub()
	go h.run(hubCtx)

	a := &chatApp{cfg: &cfg, hub: h}
	ws := newWSServer(cfg.server, a, log, "wsx serve")
	ws.pollIdle = true
	a.ws = ws
	if cfg.stdin {
		go a.relayStdin(stdin)
	}
	return runServer(ctx, cfg.server, ws, a.routes(ws), o.stdout)
}

// chatApp admits chat clients and serves the HTTP side of wsx serve.
type chatApp struct {
	cfg *serveConfig
	hub *hub
	ws  *wsServer
}

// routes is serve's HTTP handler: WebSocket upgrades on any path join the
// path's room; plain requests get /healthz, the reserved /api/, or the
// chat page.
func (a *chatApp) routes(ws http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.Handle("GET /api/", http.NotFoundHandler()) // the publish API's place
	mux.HandleFunc("GET /", servePage)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if websocket.IsWebSocketUpgrade(r) {
			ws.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// healthz answers the server's state as JSON.
func (a *chatApp) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(struct {
		Status      string `json:"status"`
		Connections int64  `json:"connections"`
		Rooms       int    `json:"rooms"`
	}{"ok", a.ws.active.Load(), a.hub.activeRooms()})
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
	u, herr := a.cfg.auth.authenticate(r, room)
	if herr != nil {
		return nil, herr
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
	c := &client{hub: a.hub, cfg: a.cfg, room: room, name: name, role: u.role}
	if a.cfg.rate > 0 {
		c.limiter = rate.NewLimiter(rate.Limit(a.cfg.rate), max(1, int(a.cfg.rate)))
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
	case name == serverName || a.cfg.auth.hasUser(name):
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
