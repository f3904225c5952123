package main

import (
	"context"
	"errors"
	"io"
	"math"
	"os"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"github.com/urfave/cli/v2"
)

// Defaults of the dial flags.
const (
	defaultWait         = time.Second      // --wait: reading goes on this long after the input ends
	defaultReconnectMax = 30 * time.Second // --reconnect-max
)

// dialCommand is wsx dial: the client, interactive at a terminal and line
// by line in a pipe. Its flags may come before or after the URL.
func dialCommand() *cli.Command {
	return allowFlagsAfterArgs(func() *cli.Command {
		return &cli.Command{
			Name:      "dial",
			Usage:     "connect to a WebSocket server: a prompt at a terminal, line by line in a pipe",
			ArgsUsage: "URL",
			UsageText: `wsx dial [options] URL

   wsx dial ws://localhost:8080/                  # a "> " prompt; /help lists the commands
   echo hello | wsx dial localhost:8080           # send a line, print the reply
   wsx dial wss://example.com/ws -H "X-Key: 1" -s chat.v1 --token T
   wsx dial ws://localhost:8080/ -x ping -n 1     # send "ping", print one reply, exit
   wsx dial ws://localhost:8080/ --whole --binary < photo.png
   wsx dial ws://localhost:8080/ --jsonl < requests.txt | jq .`,
			Description: `At a terminal (stdin and stdout both terminals), wsx dial shows a "> "
prompt with line editing and history; messages print above it. Otherwise
each stdin line is one text message (--binary: binary), and each message
received is one line on stdout: text as it is, binary as base64 (or raw with
--raw-binary). After the input ends wsx keeps reading for --wait, then closes
with 1000. The close is reported on stderr as "Connection closed (CODE - REASON)".

The URL may be ws://, wss://, http:// or https:// (mapped to ws/wss), or have
no scheme (ws://). HTTP_PROXY, HTTPS_PROXY and NO_PROXY are honoured.`,
			Flags:  append(append(handshakeFlags(), dialFlags()...), globalFlags()...),
			Action: dialAction,
		}
	})
}

// dialFlags are the flags of wsx dial beyond the handshake.
func dialFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: flagBinary, Usage: "send each line (or -x message, or --whole input) as a binary message"},
		&cli.BoolFlag{Name: flagWhole, Usage: "send all of stdin as one message"},
		&cli.BoolFlag{Name: flagRawBinary, Usage: "print received binary messages as raw bytes instead of base64 lines"},
		&cli.StringFlag{Name: flagWait, Value: defaultWait.String(), Usage: "after the input ends, close once `DURATION` passes without a message sent or received (0: at once; -1: wait for the server to close; with -n: until N arrive)"},
		&cli.GenericFlag{Name: flagExecute, Aliases: []string{"x"}, Value: new(stringList), Usage: "send `MESSAGE` instead of reading stdin (repeatable), then go on as at the end of input"},
		&cli.IntFlag{Name: flagCount, Aliases: []string{"n"}, Usage: "exit after receiving `N` messages"},
		&cli.DurationFlag{Name: flagTimeout, Usage: "end after `DURATION` in all, with exit code 3 (0: no limit)"},
		&cli.BoolFlag{Name: flagShowPing, Aliases: []string{"P"}, Usage: "show the pings and pongs that arrive"},
		&cli.DurationFlag{Name: flagPingInterval, Usage: "ping every `DURATION`; the connection counts as lost when nothing arrives for two (0: off)"},
		&cli.BoolFlag{Name: flagJSONL, Usage: "print every event (open, message, ping, pong, close, error) as one JSON object per line"},
		&cli.BoolFlag{Name: flagReconnect, Usage: "reconnect when the connection is lost, with exponential backoff; input waits meanwhile"},
		&cli.DurationFlag{Name: flagReconnectMax, Value: defaultReconnectMax, Usage: "wait at most `DURATION` between reconnection attempts"},
		&cli.IntFlag{Name: flagFragment, Usage: "send each message in frames of at most `N` bytes (continuation frames)"},
		&cli.BoolFlag{Name: flagTimestamps, Usage: "put the time before each printed line"},
	}
}

// dialConfig is wsx dial's configuration.
type dialConfig struct {
	url          string           // ws:// or wss://, normalised
	handshake    handshakeOptions // headers, subprotocols, TLS, timeouts
	op           int              // type of the messages sent: websocket.TextMessage or BinaryMessage
	whole        bool             // send all of stdin as one message
	execute      []string         // send these instead of reading stdin
	rawBinary    bool             // print binary messages raw, not as base64
	wait         time.Duration    // after the input ends; 0 closes at once, negative waits for the server
	count        int              // exit after this many messages; 0 for no limit
	timeout      time.Duration    // overall limit; 0 for none
	showPing     bool             // show pings and pongs
	pingInterval time.Duration    // keepalive ping period; 0 for none
	jsonl        bool             // every event as JSON on stdout
	reconnect    bool             // reconnect after a lost connection
	reconnectMax time.Duration    // longest backoff between attempts
	fragment     int              // largest frame payload; 0 for one frame per message
	timestamps   bool             // time before each printed line
}

// dialAction reads the flags and runs wsx dial.
func dialAction(c *cli.Context) error {
	cfg, err := readDialConfig(c)
	if err != nil {
		return err
	}
	o, err := readLogOptions(c)
	if err != nil {
		return err
	}
	return runDial(c.Context, cfg, o, c.App.Reader)
}

// readDialConfig reads and checks the URL and the flags: every mistake is a
// usage error before anything connects.
func readDialConfig(c *cli.Context) (dialConfig, error) {
	var cfg dialConfig
	switch c.Args().Len() {
	case 0:
		return cfg, usagef("missing URL: wsx dial [options] URL (see wsx dial --help)")
	case 1:
	default:
		return cfg, usagef("unexpected argument %q after the URL %q (quote a value that has spaces)", c.Args().Get(1), c.Args().First())
	}
	u, userinfo, err := normalizeURL(c.Args().First())
	if err != nil {
		return cfg, err
	}
	hs, err := readHandshakeOptions(c, userinfo)
	if err != nil {
		return cfg, err
	}
	cfg = dialConfig{
		url:          u,
		handshake:    hs,
		op:           websocket.TextMessage,
		whole:        c.Bool(flagWhole),
		execute:      *c.Generic(flagExecute).(*stringList),
		rawBinary:    c.Bool(flagRawBinary),
		count:        c.Int(flagCount),
		timeout:      c.Duration(flagTimeout),
		showPing:     c.Bool(flagShowPing),
		pingInterval: c.Duration(flagPingInterval),
		jsonl:        c.Bool(flagJSONL),
		reconnect:    c.Bool(flagReconnect),
		reconnectMax: c.Duration(flagReconnectMax),
		fragment:     c.Int(flagFragment),
		timestamps:   c.Bool(flagTimestamps),
	}
	if c.Bool(flagBinary) {
		cfg.op = websocket.BinaryMessage
	}
	if cfg.wait, err = parseWait(c.String(flagWait)); err != nil {
		return cfg, err
	}
	if cfg.count > 0 && !c.IsSet(flagWait) {
		cfg.wait = -1 // wait for the N messages
	}
	return cfg, cfg.check()
}

// check rejects values and combinations of flags that cannot work.
func (cfg dialConfig) check() error {
	switch {
	case cfg.count < 0:
		return usagef("invalid value for flag -n/--%s: must not be negative", flagCount)
	case cfg.timeout < 0:
		return usagef("invalid value for flag --%s: must not be negative", flagTimeout)
	case cfg.pingInterval < 0:
		return usagef("invalid value for flag --%s: must not be negative (0 turns pings off)", flagPingInterval)
	case cfg.reconnectMax <= 0:
		return usagef("invalid value for flag --%s: must be positive", flagReconnectMax)
	case cfg.fragment < 0:
		return usagef("invalid value for flag --%s: must be at least 1 (or 0 for whole messages)", flagFragment)
	case cfg.whole && len(cfg.execute) > 0:
		return usagef("--%s sends stdin and -x/--%s sends messages instead of stdin: give one", flagWhole, flagExecute)
	case cfg.rawBinary && cfg.jsonl:
		return usagef("--%s and --%s cannot be combined: JSON carries binary data as base64", flagRawBinary, flagJSONL)
	case cfg.rawBinary && cfg.timestamps:
		return usagef("--%s and --%s cannot be combined: raw bytes have no lines to put the time before", flagRawBinary, flagTimestamps)
	}
	for _, m := range cfg.execute {
		if cfg.op == websocket.TextMessage && !utf8.ValidString(m) {
			return usagef("invalid value %q for flag -x/--%s: not valid UTF-8 (--%s sends binary messages)", m, flagExecute, flagBinary)
		}
	}
	return nil
}

// parseWait parses --wait: a duration, a number of seconds, or a negative
// number (-1) for no limit.
func parseWait(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || math.IsNaN(f) || math.IsInf(f, 0) || f > math.MaxInt64/float64(time.Second) {
			return 0, usagef("invalid value %q for flag --%s: want a duration such as 500ms or 2s, 0 to close at once, or -1 to wait for the server", s, flagWait)
		}
		d = time.Duration(f * float64(time.Second))
	}
	if d < 0 {
		d = -1
	}
	return d, nil
}

// errReported stands for a failure already reported on stderr, such as
// "Could not connect: ..."; run prints nothing more for it.
var errReported = errors.New("")

// runDial runs wsx dial in interactive mode when stdin and stdout are
// terminals and there is no -x or --whole, and in piped mode otherwise.
func runDial(ctx context.Context, cfg dialConfig, o logOptions, stdin io.Reader) error {
	in, _ := stdin.(*os.File)
	out, _ := o.stdout.(*os.File)
	if len(cfg.execute) == 0 && !cfg.whole && isTerminal(in) && isTerminal(out) {
		return interactive(ctx, cfg, o, in, out)
	}
	return pipe(ctx, cfg, o, stdin)
}

// pipe runs piped mode: it sends the lines of in (all of in as one message
// with --whole, or the -x messages instead), writes what arrives to
// o.stdout, and returns the error that decides the exit code.
func pipe(ctx context.Context, cfg dialConfig, o logOptions, in io.Reader) error {
	queue := make(chan outgoing, queueLen)
	stop := make(chan struct{})
	defer close(stop)
	switch {
	case len(cfg.execute) > 0:
		go sendMessages(cfg.execute, cfg.op, queue, stop)
	case cfg.whole:
		go readWhole(in, cfg.op, queue, stop)
	default:
		go readLines(in, cfg.op, queue, stop)
	}
	f := plainFormat(cfg.rawBinary, cfg.timestamps)
	if cfg.jsonl {
		f = jsonFormat
	}
	p := newPrinter(o.stdout, f)
	cl := newDialClient(cfg, o.logger(), queue, p)
	cl.pingsToLog = !cfg.jsonl
	err := cl.run(ctx)
	if perr := p.close(); err == nil {
		err = perr
	}
	return err
}
