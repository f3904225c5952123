package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/gorilla/websocket"
)

// benchSnapshot is a run's results, rendered as text or as JSON. Its JSON
// field names are the schema README documents; times are in
// microseconds where a field says _us, seconds where it says _s.
type benchSnapshot struct {
	Mode        string           `json:"mode"`
	URLs        []string         `json:"urls"`
	Conns       int              `json:"conns"`
	Publishers  int              `json:"publishers"`
	Size        int              `json:"size"`
	Binary      bool             `json:"binary"`
	ClosedLoop  bool             `json:"closed_loop"`
	Interrupted bool             `json:"interrupted"`
	Connects    connectsReport   `json:"connects"`
	Rate        rateReport       `json:"rate"`
	Messages    messagesReport   `json:"messages"`
	Throughput  throughputReport `json:"throughput"`
	Latency     latencyReport    `json:"latency_us"`
	Closes      map[string]int64 `json:"closes"`
	Errors      map[string]int64 `json:"errors"`
	CPU         cpuReport        `json:"cpu"`
	Server      *serverReport    `json:"server,omitempty"`
	ExitCode    int              `json:"exit_code"`

	firstFailure string // the first failed connect, explained
	startErr     error
	maxErrors    int
}

type connectsReport struct {
	OK        int64            `json:"ok"`
	Failed    int64            `json:"failed"`
	Failures  map[string]int64 `json:"failures"` // by cause: refused, timeout, http NNN, tls, dns, reset, other
	TimeS     float64          `json:"time_s"`
	PerSecond float64          `json:"per_s"`
	Latency   percentiles      `json:"latency_us"`
}

type rateReport struct {
	TargetPerS   float64 `json:"target_per_s"` // 0: closed loop
	AchievedPerS float64 `json:"achieved_per_s"`
	SendTimeS    float64 `json:"send_time_s"`
}

type messagesReport struct {
	Sent       int64 `json:"sent"`
	Expected   int64 `json:"expected"` // deliveries: sent, times the subscribers in broadcast mode
	Received   int64 `json:"received"`
	Lost       int64 `json:"lost"`
	Duplicated int64 `json:"duplicated"`
	OutOfOrder int64 `json:"out_of_order"`
	Altered    int64 `json:"altered"`
	Stray      int64 `json:"stray"`
	Other      int64 `json:"other"` // messages without a marker: welcomes, presence, history
}

type throughputReport struct {
	DeliveriesPerS float64 `json:"deliveries_per_s"`
	BytesPerS      float64 `json:"bytes_per_s"`
}

type latencyReport struct {
	Corrected   percentiles `json:"corrected"`   // from the intended send time
	Uncorrected percentiles `json:"uncorrected"` // from the actual send time
}

type percentiles struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

type cpuReport struct {
	BenchS           float64 `json:"bench_s"`
	BenchPercent     float64 `json:"bench_percent"` // of one core, over the run
	PerDeliveryUS    float64 `json:"per_delivery_us"`
	MachineCPUs      int     `json:"machine_cpus"`
	MachineBusyShare float64 `json:"machine_busy_percent"` // of all cores, over the run, where known
}

type serverReport struct {
	PID              int     `json:"pid"`
	CPUS             float64 `json:"cpu_s"`
	CPUPerDeliveryUS float64 `json:"cpu_per_delivery_us"`
	RSSBytes         int64   `json:"rss_bytes"`
	RSSPerConnBytes  float64 `json:"rss_added_per_conn_bytes"`
}

// newSnapshot computes a run's results.
func newSnapshot(run *benchRun, res runResult, s benchStats) *benchSnapshot {
	cfg := run.cfg
	snap := &benchSnapshot{
		Mode: cfg.mode, URLs: cfg.urls, Conns: cfg.conns, Size: cfg.size, Binary: cfg.op == websocket.BinaryMessage,
		ClosedLoop: run.closedLoop && (cfg.mode == modeEcho || cfg.mode == modeBroadcast), Interrupted: res.interrupted,
		Closes: map[string]int64{}, Errors: s.errors,
		firstFailure: s.firstFailure, startErr: res.startErr, maxErrors: cfg.maxErrors,
	}
	if cfg.mode == modeBroadcast {
		snap.Publishers = cfg.publishers
	}
	for code, n := range s.closes {
		snap.Closes[strconv.Itoa(code)] = n
	}
	snap.Connects = connectsReport{OK: s.connectsOK, Failures: s.connectFailures,
		TimeS: res.connectTime.Seconds(), Latency: percentilesOf(s.connect)}
	for _, n := range s.connectFailures {
		snap.Connects.Failed += n
	}
	if res.connectTime > 0 {
		snap.Connects.PerSecond = float64(s.connectsOK) / res.connectTime.Seconds()
	}
	secs := res.sendTime.Seconds()
	snap.Rate = rateReport{TargetPerS: cfg.rate, SendTimeS: secs}
	snap.Messages = messagesReport{Sent: res.sent, Expected: res.expected, Received: s.received,
		Lost: max(res.expected-s.received, 0), Duplicated: s.duplicated, OutOfOrder: s.outOfOrder,
		Altered: s.altered, Stray: s.stray, Other: s.other}
	if secs > 0 {
		snap.Rate.AchievedPerS = float64(res.sent) / secs
		snap.Throughput = throughputReport{DeliveriesPerS: float64(s.received) / secs,
			BytesPerS: float64(s.received) * float64(cfg.size) / secs}
	}
	snap.Latency = latencyReport{Corrected: percentilesOf(s.corrected), Uncorrected: percentilesOf(s.uncorrected)}
	wall := time.Since(res.started)
	snap.CPU = cpuReport{BenchS: res.selfCPU.Seconds(), BenchPercent: 100 * res.selfCPU.Seconds() / wall.Seconds(),
		MachineCPUs: res.span.cpus}
	if res.spanLength >= minBusySpan {
		snap.CPU.MachineBusyShare = 100 * res.span.machineBusy()
	}
	deliveries := s.received
	if cfg.mode == modeConnect || cfg.mode == modeIdle {
		deliveries = 0
	}
	if deliveries > 0 {
		snap.CPU.PerDeliveryUS = res.spanCPU.Seconds() * 1e6 / float64(deliveries)
	}
	if cfg.pid > 0 {
		sr := &serverReport{PID: cfg.pid, CPUS: res.span.cpu.Seconds(), RSSBytes: res.server.rss}
		if deliveries > 0 {
			sr.CPUPerDeliveryUS = sr.CPUS * 1e6 / float64(deliveries)
		}
		if n := run.opened.Load(); n > 0 {
			sr.RSSPerConnBytes = float64(res.server.rssAdded) / float64(n)
		}
		snap.Server = sr
	}
	snap.ExitCode = snap.exitCode()
	return snap
}

// exitCode is the code main's run gives snap.err(): 1 when the run could
// not start, 3 for an abnormalError, else 0 (bench cannot use main's
// constants: layers_test.go).
func (snap *benchSnapshot) exitCode() int {
	var ae *abnormalError
	switch err := snap.err(); {
	case err == nil:
		return 0
	case errors.As(err, &ae):
		return 3
	}
	return 1
}

// minBusySpan is the shortest span over which the machine's busy share is
// reported: /proc/stat counts in 10 ms ticks.
const minBusySpan = time.Second

// busyMachine is the share of all CPUs, in percent, above which the
// results come with a note that the machine was the limit.
const busyMachine = 90

// percentilesOf reads the percentiles of h, in microseconds.
func percentilesOf(h *hdrhistogram.Histogram) percentiles {
	if h.TotalCount() == 0 {
		return percentiles{}
	}
	us := func(v int64) float64 { return float64(v) / 1e3 }
	return percentiles{P50: us(h.ValueAtQuantile(50)), P90: us(h.ValueAtQuantile(90)), P99: us(h.ValueAtQuantile(99)),
		P999: us(h.ValueAtQuantile(99.9)), Max: us(h.Max()), Mean: h.Mean() / 1e3}
}

// err is the error that decides the exit code: 1 when the run could not
// start, 3 when deliveries were lost or more connects failed than
// --max-errors allows.
func (snap *benchSnapshot) err() error {
	switch {
	case snap.startErr != nil:
		return fmt.Errorf("could not start: %w", snap.startErr)
	case snap.Connects.Failed > int64(snap.maxErrors):
		return &abnormalError{fmt.Errorf("%d connects failed (--%s %d)", snap.Connects.Failed, flagMaxErrors, snap.maxErrors)}
	case snap.Messages.Lost > 0:
		return &abnormalError{fmt.Errorf("%d of %d deliveries lost", snap.Messages.Lost, snap.Messages.Expected)}
	}
	return nil
}

// verdict writes what explains a failure to w and returns the error.
func (snap *benchSnapshot) verdict(w io.Writer) error {
	if snap.CPU.MachineBusyShare >= busyMachine {
		fmt.Fprintf(w, "note: the machine was %.0f%% busy (bench used %.0f%% of a core): bench and the server share its %d CPUs, so the figures are bounded by the machine as much as by the server\n",
			snap.CPU.MachineBusyShare, snap.CPU.BenchPercent, snap.CPU.MachineCPUs)
	}
	if snap.firstFailure != "" {
		fmt.Fprintf(w, "Could not connect (the first of %d): %s\n", snap.Connects.Failed, snap.firstFailure)
	}
	return snap.err()
}

// write writes the results to w, as text or as one JSON object.
func (snap *benchSnapshot) write(w io.Writer, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(snap)
	}
	var b strings.Builder
	snap.writeText(&b)
	_, err := io.WriteString(w, b.String())
	return err
}

// writeText renders the results as aligned lines.
func (snap *benchSnapshot) writeText(b *strings.Builder) {
	line := func(label, format string, args ...any) {
		fmt.Fprintf(b, "%-12s %s\n", label, fmt.Sprintf(format, args...))
	}
	kind := "text"
	if snap.Binary {
		kind = "binary"
	}
	loop := fmt.Sprintf("open loop at %s/s", num(snap.Rate.TargetPerS))
	if snap.ClosedLoop {
		loop = "closed loop"
	}
	urls := strings.Join(snap.URLs, " ")
	switch snap.Mode {
	case modeConnect: // no messages, and --conns is not used
		pace := "as fast as they complete"
		if snap.Rate.TargetPerS > 0 {
			pace = fmt.Sprintf("%s/s", num(snap.Rate.TargetPerS))
		}
		line("bench", "connect, handshakes to %s, %s", urls, pace)
	case modeIdle:
		line("bench", "idle, %d connection%s to %s, held without messages", snap.Conns, plural(int64(snap.Conns)), urls)
	default:
		line("bench", "%s, %d connection%s to %s, %s, %d-byte %s messages", snap.Mode, snap.Conns, plural(int64(snap.Conns)), urls, loop, snap.Size, kind)
	}
	if snap.Interrupted {
		line("", "interrupted: the results so far")
	}
	c := snap.Connects
	line("connects", "%d ok, %d failed in %s (%s/s); latency %s", c.OK, c.Failed, secs(c.TimeS), num(c.PerSecond), c.Latency.short())
	if c.Failed > 0 {
		line("failures", "%s", joinCounts(c.Failures))
	}
	if snap.Mode == modeEcho || snap.Mode == modeBroadcast {
		m := snap.Messages
		if snap.ClosedLoop {
			line("rate", "closed loop, achieved %s/s over %s", num(snap.Rate.AchievedPerS), secs(snap.Rate.SendTimeS))
		} else {
			line("rate", "target %s/s, achieved %s/s over %s", num(snap.Rate.TargetPerS), num(snap.Rate.AchievedPerS), secs(snap.Rate.SendTimeS))
		}
		line("messages", "sent %d, expected %d deliveries, received %d, lost %d, duplicated %d, out of order %d",
			m.Sent, m.Expected, m.Received, m.Lost, m.Duplicated, m.OutOfOrder)
		if m.Altered+m.Stray+m.Other > 0 {
			line("", "altered %d, stray %d, other messages (no marker) %d", m.Altered, m.Stray, m.Other)
		}
		line("throughput", "%s deliveries/s, %s/s", num(snap.Throughput.DeliveriesPerS), bytesOf(snap.Throughput.BytesPerS))
		line("latency", "corrected   %s", snap.Latency.Corrected.long())
		line("", "uncorrected %s", snap.Latency.Uncorrected.long())
	}
	if len(snap.Closes) > 0 {
		line("closes", "%s", joinCounts(snap.Closes))
	}
	if len(snap.Errors) > 0 {
		line("errors", "%s", joinCounts(snap.Errors))
	}
	cpu := fmt.Sprintf("bench %s (%.0f%% of a core)", secs(snap.CPU.BenchS), snap.CPU.BenchPercent)
	if snap.CPU.PerDeliveryUS > 0 {
		cpu += fmt.Sprintf(", %.3f µs per delivery while sending", snap.CPU.PerDeliveryUS)
	}
	if snap.CPU.MachineBusyShare > 0 {
		cpu += fmt.Sprintf("; machine %.0f%% busy (%d CPUs)", snap.CPU.MachineBusyShare, snap.CPU.MachineCPUs)
	}
	line("cpu", "%s", cpu)
	if s := snap.Server; s != nil {
		srv := fmt.Sprintf("pid %d: cpu %s", s.PID, secs(s.CPUS))
		if s.CPUPerDeliveryUS > 0 {
			srv += fmt.Sprintf(", %.3f µs per delivery", s.CPUPerDeliveryUS)
		}
		srv += "; " + s.rssText()
		line("server", "%s", srv)
	}
}

// rssText is the server's memory: its resident size, and what each
// connection added, unless it shrank during the run (it gave memory back to
// the system), when a figure per connection would be negative.
func (s *serverReport) rssText() string {
	if s.RSSPerConnBytes < 0 {
		return fmt.Sprintf("rss %s, less than at the start (it gave memory back): no figure per connection", bytesOf(float64(s.RSSBytes)))
	}
	return fmt.Sprintf("rss %s, %s added per connection", bytesOf(float64(s.RSSBytes)), bytesOf(s.RSSPerConnBytes))
}

func (p percentiles) short() string {
	return fmt.Sprintf("p50 %s p99 %s max %s", usOf(p.P50), usOf(p.P99), usOf(p.Max))
}

func (p percentiles) long() string {
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s", usOf(p.P50), usOf(p.P90), usOf(p.P99), usOf(p.P999), usOf(p.Max))
}

// usOf renders microseconds as a rounded duration.
func usOf(us float64) string {
	d := time.Duration(us * 1e3)
	switch {
	case d >= 100*time.Millisecond:
		d = d.Round(time.Millisecond)
	case d >= time.Millisecond:
		d = d.Round(10 * time.Microsecond)
	default:
		d = d.Round(time.Microsecond)
	}
	return d.String()
}

func secs(s float64) string { return usOf(s * 1e6) }

// num renders a rate with at most one decimal.
func num(f float64) string {
	if f >= 100 || f == float64(int64(f)) {
		return strconv.FormatFloat(f, 'f', 0, 64)
	}
	return strconv.FormatFloat(f, 'f', 1, 64)
}

// bytesOf renders a byte count in binary units.
func bytesOf(n float64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", n/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", n/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", n/(1<<10))
	}
	return fmt.Sprintf("%.0f B", n)
}

// joinCounts renders counts by key, sorted: "refused 3, timeout 1".
func joinCounts[K comparable](m map[K]int64) string {
	parts := make([]string, 0, len(m))
	for k, n := range m {
		parts = append(parts, fmt.Sprintf("%v %d", k, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// createFile creates (or truncates) a results file.
func createFile(name string) (*os.File, error) {
	return os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
}

// writeHdrLog writes the latency histograms, corrected then uncorrected,
// as one interval each of an HdrHistogram log (values in nanoseconds, as
// HdrHistogram's log tools expect).
func writeHdrLog(w io.Writer, run *benchRun, s benchStats) error {
	lw := hdrhistogram.NewHistogramLogWriter(w)
	startMs := run.base.UnixMilli()
	endMs := time.Now().UnixMilli()
	lw.SetBaseTime(startMs)
	if err := lw.OutputLogFormatVersion(); err != nil {
		return err
	}
	lw.OutputComment(fmt.Sprintf("wsx bench %s %s: latency in nanoseconds; Tag=corrected from the intended send time, Tag=uncorrected from the actual send", run.cfg.mode, strings.Join(run.cfg.urls, " ")))
	lw.OutputStartTime(startMs)
	lw.OutputBaseTime(startMs)
	lw.OutputLegend()
	for _, h := range []struct {
		tag  string
		hist *hdrhistogram.Histogram
	}{{"corrected", s.corrected}, {"uncorrected", s.uncorrected}} {
		h.hist.SetTag(h.tag)
		h.hist.SetStartTimeMs(startMs)
		h.hist.SetEndTimeMs(endMs)
		if err := lw.OutputIntervalHistogram(h.hist); err != nil {
			return err
		}
	}
	return nil
}
