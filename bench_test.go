package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/gorilla/websocket"
)

// runBenchTest runs "wsx bench ARGS... --json" in-process and returns its
// results, exit code and stderr.
func runBenchTest(t *testing.T, args ...string) (benchSnapshot, int, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 4*testTimeout)
	defer cancel()
	code := run(ctx, append([]string{"wsx", "bench", "--json"}, args...), strings.NewReader(""), &stdout, &stderr)
	var snap benchSnapshot
	if code != exitUsage {
		if err := json.Unmarshal(stdout.Bytes(), &snap); err != nil {
			t.Fatalf("wsx bench %s: exit %d, stdout not JSON: %v\n%s\nstderr:\n%s", strings.Join(args, " "), code, err, stdout.String(), stderr.String())
		}
	}
	return snap, code, stderr.String()
}

// wantMessages checks the message counts of a run.
func wantMessages(t *testing.T, snap benchSnapshot, sent, received, lost, dup int64) {
	t.Helper()
	m := snap.Messages
	if m.Sent != sent || m.Received != received || m.Lost != lost || m.Duplicated != dup {
		t.Errorf("sent %d, received %d, lost %d, duplicated %d; want %d, %d, %d, %d (%+v)",
			m.Sent, m.Received, m.Lost, m.Duplicated, sent, received, lost, dup, m)
	}
}

func TestBenchEchoCountsMatch(t *testing.T) {
	srv := newTestServer(t, "echo") // replies "Data received: <msg>"
	tests := []struct {
		name string
		args []string
		sent int64
	}{
		{name: "closed loop", args: []string{"-c", "3", "--messages", "200"}, sent: 200},
		{name: "open loop", args: []string{"-c", "4", "--messages", "301", "--rate", "3000"}, sent: 301},
		{name: "binary", args: []string{"-c", "2", "--messages", "50", "--binary", "--size", "300"}, sent: 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap, code, stderr := runBenchTest(t, append([]string{srv.url}, tt.args...)...)
			if code != exitOK {
				t.Errorf("exit %d, want 0; stderr:\n%s", code, stderr)
			}
			wantMessages(t, snap, tt.sent, tt.sent, 0, 0)
			if snap.Messages.OutOfOrder != 0 || snap.Messages.Altered != 0 || snap.Connects.OK != int64(snap.Conns) {
				t.Errorf("out of order %d, altered %d, connects %d of %d", snap.Messages.OutOfOrder, snap.Messages.Altered, snap.Connects.OK, snap.Conns)
			}
			if snap.Latency.Corrected.Max <= 0 || snap.CPU.PerDeliveryUS <= 0 {
				t.Errorf("latency %+v, cpu %+v: want measured values", snap.Latency, snap.CPU)
			}
		})
	}
}

func TestBenchBroadcastCountsMatch(t *testing.T) {
	srv := newTestServer(t, "serve", "--welcome", "hello", "--notices", "--include-self") // publishers get their own messages back
	tests := []struct {
		name string
		args []string
	}{
		{name: "raw", args: []string{"--rate", "1000"}},
		{name: "closed loop", args: nil},
		{name: "JSON envelopes, binary as base64", args: []string{"-s", chatProtocol, "--binary", "--rate", "1000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{srv.url + "room-" + strings.ReplaceAll(tt.name, " ", "-"),
				"--mode", "broadcast", "-c", "20", "--publishers", "2", "--messages", "101"}, tt.args...)
			snap, code, stderr := runBenchTest(t, args...)
			if code != exitOK {
				t.Errorf("exit %d, want 0; stderr:\n%s", code, stderr)
			}
			wantMessages(t, snap, 101, 101*20, 0, 0)
			if snap.Messages.Other == 0 {
				t.Errorf("other messages %d: the welcomes and notices were not seen", snap.Messages.Other)
			}
		})
	}
}

func TestBenchJSONSchema(t *testing.T) {
	srv := newTestServer(t, "echo")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"wsx", "bench", srv.url, "--json", "-c", "1", "--messages", "5"}, strings.NewReader(""), &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
	}
	var obj map[string]any
	dec := json.NewDecoder(&stdout)
	if err := dec.Decode(&obj); err != nil {
		t.Fatalf("stdout is not one JSON object: %v", err)
	}
	if dec.More() {
		t.Error("stdout holds more than one JSON value")
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr %q: stderr is not a terminal, so no progress line", stderr.String())
	}
	paths := []string{
		"mode", "urls", "conns", "publishers", "size", "binary", "closed_loop", "interrupted",
		"connects.ok", "connects.failed", "connects.failures", "connects.time_s", "connects.per_s", "connects.latency_us.p99",
		"rate.target_per_s", "rate.achieved_per_s", "rate.send_time_s",
		"messages.sent", "messages.expected", "messages.received", "messages.lost", "messages.duplicated",
		"messages.out_of_order", "messages.altered", "messages.stray", "messages.other",
		"throughput.deliveries_per_s", "throughput.bytes_per_s",
		"latency_us.corrected.p50", "latency_us.corrected.p90", "latency_us.corrected.p99", "latency_us.corrected.p99_9",
		"latency_us.corrected.max", "latency_us.corrected.mean", "latency_us.uncorrected.p99",
		"closes", "errors", "cpu.bench_s", "cpu.bench_percent", "cpu.per_delivery_us", "exit_code",
	}
	for _, p := range paths {
		var v any = obj
		for _, k := range strings.Split(p, ".") {
			m, ok := v.(map[string]any)
			if !ok {
				v = nil
				break
			}
			v = m[k]
		}
		if v == nil {
			t.Errorf("JSON has no %s", p)
		}
	}
}

func TestBenchDurationEndsTheRun(t *testing.T) {
	srv := newTestServer(t, "echo")
	for _, mode := range []string{modeEcho, modeIdle, modeConnect} {
		t.Run(mode, func(t *testing.T) {
			snap, code, stderr := runBenchTest(t, srv.url, "--mode", mode, "-c", "2", "--duration", "300ms", "--rate", "100")
			if code != exitOK {
				t.Errorf("exit %d; stderr:\n%s", code, stderr)
			}
			if snap.Connects.OK == 0 || snap.Rate.SendTimeS < 0.29 {
				t.Errorf("connects %d, send time %.3fs; want connections and a 300ms run", snap.Connects.OK, snap.Rate.SendTimeS)
			}
			if mode == modeEcho && (snap.Messages.Sent == 0 || snap.Messages.Lost != 0) {
				t.Errorf("messages %+v", snap.Messages)
			}
		})
	}
}

func TestBenchSpreadsConnectionsOverURLs(t *testing.T) {
	behave := func(int) (int, time.Duration) { return 1, 0 }
	url1, conns1 := echoPeer(t, behave)
	url2, conns2 := echoPeer(t, behave)
	snap, code, stderr := runBenchTest(t, url1, url2, "-c", "6", "--messages", "60")
	if code != exitOK {
		t.Errorf("exit %d; stderr:\n%s", code, stderr)
	}
	if conns1.Load() != 3 || conns2.Load() != 3 {
		t.Errorf("connections %d and %d, want 3 and 3", conns1.Load(), conns2.Load())
	}
	wantMessages(t, snap, 60, 60, 0, 0)
}

func TestBenchConnectFailures(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "ws://" + ln.Addr().String() + "/"
	ln.Close() // nothing listens there now
	srv := newTestServer(t, "serve", "--token", "s3cret")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		cause    string
	}{
		{name: "nothing opens", args: []string{refused, "-c", "2", "--messages", "4"}, wantCode: exitFailure, cause: "refused"},
		{name: "connect mode", args: []string{refused, "--mode", "connect", "--messages", "3"}, wantCode: exitAbnormal, cause: "refused"},
		{name: "tolerated", args: []string{refused, "--mode", "connect", "--messages", "3", "--max-errors", "3"}, wantCode: exitOK, cause: "refused"},
		{name: "HTTP status", args: []string{srv.url, "--mode", "connect", "--messages", "2"}, wantCode: exitAbnormal, cause: "http 401"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap, code, stderr := runBenchTest(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
			}
			if snap.Connects.Failures[tt.cause] == 0 {
				t.Errorf("connect failures %v, want some %q", snap.Connects.Failures, tt.cause)
			}
			if !strings.Contains(stderr, "Could not connect") {
				t.Errorf("stderr does not explain the failure:\n%s", stderr)
			}
		})
	}
}

func TestBenchUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "no URL", args: nil, want: "missing URL"},
		{name: "bad mode", args: []string{"ws://x/", "--mode", "flood"}, want: "--mode"},
		{name: "small size", args: []string{"ws://x/", "--size", "10"}, want: "--size"},
		{name: "two bounds", args: []string{"ws://x/", "--duration", "1s", "--messages", "5"}, want: "--duration and --messages"},
		{name: "no conns", args: []string{"ws://x/", "-c", "0"}, want: "--conns"},
		{name: "negative rate", args: []string{"ws://x/", "--rate", "-1"}, want: "--rate"},
		{name: "bad scheme", args: []string{"ftp://x/"}, want: "scheme"},
		{name: "bad header", args: []string{"ws://x/", "-H", "nocolon"}, want: "--header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, code, stderr := runBenchTest(t, tt.args...)
			if code != exitUsage || !strings.Contains(stderr, tt.want) {
				t.Errorf("wsx bench %q: exit %d, stderr %q; want 2 and %q", tt.args, code, stderr, tt.want)
			}
		})
	}
}

func TestBenchHdrLog(t *testing.T) {
	srv := newTestServer(t, "echo")
	file := filepath.Join(t.TempDir(), "latency.hlog")
	snap, code, stderr := runBenchTest(t, srv.url, "-c", "2", "--messages", "40", "--hdr", file)
	if code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lr := hdrhistogram.NewHistogramLogReader(f)
	for _, tag := range []string{"corrected", "uncorrected"} {
		h, err := lr.NextIntervalHistogram()
		if err != nil || h == nil {
			t.Fatalf("histogram %s: %v", tag, err)
		}
		if h.Tag() != tag || h.TotalCount() != snap.Messages.Received {
			t.Errorf("histogram tagged %q with %d values, want %q with %d", h.Tag(), h.TotalCount(), tag, snap.Messages.Received)
		}
	}
}

func TestBenchTLSAndCompression(t *testing.T) {
	tests := []struct {
		name   string
		server []string
		args   []string
	}{
		// TLS connections have a reader goroutine each, not the poller.
		{name: "wss", server: []string{"echo", "--tls-self-signed"}, args: []string{"-k"}},
		{name: "permessage-deflate", server: []string{"echo", "--compress"}, args: []string{"--compress", "--size", "2000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t, tt.server...)
			snap, code, stderr := runBenchTest(t, append([]string{srv.url, "-c", "3", "--messages", "90"}, tt.args...)...)
			if code != exitOK {
				t.Errorf("exit %d; stderr:\n%s", code, stderr)
			}
			wantMessages(t, snap, 90, 90, 0, 0)
			if snap.Messages.Altered != 0 {
				t.Errorf("%d payloads altered", snap.Messages.Altered)
			}
		})
	}
}

func TestBenchIdleReportsServerMemory(t *testing.T) {
	srv := newTestServer(t, "serve")
	snap, code, stderr := runBenchTest(t, srv.url, "--mode", "idle", "-c", "20", "--duration", "100ms", "--pid", strconv.Itoa(os.Getpid()))
	if code != exitOK {
		t.Errorf("exit %d; stderr:\n%s", code, stderr)
	}
	if !haveProcStats {
		return
	}
	if snap.Server == nil || snap.Server.RSSBytes <= 0 || snap.Connects.OK != 20 {
		t.Errorf("server %+v, connects %d; want this process's memory and 20 connections", snap.Server, snap.Connects.OK)
	}
}

// TestBenchRampSpreadsConnects: with --ramp, connection i of n starts at
// i/n of the ramp, so opening 4 takes at least 3/4 of it, whatever the
// machine's speed.
func TestBenchRampSpreadsConnects(t *testing.T) {
	srv := newTestServer(t, "echo")
	snap, code, stderr := runBenchTest(t, srv.url, "-c", "4", "--ramp", "400ms", "--messages", "8", "--dial-concurrency", "1")
	if code != exitOK {
		t.Errorf("exit %d; stderr:\n%s", code, stderr)
	}
	if snap.Connects.OK != 4 || snap.Connects.TimeS < 0.3 {
		t.Errorf("%d connects in %.3fs; want 4 spread over at least 300ms", snap.Connects.OK, snap.Connects.TimeS)
	}
}

// TestBenchProgressLine runs with the progress line on, as on a terminal:
// the reporter's goroutine draws it while connections open and send.
func TestBenchProgressLine(t *testing.T) {
	srv := newTestServer(t, "echo")
	cfg := benchConfig{
		urls:            []string{srv.url},
		handshake:       handshakeOptions{header: http.Header{}, connectTimeout: testTimeout},
		mode:            modeEcho,
		conns:           3,
		duration:        3 * progressEvery,
		rate:            300,
		size:            defaultBenchSize,
		op:              websocket.TextMessage,
		dialConcurrency: defaultDialConcurrency,
	}
	var stdout bytes.Buffer
	stderr := new(syncBuffer)
	if err := runBench(context.Background(), cfg, benchOutput{stdout: &stdout, stderr: stderr, progress: true}); err != nil {
		t.Fatalf("runBench: %v\n%s", err, stderr.String())
	}
	if got := stderr.String(); !strings.Contains(got, "\r\033[K") || !strings.Contains(got, "conns 3/3") {
		t.Errorf("stderr %q: want the progress line redrawn", got)
	}
	if strings.Contains(stdout.String(), "\r") {
		t.Errorf("stdout %q: the progress line belongs on stderr", stdout.String())
	}
}

// TestBenchPaceBusy: the poller sleeps after rounds under load only; a
// short round that caught a few echo replies is not load (sleeping after
// it once cut echo round trips to a third).
func TestBenchPaceBusy(t *testing.T) {
	for _, tc := range []struct {
		events    int
		delivered int64
		elapsed   time.Duration
		want      bool
	}{
		{3, 3, 10 * time.Microsecond, false},   // a few replies at once
		{50, 50, 20 * time.Microsecond, false}, // every echo connection in one round
		{paceEvents, paceEvents, 50 * time.Microsecond, true},
		{10, 300, 100 * time.Microsecond, true}, // 300 deliveries in under a period
		{10, 150, 100 * time.Microsecond, false},
		{10, 2000, 5 * time.Millisecond, true}, // 400,000/s
		{10, 500, 5 * time.Millisecond, false}, // 100,000/s
	} {
		if got := paceBusy(tc.events, tc.delivered, tc.elapsed); got != tc.want {
			t.Errorf("paceBusy(%d events, %d deliveries, %v) = %v, want %v", tc.events, tc.delivered, tc.elapsed, got, tc.want)
		}
	}
}

// TestBenchServerMemoryText: a server whose memory shrank during the run
// gets no (negative) figure per connection.
func TestBenchServerMemoryText(t *testing.T) {
	tests := []struct {
		name string
		s    serverReport
		want string
	}{
		{"grew", serverReport{RSSBytes: 30 << 20, RSSPerConnBytes: 2048}, "rss 30.0 MiB, 2.0 KiB added per connection"},
		{"same", serverReport{RSSBytes: 30 << 20}, "rss 30.0 MiB, 0 B added per connection"},
		{"shrank", serverReport{RSSBytes: 30 << 20, RSSPerConnBytes: -100}, "rss 30.0 MiB, less than at the start (it gave memory back): no figure per connection"},
	}
	for _, tt := range tests {
		if got := tt.s.rssText(); got != tt.want {
			t.Errorf("%s: rssText() = %q, want %q", tt.name, got, tt.want)
		}
	}
}
