package main

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/urfave/cli/v2"
)

// benchCommand is wsx bench: a load generator for any WebSocket server.
// Its flags may come before or after the URLs.
func benchCommand() *cli.Command {
	return allowFlagsAfterArgs(func() *cli.Command {
		return &cli.Command{
			Name:      "bench",
			Usage:     "load-test a WebSocket server: echo round trips, broadcast deliveries, connects, idle connections",
			ArgsUsage: "URL [URL...]",
			UsageText: `wsx bench [options] URL [URL...]

   wsx bench ws://localhost:8080/ --conns 50 --duration 10s          # echo round trips, closed loop
   wsx bench ws://localhost:8080/ --rate 5000 --messages 50000       # open loop: 5,000 msg/s in all
   wsx bench ws://localhost:8080/ --mode broadcast --conns 1000 --rate 10000 --duration 5s
   wsx bench ws://a:8080/ ws://b:8080/ --mode broadcast --conns 200   # subscribers spread over both
   wsx bench ws://localhost:8080/ --mode connect --messages 2000 --dial-concurrency 100
   wsx bench ws://localhost:8080/ --mode idle --conns 10000 --duration 30s --pid 4242
   wsx bench ws://localhost:8080/ --rate 1000 --json --hdr latency.hlog | jq .latency_us`,
			Description: `Modes:
   echo       every connection sends messages and awaits their replies; a reply may
              carry any prefix or suffix ("Data received: ...").
   broadcast  --conns subscribers and --publishers publishers (on the first URL); a
              delivery counts at every subscriber that receives a publisher's message,
              wherever its marker is in a message (JSON envelopes, batched frames).
   connect    handshakes one after another, each connection closed with 1000 once open,
              --dial-concurrency at a time (and --rate per second), for --duration or
              --messages handshakes: handshakes per second and connect latency.
   idle       hold --conns connections for --duration; with --pid PID of a local server,
              its memory per connection and its CPU.

With --rate R the run is open loop: R messages per second in all, sent on schedule
whatever the server does, and latency is measured both from the intended send time
(corrected: a stall shows) and from the actual send (uncorrected). --rate 0 is a
closed loop: each connection (broadcast: each publisher) waits for its message to
arrive before sending the next.

Every run is bounded (--duration, default 10s, or --messages) and ends by itself;
Ctrl-C ends it early and the results so far are printed. Results go to stdout, as
text or with --json one JSON object; a progress line is drawn on stderr when it is a
terminal. Exit code 0 when every message arrived, 3 when any was lost or more than
--max-errors connections failed, 1 when the run could not start, 2 for usage errors.`,
			Flags:  append(append(benchFlags(), handshakeFlags()...), globalFlags()...),
			Action: benchAction,
		}
	})
}

// Defaults and limits of the bench flags.
const (
	defaultBenchDuration   = 10 * time.Second // when neither --duration nor --messages is given
	defaultBenchConns      = 10
	defaultBenchSize       = 64 // payload bytes; at least markerLen
	defaultDialConcurrency = 64 // handshakes in flight, so a listen backlog does not overflow
	// maxPublishers is the most publishers a marker can name.
	maxPublishers = 1 << (6 * pubDigits)
)

// benchFlags are the flags of wsx bench beyond the handshake.
func benchFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagMode, Value: modeEcho, Usage: "`MODE`: echo, broadcast, connect or idle"},
		&cli.IntFlag{Name: flagConns, Aliases: []string{"c"}, Value: defaultBenchConns, Usage: "`N` connections (broadcast: subscribers; connect: not used)"},
		&cli.DurationFlag{Name: flagDuration, Aliases: []string{"d"}, DefaultText: "10s, unless --messages", Usage: "send for `DURATION` (idle: hold the connections)"},
		&cli.Int64Flag{Name: flagMessages, Aliases: []string{"m"}, DefaultText: "none", Usage: "send `M` messages in all instead of for a duration (connect: M handshakes)"},
		&cli.Float64Flag{Name: flagRate, Aliases: []string{"r"}, Usage: "`R` messages (connect: handshakes) per second in all, on schedule; 0: closed loop"},
		&cli.IntFlag{Name: flagSize, Value: defaultBenchSize, Usage: fmt.Sprintf("payload `BYTES` per message (at least %d, the marker)", markerLen)},
		&cli.DurationFlag{Name: flagRamp, Usage: "spread the connects over `DURATION`"},
		&cli.IntFlag{Name: flagDialConcurrency, Value: defaultDialConcurrency, Usage: "at most `N` handshakes in flight"},
		&cli.IntFlag{Name: flagPublishers, Aliases: []string{"p"}, Value: 1, Usage: "broadcast: `P` publishers, on the first URL"},
		&cli.BoolFlag{Name: flagBinary, Usage: "send binary messages (default text)"},
		&cli.BoolFlag{Name: flagJSON, Usage: "print the results as one JSON object"},
		&cli.StringFlag{Name: flagHdr, Usage: "write the latency histograms to `FILE` in the HdrHistogram log format"},
		&cli.IntFlag{Name: flagMaxErrors, DefaultText: "0", Usage: "exit 3 when more than `N` connections fail to open"},
		&cli.IntFlag{Name: flagPID, DefaultText: "none", Usage: "`PID` of a server on this machine: report its CPU per delivery (idle: memory per connection); Linux"},
	}
}

// The bench modes.
const (
	modeEcho      = "echo"
	modeBroadcast = "broadcast"
	modeConnect   = "connect"
	modeIdle      = "idle"
)

// benchConfig is wsx bench's configuration.
type benchConfig struct {
	urls            []string         // ws:// or wss://, normalised; connections go round-robin, publishers to urls[0]
	handshake       handshakeOptions // headers, subprotocols, TLS, connect timeout
	mode            string           // modeEcho, modeBroadcast, modeConnect or modeIdle
	conns           int              // connections; broadcast: subscribers
	publishers      int              // broadcast: publisher connections, besides conns
	duration        time.Duration    // sending time; 0 when messages bounds the run
	messages        int64            // messages (connect: handshakes) in all; 0 when duration bounds the run
	rate            float64          // per second in all; 0 for a closed loop
	size            int              // payload bytes, marker included
	op              int              // websocket.TextMessage or BinaryMessage
	ramp            time.Duration    // the connects are spread over this
	dialConcurrency int              // handshakes in flight at most
	json            bool             // results as one JSON object
	hdrFile         string           // HdrHistogram log output; "" for none
	maxErrors       int              // connect failures tolerated before exit 3
	pid             int              // server process to measure; 0 for none
}

// benchAction reads the flags and runs wsx bench.
func benchAction(c *cli.Context) error {
	cfg, err := readBenchConfig(c)
	if err != nil {
		return err
	}
	o, err := readLogOptions(c)
	if err != nil {
		return err
	}
	return runBench(c.Context, cfg, benchOutput{stdout: o.stdout, stderr: o.stderr, progress: isTerminal(o.stderr)})
}

// readBenchConfig reads and checks the URLs and the flags: every mistake is
// a usage error before anything connects.
func readBenchConfig(c *cli.Context) (benchConfig, error) {
	cfg := benchConfig{
		mode:            c.String(flagMode),
		conns:           c.Int(flagConns),
		publishers:      c.Int(flagPublishers),
		duration:        c.Duration(flagDuration),
		messages:        c.Int64(flagMessages),
		rate:            c.Float64(flagRate),
		size:            c.Int(flagSize),
		op:              websocket.TextMessage,
		ramp:            c.Duration(flagRamp),
		dialConcurrency: c.Int(flagDialConcurrency),
		json:            c.Bool(flagJSON),
		hdrFile:         c.String(flagHdr),
		maxErrors:       c.Int(flagMaxErrors),
		pid:             c.Int(flagPID),
	}
	if c.Bool(flagBinary) {
		cfg.op = websocket.BinaryMessage
	}
	if c.IsSet(flagDuration) && c.IsSet(flagMessages) {
		return cfg, usagef("--%s and --%s both bound the run: give one", flagDuration, flagMessages)
	}
	if !c.IsSet(flagDuration) && !c.IsSet(flagMessages) {
		cfg.duration = defaultBenchDuration
	}
	if c.Args().Len() == 0 {
		return cfg, usagef("missing URL: wsx bench [options] URL [URL...] (see wsx bench --help)")
	}
	var userinfo string
	for i, arg := range c.Args().Slice() {
		u, ui, err := normalizeURL(arg)
		if err != nil {
			return cfg, err
		}
		if i > 0 && ui != userinfo {
			return cfg, usagef("the URLs carry different user:password parts: give the credentials once, with --%s", flagAuth)
		}
		userinfo = ui
		cfg.urls = append(cfg.urls, u)
	}
	hs, err := readHandshakeOptions(c, userinfo)
	if err != nil {
		return cfg, err
	}
	cfg.handshake = hs
	return cfg, cfg.check()
}

// check rejects values and combinations of flags that cannot work.
func (cfg benchConfig) check() error {
	switch {
	case cfg.mode != modeEcho && cfg.mode != modeBroadcast && cfg.mode != modeConnect && cfg.mode != modeIdle:
		return usagef("invalid value %q for flag --%s: want %s, %s, %s or %s", cfg.mode, flagMode, modeEcho, modeBroadcast, modeConnect, modeIdle)
	case cfg.conns <= 0:
		return usagef("invalid value for flag --%s: must be at least 1", flagConns)
	case cfg.publishers <= 0 || cfg.publishers >= maxPublishers:
		return usagef("invalid value for flag --%s: must be between 1 and %d", flagPublishers, maxPublishers-1)
	case cfg.mode == modeEcho && cfg.conns >= maxPublishers:
		return usagef("invalid value for flag --%s: echo mode supports at most %d connections", flagConns, maxPublishers-1)
	case cfg.duration < 0:
		return usagef("invalid value for flag --%s: must be positive", flagDuration)
	case cfg.messages < 0:
		return usagef("invalid value for flag --%s: must be positive", flagMessages)
	case cfg.duration == 0 && cfg.messages == 0:
		return usagef("--%s 0 and --%s 0 would never end: give a positive one", flagDuration, flagMessages)
	case cfg.mode == modeIdle && cfg.duration == 0:
		return usagef("--%s idle holds the connections for --%s, not --%s", flagMode, flagDuration, flagMessages)
	case cfg.rate < 0 || math.IsNaN(cfg.rate) || math.IsInf(cfg.rate, 0):
		return usagef("invalid value for flag --%s: must be a positive number, or 0 for a closed loop", flagRate)
	case cfg.size < markerLen:
		return usagef("invalid value %d for flag --%s: must be at least %d, the marker's length", cfg.size, flagSize, markerLen)
	case cfg.size > maxBenchSize:
		return usagef("invalid value %d for flag --%s: at most %d", cfg.size, flagSize, maxBenchSize)
	case cfg.ramp < 0:
		return usagef("invalid value for flag --%s: must not be negative", flagRamp)
	case cfg.dialConcurrency <= 0:
		return usagef("invalid value for flag --%s: must be at least 1", flagDialConcurrency)
	case cfg.maxErrors < 0:
		return usagef("invalid value for flag --%s: must not be negative", flagMaxErrors)
	case cfg.pid < 0:
		return usagef("invalid value for flag --%s: must be a process id", flagPID)
	case cfg.pid > 0 && !haveProcStats:
		return usagef("--%s needs /proc, which only Linux has", flagPID)
	}
	if cfg.mode == modeBroadcast && cfg.messages > 0 && cfg.messages < int64(cfg.publishers) {
		return usagef("--%s %d is fewer than --%s %d: every publisher sends at least one", flagMessages, cfg.messages, flagPublishers, cfg.publishers)
	}
	if strings.TrimSpace(cfg.hdrFile) != cfg.hdrFile {
		return usagef("invalid value %q for flag --%s: a file name with leading or trailing spaces", cfg.hdrFile, flagHdr)
	}
	return nil
}

// share is sender i's part of n, of senders in all: the leftover n%senders
// goes to the first ones rather than being dropped.
func share(n int64, i, senders int) int64 {
	q, r := n/int64(senders), n%int64(senders)
	if int64(i) < r {
		return q + 1
	}
	return q
}
