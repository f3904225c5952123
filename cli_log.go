package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/fatih/color"
	"github.com/gorilla/websocket"
	"github.com/mattn/go-isatty"
	"github.com/urfave/cli/v2"
)

// Event names carried by every log record in its "event" attribute, so JSON
// logs can be filtered with jq.
const (
	evStart     = "start"
	evStop      = "stop"
	evOpen      = "open"
	evClose     = "close"
	evMessage   = "message"
	evError     = "error"
	evWarn      = "warning"
	evBackplane = "backplane" // the Redis backplane: connected, lost, back, processes reaped
)

// logOptions are the global output options shared by every command.
type logOptions struct {
	color   bool // colour text logs (stderr is a terminal, no --no-color, no NO_COLOR)
	quiet   bool // log errors only
	verbose bool // log every message
	json    bool // one JSON object per event instead of text
	stderr  io.Writer
	stdout  io.Writer
}

// readLogOptions reads the global flags from wherever they were given:
// before the command name or after it.
func readLogOptions(c *cli.Context) (logOptions, error) {
	o := logOptions{stderr: c.App.ErrWriter, stdout: c.App.Writer}
	format := "text"
	for _, ctx := range c.Lineage() {
		if ctx.Command == nil && ctx.App == nil {
			continue
		}
		o.quiet = o.quiet || ctx.Bool(flagQuiet)
		o.verbose = o.verbose || ctx.Bool(flagVerbose)
		if ctx.IsSet(flagLogFormat) {
			format = ctx.String(flagLogFormat)
		}
	}
	switch format {
	case "text":
	case "json":
		o.json = true
	default:
		return o, usagef("invalid value %q for flag --%s: want text or json", format, flagLogFormat)
	}
	noColor := os.Getenv("NO_COLOR") != ""
	for _, ctx := range c.Lineage() {
		noColor = noColor || ctx.Bool(flagNoColor)
	}
	o.color = !noColor && isTerminal(o.stderr)
	return o, nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// logger returns the slog logger writing to stderr in the chosen format.
// Per-message records are logged at Debug, shown only with --verbose.
func (o logOptions) logger() *slog.Logger {
	level := slog.LevelInfo
	switch {
	case o.quiet:
		level = slog.LevelError
	case o.verbose:
		level = slog.LevelDebug
	}
	if o.json {
		return slog.New(slog.NewJSONHandler(o.stderr, &slog.HandlerOptions{Level: level}))
	}
	return slog.New(&textHandler{w: o.stderr, level: level, color: o.color, mu: new(sync.Mutex)})
}

// textHandler prints each record as the sentence in its message, as the
// Ratchet tutorials do, coloured by event on a terminal. Attributes are for
// the JSON format; the sentence already says what matters.
type textHandler struct {
	w     io.Writer
	level slog.Level
	color bool
	mu    *sync.Mutex // shared by every handler derived with WithAttrs
	event string      // the "event" attribute bound with With, if any
}

// eventColors colour text log lines by event. Colour is enabled on each
// once here: whether to use it is the handler's choice, and enabling it per
// record would write to these shared values from every goroutine.
var eventColors = func() map[string]*color.Color {
	m := map[string]*color.Color{
		evStart: color.New(color.FgCyan, color.Bold),
		evOpen:  color.New(color.FgGreen),
		evClose: color.New(color.FgYellow),
		evError: color.New(color.FgRed),
		evWarn:  color.New(color.FgMagenta),
	}
	for _, c := range m {
		c.EnableColor()
	}
	return m
}()

func (h *textHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *textHandler) Handle(_ context.Context, r slog.Record) error {
	event := h.event
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "event" {
			event = a.Value.String()
			return false
		}
		return true
	})
	if event == "" && r.Level >= slog.LevelError {
		event = evError
	}
	line := r.Message
	if c, ok := eventColors[event]; ok && h.color {
		line = c.Sprint(line)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := fmt.Fprintln(h.w, line)
	return err
}

func (h *textHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	h2 := *h
	for _, a := range attrs {
		if a.Key == "event" {
			h2.event = a.Value.String()
		}
	}
	return &h2
}

func (h *textHandler) WithGroup(string) slog.Handler { return h }

// previewLen is how much of a message a verbose log line shows.
const previewLen = 60

// opName names a message type.
func opName(op int) string {
	if op == websocket.BinaryMessage {
		return "binary"
	}
	return "text"
}

// preview is a short, printable, quoted excerpt of a message for logs:
// text cut at previewLen bytes on a rune boundary, binary as hex.
func preview(op int, data []byte) string {
	if op == websocket.BinaryMessage {
		if len(data) > previewLen/2 {
			return hex.EncodeToString(data[:previewLen/2]) + "..."
		}
		return hex.EncodeToString(data)
	}
	if len(data) <= previewLen {
		return strconv.Quote(string(data))
	}
	cut := previewLen
	for cut > 0 && !utf8.RuneStart(data[cut]) {
		cut--
	}
	return strconv.Quote(string(data[:cut])) + "..."
}

// plural is "s" unless n is 1, for the counts in messages.
func plural(n int64) string {
	if n == 1 {
		return ""
	}
	return "s"
}
