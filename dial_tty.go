package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/gorilla/websocket"
	"golang.org/x/term"
)

// Interactive mode: wsx dial with stdin and stdout at a terminal.

// prompt is shown before the line being typed.
const prompt = "> "

// promptHelp is what /help prints.
const promptHelp = `Type a message and press Enter to send it. Commands:
  /ping [data]             send a ping
  /pong [data]             send an unsolicited pong
  /close [code [reason]]   close the connection (default 1000) and exit
  /binary HEX              send a binary message, e.g. /binary 48 69 or /binary 4869
  /base64 DATA             send a binary message given in base64
  /quit                    close with 1000 and exit (so do Ctrl-D and Ctrl-C)
  /help                    show this
  //text                   send "/text": a leading // stands for /`

// interactive runs wsx dial at a terminal: a "> " prompt with line editing
// and history kept across runs, messages printed above the prompt without
// breaking the line being typed, and slash commands.
func interactive(ctx context.Context, cfg dialConfig, o logOptions, stdin, stdout *os.File) error {
	queue := make(chan outgoing, queueLen)
	quit := make(chan struct{})
	stop := make(chan struct{})
	defer close(stop)
	cl := newDialClient(cfg, o.logger(), queue, nil)
	cl.quit = quit
	// Connect before the terminal goes raw, so that Ctrl-C still interrupts
	// a slow connection attempt.
	ws, resp, err := cl.dial(ctx)
	if err != nil {
		return err
	}
	fd := int(stdin.Fd())
	saved, err := term.MakeRaw(fd)
	if err != nil {
		ws.Close()
		return fmt.Errorf("terminal: %w", err)
	}
	defer term.Restore(fd, saved)
	t := term.NewTerminal(struct {
		io.Reader
		io.Writer
	}{stdin, stdout}, prompt)
	stopResize := followSize(t, int(stdout.Fd()))
	defer stopResize()
	hist, err := openPromptHistory(promptHistoryPath())
	if err != nil {
		fmt.Fprintf(t, "History is not kept: %v\n", err)
	}
	defer hist.close()
	t.History = hist

	out := &ttyOut{t: t, w: stdout}
	if isTerminal(o.stderr) {
		// Log lines go through the terminal too, so they print above the prompt.
		o.stderr = out
		cl.log = o.logger()
	}
	var colors ttyColors
	if o.color {
		colors = ttyColors{message: string(t.Escape.Cyan), control: string(t.Escape.Magenta), reset: string(t.Escape.Reset)}
	}
	f := ttyFormat(colors, cfg.timestamps)
	if cfg.jsonl {
		f = jsonFormat
	}
	cl.out = newPrinter(out, f)
	cl.greeting = "Type a message and press Enter to send it; /help lists the commands; Ctrl-D quits"
	go readTerminal(t, out, queue, quit, stop)
	err = cl.serve(ctx, ws, resp)
	if perr := cl.out.close(); err == nil {
		err = perr
	}
	if !out.detach() {
		fmt.Fprint(stdout, "\r\x1b[K") // erase the prompt drawn after the last line
	}
	return err
}

// ttyOut is where output goes at the prompt: through the terminal, so that
// lines print above the line being typed, until the user quits; from then
// on straight to the terminal, so that the prompt is not drawn again.
type ttyOut struct {
	t *term.Terminal
	w io.Writer // the terminal's file

	mu     sync.Mutex
	direct bool
}

func (o *ttyOut) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.direct {
		return o.t.Write(p)
	}
	// In raw mode a newline does not return the carriage.
	if _, err := o.w.Write(bytes.ReplaceAll(p, []byte("\n"), []byte("\r\n"))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// detach stops writing through the terminal and reports whether it had
// already stopped.
func (o *ttyOut) detach() (was bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	was, o.direct = o.direct, true
	return was
}

// followSize keeps the terminal's idea of its width current, so line
// editing wraps correctly. The returned function stops it.
func followSize(t *term.Terminal, fd int) func() {
	var width, height int
	resize := func() {
		// A terminal that reports no size (some containers, emacs) keeps
		// x/term's 80 columns: a width of 0 would wrap every character.
		if w, h, err := term.GetSize(fd); err == nil && w > 0 && h > 0 && (w != width || h != height) {
			width, height = w, h
			t.SetSize(w, h)
		}
	}
	resize()
	return watchResize(resize)
}

// readTerminal reads the lines typed at the prompt and sends what they ask
// for on queue, until Ctrl-D, Ctrl-C, /quit or /close. Then it stops the
// prompt, queues the close, closes quit (so a reconnection in progress
// stops) and closes queue.
func readTerminal(t *term.Terminal, out *ttyOut, queue chan<- outgoing, quit chan<- struct{}, stop <-chan struct{}) {
	defer close(queue)
	defer close(quit)
	for {
		line, err := t.ReadLine()
		if errors.Is(err, term.ErrPasteIndicator) {
			err = nil // a pasted line is sent like a typed one
		}
		if err != nil { // io.EOF: Ctrl-D on an empty line, or Ctrl-C
			out.detach()
			fmt.Fprintln(out) // keep what was typed, as a shell does
			send(queue, stop, outgoing{op: websocket.CloseMessage, code: websocket.CloseNormalClosure})
			return
		}
		m, ok, reply := parseInput(line)
		if reply != "" {
			fmt.Fprintln(out, reply)
		}
		if !ok {
			continue
		}
		if m.op == websocket.CloseMessage {
			out.detach()
		}
		if send(queue, stop, m) != nil || m.op == websocket.CloseMessage {
			return
		}
	}
}

// parseInput turns a line typed at the prompt into what to send. A line
// that starts with "/" is a command, and "//" stands for a literal "/". ok
// is false when there is nothing to send; reply is then what to print, the
// help or an error. An empty line sends nothing.
func parseInput(line string) (m outgoing, ok bool, reply string) {
	if line == "" {
		return m, false, ""
	}
	if !strings.HasPrefix(line, "/") {
		return outgoing{op: websocket.TextMessage, data: []byte(line)}, true, ""
	}
	if strings.HasPrefix(line, "//") {
		return outgoing{op: websocket.TextMessage, data: []byte(line[1:])}, true, ""
	}
	cmd, arg, _ := strings.Cut(line[1:], " ")
	switch cmd {
	case "ping", "pong":
		if len(arg) > maxControlPayload {
			return m, false, fmt.Sprintf("/%s: the data is %d bytes; a control frame carries at most %d", cmd, len(arg), maxControlPayload)
		}
		op := websocket.PingMessage
		if cmd == "pong" {
			op = websocket.PongMessage
		}
		return outgoing{op: op, data: []byte(arg)}, true, ""
	case "close":
		return parseClose(arg)
	case "quit":
		return outgoing{op: websocket.CloseMessage, code: websocket.CloseNormalClosure}, true, ""
	case "binary":
		data, err := hex.DecodeString(strings.Join(strings.Fields(arg), ""))
		if err != nil {
			return m, false, fmt.Sprintf("/binary: %v: want hex digits, e.g. /binary 48 69", err)
		}
		return outgoing{op: websocket.BinaryMessage, data: data}, true, ""
	case "base64":
		data, err := decodeBase64(strings.TrimSpace(arg))
		if err != nil {
			return m, false, fmt.Sprintf("/base64: %v", err)
		}
		return outgoing{op: websocket.BinaryMessage, data: data}, true, ""
	case "help":
		return m, false, promptHelp
	}
	return m, false, fmt.Sprintf("Unknown command /%s: /help lists the commands; //%s sends %q", cmd, line[1:], line)
}

// parseClose parses the arguments of /close: [code [reason]].
func parseClose(arg string) (outgoing, bool, string) {
	m := outgoing{op: websocket.CloseMessage, code: websocket.CloseNormalClosure}
	codeText, reason, _ := strings.Cut(strings.TrimLeft(arg, " "), " ")
	if codeText == "" {
		return m, true, ""
	}
	code, err := strconv.Atoi(codeText)
	if err != nil || !sendableCloseCode(code) {
		return m, false, fmt.Sprintf("/close: %q is not a close code wsx can send: 1000-1003, 1007-1014 or 3000-4999", codeText)
	}
	if len(reason) > maxControlPayload-2 {
		return m, false, fmt.Sprintf("/close: the reason is %d bytes; a close frame carries at most %d", len(reason), maxControlPayload-2)
	}
	m.code, m.data = code, []byte(reason)
	return m, true, ""
}

// sendableCloseCode reports whether code may be sent in a close frame
// (RFC 6455 section 7.4; 1004-1006 and 1015 are reserved).
func sendableCloseCode(code int) bool {
	return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999)
}

// decodeBase64 accepts standard and URL-safe base64, padded or not.
func decodeBase64(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if data, err := enc.DecodeString(s); err == nil {
			return data, nil
		}
	}
	return nil, fmt.Errorf("%q is not base64", s)
}
