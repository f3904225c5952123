package main

import (
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/gorilla/websocket"
)

func TestParseInput(t *testing.T) {
	tests := []struct {
		line  string
		op    int // 0: nothing sent
		data  string
		code  int
		reply string // in the reply printed, if any
	}{
		{line: "hello", op: websocket.TextMessage, data: "hello"},
		{line: "  spaced  ", op: websocket.TextMessage, data: "  spaced  "},
		{line: ""},
		{line: "//etc/passwd", op: websocket.TextMessage, data: "/etc/passwd"},
		{line: "/ping", op: websocket.PingMessage, data: ""},
		{line: "/ping are you there", op: websocket.PingMessage, data: "are you there"},
		{line: "/pong x", op: websocket.PongMessage, data: "x"},
		{line: "/ping " + strings.Repeat("p", 126), reply: "at most 125"},
		{line: "/close", op: websocket.CloseMessage, code: 1000},
		{line: "/close 4000", op: websocket.CloseMessage, code: 4000},
		{line: "/close 4000 bye now", op: websocket.CloseMessage, code: 4000, data: "bye now"},
		{line: "/close 1006", reply: "not a close code"},
		{line: "/close soon", reply: "not a close code"},
		{line: "/close 1000 " + strings.Repeat("r", 124), reply: "at most 123"},
		{line: "/quit", op: websocket.CloseMessage, code: 1000},
		{line: "/binary 48 69 0a", op: websocket.BinaryMessage, data: "Hi\n"},
		{line: "/binary 4869", op: websocket.BinaryMessage, data: "Hi"},
		{line: "/binary 4g", reply: "/binary"},
		{line: "/base64 SGk=", op: websocket.BinaryMessage, data: "Hi"},
		{line: "/base64 SGk", op: websocket.BinaryMessage, data: "Hi"},
		{line: "/base64 -_8", op: websocket.BinaryMessage, data: "\xfb\xff"},
		{line: "/base64 !!", reply: "not base64"},
		{line: "/help", reply: "/close [code [reason]]"},
		{line: "/nope x", reply: "Unknown command /nope"},
	}
	for _, tt := range tests {
		m, ok, reply := parseInput(tt.line)
		if ok != (tt.op != 0) || (ok && (m.op != tt.op || string(m.data) != tt.data || m.code != tt.code)) {
			t.Errorf("parseInput(%q) = op %d %q code %d, ok %v; want op %d %q code %d", tt.line, m.op, m.data, m.code, ok, tt.op, tt.data, tt.code)
		}
		if !strings.Contains(reply, tt.reply) || (tt.reply == "" && reply != "") {
			t.Errorf("parseInput(%q) replies %q, want %q", tt.line, reply, tt.reply)
		}
	}
}

func TestTTYFormat(t *testing.T) {
	f := ttyFormat(ttyColors{message: "<C>", control: "<P>", reset: "<R>"}, false)
	tests := []struct {
		e    event
		want string
	}{
		{event{kind: evMessage, op: websocket.TextMessage, data: []byte("hi\tthere\nline 2")}, "<C>< hi\tthere\nline 2<R>\n"},
		{event{kind: evMessage, op: websocket.TextMessage, data: []byte("\x1b[2Jgone\x07\u0085")}, `<C>< \x1b[2Jgone\x07\u0085<R>` + "\n"},
		{event{kind: evMessage, op: websocket.BinaryMessage, data: []byte{0xde, 0xad, 0xbe, 0xef}}, "<C>< [binary 4 bytes] deadbeef<R>\n"},
		{event{kind: evPing, data: []byte("hb")}, "<P>< [ping] hb<R>\n"},
		{event{kind: evClose, code: 1000}, ""},
	}
	for _, tt := range tests {
		if got := string(f(nil, tt.e)); got != tt.want {
			t.Errorf("ttyFormat(%s %q) = %q, want %q", tt.e.kind, tt.e.data, got, tt.want)
		}
	}
}

func TestHistory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "wsx", "history")
	h, err := openPromptHistory(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"one", "", "two", "two", "three"} {
		h.Add(line)
	}
	h.close()
	if h.Len() != 3 || h.At(0) != "three" || h.At(2) != "one" {
		t.Errorf("history %q, want one two three, most recent first", h.entries)
	}
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("history file: %v, mode %v; want private to the user", err, info)
	}
	h, err = openPromptHistory(path)
	if err != nil || strings.Join(h.entries, ",") != "one,two,three" {
		t.Errorf("reopened history %q, %v", h.entries, err)
	}
	for i := 0; i < promptHistoryMax+10; i++ {
		h.Add(strings.Repeat("x", i%7) + "y")
	}
	h.close()
	if h.Len() != promptHistoryMax {
		t.Errorf("history holds %d lines, want at most %d", h.Len(), promptHistoryMax)
	}
	h, _ = openPromptHistory(path)
	defer h.close()
	data, _ := os.ReadFile(path)
	if h.Len() != promptHistoryMax || strings.Count(string(data), "\n") != promptHistoryMax {
		t.Errorf("reopened: %d lines, file %d lines; want the file cut to %d", h.Len(), strings.Count(string(data), "\n"), promptHistoryMax)
	}
}

// ttyProc is the wsx binary running under a pseudo-terminal.
type ttyProc struct {
	cmd  *exec.Cmd
	pty  *os.File
	out  *syncBuffer
	mark int // expect looks past this point of the output
}

// escapes matches the terminal control sequences x/term writes.
var escapes = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

// startTTY runs wsx with args under a pseudo-terminal for stdin, stdout and
// stderr.
func startTTY(t *testing.T, env []string, args ...string) *ttyProc {
	t.Helper()
	if ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0); err != nil {
		t.Skipf("no pseudo-terminals on this machine (%v): interactive mode is not tested", err)
	} else {
		ptmx.Close()
	}
	cmd := exec.Command(wsxBinary, args...)
	cmd.Env = append(os.Environ(), env...)
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 120})
	if err != nil {
		t.Fatal(err)
	}
	p := &ttyProc{cmd: cmd, pty: f, out: new(syncBuffer)}
	go io.Copy(p.out, f) // ends with EIO when the process exits
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		f.Close()
	})
	return p
}

// expect waits until the screen output, without control sequences, shows
// want after what earlier expects matched.
func (p *ttyProc) expect(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		text := escapes.ReplaceAllString(p.out.String(), "")
		if i := strings.Index(text[min(p.mark, len(text)):], want); i >= 0 {
			p.mark += i + len(want)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("terminal does not show %q after:\n%q\nwhole output: %q", want, text[min(p.mark, len(text)):], p.out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// wait returns the exit code.
func (p *ttyProc) wait(t *testing.T) int {
	t.Helper()
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(testTimeout):
		t.Fatalf("wsx did not exit; terminal:\n%q", p.out.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

// ttyPeer records what a dial at the terminal sends.
type ttyPeer struct {
	conns chan *websocket.Conn
	msgs  chan string
	pings chan string
	close chan *websocket.CloseError
}

func newTTYPeer(t *testing.T) (string, *ttyPeer) {
	p := &ttyPeer{conns: make(chan *websocket.Conn, 1), msgs: make(chan string, 10), pings: make(chan string, 10), close: make(chan *websocket.CloseError, 1)}
	url := newPeer(t, func(w http.ResponseWriter, r *http.Request) {
		c := accept(t, w, r)
		c.SetPingHandler(func(data string) error { p.pings <- data; return nil })
		p.conns <- c
		for {
			_, data, err := c.ReadMessage()
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				p.close <- ce
			}
			if err != nil {
				return
			}
			p.msgs <- string(data)
		}
	})
	return url, p
}

// TestDialInteractive drives wsx dial through a pseudo-terminal: the
// prompt, a message arriving while a line is half typed, slash commands,
// /close 4000 bye; then, in more runs, the history kept across runs, Ctrl-D
// and Ctrl-C.
func TestDialInteractive(t *testing.T) {
	url, peer := newTTYPeer(t)
	env := []string{"XDG_STATE_HOME=" + t.TempDir(), "NO_COLOR=1"}
	p := startTTY(t, env, "dial", url)
	c := next(t, peer.conns, "connection")
	p.expect(t, "Connected to "+url)
	p.expect(t, "> ")
	io.WriteString(p.pty, "hel")
	p.expect(t, "hel")
	c.WriteMessage(websocket.TextMessage, []byte("incoming!"))
	// The message prints on its own line, and the half-typed line comes back.
	p.expect(t, "< incoming!\r\n> hel")
	io.WriteString(p.pty, "lo\r")
	if got := next(t, peer.msgs, "message"); got != "hello" {
		t.Errorf("server received %q, want hello", got)
	}
	io.WriteString(p.pty, "/ping abc\r")
	if got := next(t, peer.pings, "ping"); got != "abc" {
		t.Errorf("server got ping %q, want abc", got)
	}
	io.WriteString(p.pty, "//slash\r/binary 48 69\r")
	if got := next(t, peer.msgs, "message"); got != "/slash" {
		t.Errorf("server received %q, want /slash", got)
	}
	if got := next(t, peer.msgs, "message"); got != "Hi" {
		t.Errorf("server received %q, want Hi", got)
	}
	io.WriteString(p.pty, "/nope\r")
	p.expect(t, "Unknown command /nope")
	io.WriteString(p.pty, "/close 4000 bye\r")
	if ce := next(t, peer.close, "close"); ce.Code != 4000 || ce.Text != "bye" {
		t.Errorf("server got close %d %q, want 4000 bye", ce.Code, ce.Text)
	}
	p.expect(t, "Connection closed (4000 - bye)")
	if code := p.wait(t); code != exitAbnormal {
		t.Errorf("exit code %d after /close 4000, want 3", code)
	}

	// The history survives the run: Up six times is the first line typed.
	p = startTTY(t, env, "dial", url)
	next(t, peer.conns, "connection")
	p.expect(t, "> ")
	io.WriteString(p.pty, strings.Repeat("\x1b[A", 6)+"\r")
	if got := next(t, peer.msgs, "message"); got != "hello" {
		t.Errorf("history recall sent %q, want hello", got)
	}
	io.WriteString(p.pty, "\x04") // Ctrl-D
	if ce := next(t, peer.close, "close"); ce.Code != websocket.CloseNormalClosure {
		t.Errorf("server got close %d after Ctrl-D, want 1000", ce.Code)
	}
	if code := p.wait(t); code != exitOK {
		t.Errorf("exit code %d after Ctrl-D, want 0; terminal:\n%q", code, p.out.String())
	}

	// Ctrl-C with a line half typed quits the same way, keeping the line.
	p = startTTY(t, env, "dial", url)
	next(t, peer.conns, "connection")
	p.expect(t, "> ")
	io.WriteString(p.pty, "never sent")
	p.expect(t, "never sent")
	io.WriteString(p.pty, "\x03")
	if ce := next(t, peer.close, "close"); ce.Code != websocket.CloseNormalClosure {
		t.Errorf("server got close %d after Ctrl-C, want 1000", ce.Code)
	}
	p.expect(t, "\r\nConnection closed (1000 - )") // the line stays
	if code := p.wait(t); code != exitOK {
		t.Errorf("exit code %d after Ctrl-C, want 0", code)
	}
	select {
	case m := <-peer.msgs:
		t.Errorf("the half-typed line %q was sent", m)
	default:
	}
}
