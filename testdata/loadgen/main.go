// Command loadgen measures a WebSocket broadcast server from outside: one
// publisher sends fixed-size messages at a fixed rate into a room and N
// subscribers in the same room count every delivery, its latency, and every
// lost or reordered message. It drives wsx serve and the peers it is compared
// with (Bun, gorilla's chat example, Node's ws) in exactly the same way.
//
// It lives under testdata so that `go test ./...` and `go vet ./...` skip it;
// build it with `go build ./testdata/loadgen` from the module root.
//
// Modes:
//
//	loadgen -url ws://127.0.0.1:8080/ -rate 3000 -d 5s      one fixed-rate run
//	loadgen -url ws://127.0.0.1:8080/ -step -d 5s           rates step up until one fails
//	loadgen -url ws://127.0.0.1:8080/ -idle 10000           hold idle connections (memory)
//
// Results go to stdout, one line per run; diagnostics go to stderr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Defaults and limits of a run.
const (
	defaultSubscribers = 1000
	defaultSize        = 64   // payload bytes; at least headerLen+1
	defaultRate        = 1000 // messages per second
	defaultDuration    = 5 * time.Second
	defaultRates       = "1000,2000,3000,4000,5000,6000,8000,10000,12000,15000,20000,30000,50000"
	// passP99 is the latency a step must stay under, with nothing lost, to pass.
	passP99 = 250 * time.Millisecond
	// defaultDrain is how long to wait without any new delivery after the last
	// send before the missing deliveries are counted as lost.
	defaultDrain = time.Second
	// maxDrain bounds the wait after the last send however slowly deliveries trickle in.
	maxDrain = 10 * time.Second
	// defaultPoll is the least time between two reads of one subscriber's
	// socket: it batches deliveries per read so the generator leaves CPU to
	// the server, and adds up to about this much to measured latencies.
	defaultPoll = time.Millisecond
	// dialConcurrency bounds the handshakes in flight, so the server's listen
	// backlog does not overflow while 10,000 connections open.
	dialConcurrency = 64
)

// config is everything a run needs, read from the flags.
type config struct {
	url           string        // room URL shared by publisher and subscribers
	subscribers   int           // subscriber connections for rate runs
	idle          int           // >0: hold this many idle connections instead of a rate run
	size          int           // payload bytes per message
	binary        bool          // send binary messages instead of text
	rate          int           // messages per second for a single run
	duration      time.Duration // publishing time of each run or step
	step          bool          // step through rates until one fails
	rates         []int         // rates for -step, ascending
	maxRate       int           // -step stops after this rate (0: no cap)
	splitNewlines bool          // a frame may carry several payloads joined by '\n' (gorilla chat)
	readBuffer    int           // subscriber read buffer bytes
	drain         time.Duration // quiet time after the last send before counting losses
	pid           int           // server PID: report its CPU time per delivery
	cpuProfile    string        // write the generator's own CPU profile here
	pollers       int           // goroutines reading the subscribers' sockets
	pollInterval  time.Duration // minimum time between two reads of a socket
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses args, runs the chosen mode and returns the exit code: 0 when the
// run (or at least one step) passed, 1 on failure, 2 on bad flags.
func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "loadgen:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if n, err := raiseFileLimit(); err != nil {
		fmt.Fprintln(stderr, "loadgen: raise RLIMIT_NOFILE:", err)
	} else if need := max(cfg.subscribers, cfg.idle) + 64; n < uint64(need) {
		fmt.Fprintf(stderr, "loadgen: RLIMIT_NOFILE is %d, %d connections need about %d\n", n, need-64, need)
	}
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "loadgen:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "loadgen:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	switch {
	case cfg.idle > 0:
		err = runIdle(ctx, cfg, stdout, stderr)
	case cfg.step:
		err = runSteps(ctx, cfg, stdout, stderr)
	default:
		err = runFixed(ctx, cfg, stdout, stderr)
	}
	if err != nil {
		fmt.Fprintln(stderr, "loadgen:", err)
		return 1
	}
	return 0
}

// parseFlags reads the command line into a config.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	var rates string
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.url, "url", "ws://127.0.0.1:8080/", "room URL (gorilla chat: ws://HOST:PORT/ws)")
	fs.IntVar(&cfg.subscribers, "n", defaultSubscribers, "subscriber connections")
	fs.IntVar(&cfg.idle, "idle", 0, "hold this many idle connections (the memory figure uses 10000), print \"ready N\", wait for SIGINT/SIGTERM")
	fs.IntVar(&cfg.size, "size", defaultSize, "payload bytes per message")
	fs.BoolVar(&cfg.binary, "binary", false, "publish binary messages (default text)")
	fs.IntVar(&cfg.rate, "rate", defaultRate, "messages per second (fixed-rate run)")
	fs.DurationVar(&cfg.duration, "d", defaultDuration, "publishing time per run or step")
	fs.BoolVar(&cfg.step, "step", false, "step the rate up through -rates until one loses a message or has p99 >= 250ms")
	fs.StringVar(&rates, "rates", defaultRates, "comma-separated ascending rates for -step")
	fs.IntVar(&cfg.maxRate, "max", 0, "highest rate tried by -step (0: the end of -rates)")
	fs.BoolVar(&cfg.splitNewlines, "split-newlines", false, "split each frame on '\\n' and count every part (gorilla's chat example joins queued messages)")
	fs.IntVar(&cfg.readBuffer, "rbuf", 64<<10, "subscriber read buffer bytes")
	fs.DurationVar(&cfg.drain, "drain", defaultDrain, "quiet time after the last send before missing deliveries count as lost")
	fs.IntVar(&cfg.pid, "pid", 0, "server PID: report its CPU time (utime+stime) per delivery")
	fs.IntVar(&cfg.pollers, "pollers", 1, "goroutines (each at most one core) reading the subscribers' sockets")
	fs.DurationVar(&cfg.pollInterval, "poll", defaultPoll, "minimum time between two reads of a socket: more per read, up to this much added latency")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write the generator's own CPU profile to this file")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if cfg.rates, err = parseRates(rates); err != nil {
		return cfg, fmt.Errorf("-rates: %w", err)
	}
	switch {
	case cfg.size <= headerLen:
		return cfg, fmt.Errorf("-size: must be more than %d bytes", headerLen)
	case cfg.idle < 0:
		return cfg, errors.New("-idle: must be positive")
	case cfg.pollers <= 0:
		return cfg, errors.New("-pollers: must be positive")
	case cfg.subscribers <= 0:
		return cfg, errors.New("-n: must be positive")
	case cfg.rate <= 0:
		return cfg, errors.New("-rate: must be positive")
	case cfg.duration <= 0:
		return cfg, errors.New("-d: must be positive")
	}
	return cfg, nil
}

// parseRates parses a comma-separated list of ascending positive rates.
func parseRates(s string) ([]int, error) {
	var rates []int
	for _, f := range strings.Split(s, ",") {
		r, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || r <= 0 {
			return nil, fmt.Errorf("bad rate %q", f)
		}
		if len(rates) > 0 && r <= rates[len(rates)-1] {
			return nil, fmt.Errorf("rates must ascend: %d after %d", r, rates[len(rates)-1])
		}
		rates = append(rates, r)
	}
	return rates, nil
}

// runFixed runs one publishing run at cfg.rate and prints its line.
func runFixed(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	b, err := newBench(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer b.close()
	res, err := b.runOnce(ctx, cfg.rate, 1)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, res.line())
	warn(stderr, res, cfg)
	if !res.passed() {
		return fmt.Errorf("rate %d msg/s failed: lost %d, dropped %d, p99 %v", cfg.rate, res.lost(), res.dropped, res.p99())
	}
	return nil
}

// runSteps steps through cfg.rates until one fails and prints the highest passing rate.
func runSteps(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	b, err := newBench(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer b.close()
	var best *result
	for i, rate := range cfg.rates {
		if cfg.maxRate > 0 && rate > cfg.maxRate {
			break
		}
		res, err := b.runOnce(ctx, rate, i+1)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, res.line())
		warn(stderr, res, cfg)
		if !res.passed() {
			break
		}
		best = &res
	}
	if best == nil {
		fmt.Fprintln(stdout, "highest passing rate: none")
		return fmt.Errorf("no rate passed; try -rates starting below %d", cfg.rates[0])
	}
	fmt.Fprintf(stdout, "highest passing rate: %d msg/s (%.0f deliveries/s to %d subscribers)\n",
		best.rate, best.deliveriesPerSec(), cfg.subscribers)
	return nil
}

// runIdle opens cfg.idle connections that only answer pings, prints
// "ready N" and holds them until ctx ends.
func runIdle(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	start := time.Now()
	conns, err := dialAll(ctx, cfg.url, cfg.idle, 256)
	if err != nil {
		return err
	}
	for _, c := range conns {
		go func() {
			for {
				if _, _, err := c.NextReader(); err != nil {
					return
				}
			}
		}()
	}
	fmt.Fprintf(stderr, "loadgen: %d idle connections open in %v\n", len(conns), time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(stdout, "ready %d\n", len(conns))
	<-ctx.Done()
	for _, c := range conns {
		c.NetConn().Close()
	}
	return nil
}
