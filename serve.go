package main

import (
	"context"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"time"

	"github.com/urfave/cli/v2"
)

// Defaults of the serve flags.
const (
	defaultHistory       = 50
	defaultFlushInterval = 8 * time.Millisecond
	lobby                = "lobby" // the room of "/"

	// serveGCPercent is the GC target of wsx serve unless GOGC is set. Its
	// heap is mostly long-lived connection state, so Go's default of 100%
	// headroom would add as much memory again to every idle connection,
	// while collecting twice as often costs little: a relayed message
	// allocates 5 objects whatever the number of receivers.
	serveGCPercent = 50
	serverName     = "server"
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
GET /healthz answers JSON. With --api-token, a backend publishes to rooms
and manages connections over HTTP under /api/, and /metrics serves
Prometheus metrics (see README: Push from your backend).`,
		Flags: slices.Concat(wsServerFlags(), globalFlags(), []cli.Flag{
			&cli.BoolFlag{Name: flagIncludeSelf, Usage: "relay a client's messages back to it too"},
			&cli.BoolFlag{Name: flagNotices, Usage: "send raw clients text notices of joins and leaves"},
			welcomeFlag(),
			&cli.BoolFlag{Name: flagStdin, Usage: "send each line of standard input to the clients, from \"server\""},
			&cli.StringFlag{Name: flagStdinRoom, Value: lobby, Usage: "the `ROOM` that --stdin lines go to"},
			&cli.StringFlag{Name: flagToken, EnvVars: []string{"WSX_TOKEN"}, Usage: "shared secret `TOKEN` clients must present (Bearer, Basic password or ?token=)"},
			&cli.StringFlag{Name: flagUsers, Usage: "users `FILE`: lines name:token:role[:room,room...], role rw or ro"},
			&cli.IntFlag{Name: flagHistory, Value: defaultHistory, Usage: "replay the last `N` messages of a room to each new client (0 = none)"},
			&cli.StringFlag{Name: flagStore, Usage: "append every message to this JSON-lines `FILE` and load the history from it"},
			&cli.StringFlag{Name: flagRedis, EnvVars: []string{"WSX_REDIS"}, Usage: "share rooms, history and online lists with every wsx serve on this Redis (`URL`: redis://[user:pass@]host:port/db or rediss://)"},
			&cli.StringFlag{Name: flagSendQueue, Value: defaultSendQueue, Usage: "bound on a client's queued outgoing bytes (`SIZE`); past it the client is closed 1008 as a slow consumer"},
			&cli.DurationFlag{Name: flagFlush, Value: defaultFlushInterval, Usage: "write to each client at most once per `INTERVAL`; messages within it share the write (0 = write each at once)"},
			&cli.Float64Flag{Name: flagRate, Usage: "most messages per second per client (`N`, with a burst of N); excess is dropped (0 = unlimited)"},
		}, apiFlags()),
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
	server    wsServerConfig
	hub       hubConfig
	stdin     bool       // relay stdin lines
	stdinRoom string     // room of the stdin lines
	auth      authConfig // who may connect, with which role
	store     string     // JSON-lines file of all messages
	redis     string     // Redis URL of the backplane; "" for none
	api       apiConfig  // who may use /api/ and /metrics
}

// readServeConfig reads and validates the serve flags.
func readServeConfig(c *cli.Context) (serveConfig, error) {
	server, err := readWSServerConfig(c)
	if err != nil {
		return serveConfig{}, err
	}
	server.subprotocols = append(server.subprotocols, chatProtocol)
	cfg := serveConfig{
		server: server,
		hub: hubConfig{
			history:        c.Int(flagHistory),
			includeSelf:    c.Bool(flagIncludeSelf),
			notices:        c.Bool(flagNotices),
			flushInterval:  c.Duration(flagFlush),
			welcome:        c.String(flagWelcome),
			rate:           c.Float64(flagRate),
			maxMessageSize: server.maxMessageSize,
		},
		stdin:     c.Bool(flagStdin),
		stdinRoom: c.String(flagStdinRoom),
		auth:      authConfig{token: c.String(flagToken)},
		store:     c.String(flagStore),
		redis:     c.String(flagRedis),
	}
	if err := validText(flagWelcome, cfg.hub.welcome); err != nil {
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
	case cfg.hub.rate < 0:
		return cfg, usagef("invalid value for flag --%s: must not be negative", flagRate)
	case !validRoom(cfg.stdinRoom) || reservedRoom(cfg.stdinRoom):
		return cfg, usagef("invalid value %q for flag --%s", cfg.stdinRoom, flagStdinRoom)
	}
	if cfg.redis != "" {
		if cfg.store != "" {
			return cfg, usagef("--%s cannot be used with --%s: the history is kept in Redis (make Redis persistent instead)", flagStore, flagRedis)
		}
		if err := checkRedisURL(cfg.redis); err != nil {
			return cfg, usagef("invalid value for flag --%s: %v", flagRedis, err)
		}
	}
	if cfg.api, err = readAPIConfig(c); err != nil {
		return cfg, err
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
	if os.Getenv("GOGC") == "" {
		defer debug.SetGCPercent(debug.SetGCPercent(serveGCPercent))
	}
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
	hubDone := make(chan struct{})
	go func() { defer close(hubDone); h.run(hubCtx) }()
	defer func() { stopHub(); <-hubDone }() // before the store closes

	a := &chatApp{cfg: &cfg, hub: h, metrics: newServeMetrics(h)}
	a.api = newAPI(cfg.api, h, log, cfg.server.maxMessageSize, a.metrics)
	ws := newWSServer(cfg.server, a, log, "wsx serve")
	ws.pollIdle = true
	if cfg.redis != "" {
		b, err := startRedisBroker(h, cfg.redis, log)
		if err != nil {
			return err
		}
		defer b.close() // after the clients left, before the hub stops
		ws.nextID.Store(b.connIDBase())
	}
	a.ws = ws
	if cfg.stdin {
		go a.relayStdin(stdin)
	}
	return runWSServer(ctx, cfg.server, ws, a.routes(ws), o.stdout)
}
