package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// dialResult is how a wsx dial run ended.
type dialResult struct {
	stdout, stderr string
	code           int
}

// dialInProcess runs "wsx dial ARGS..." through run, so the race detector
// sees the client, with stdin as its input, and waits for it to end.
func dialInProcess(t *testing.T, stdin io.Reader, args ...string) dialResult {
	t.Helper()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(context.Background(), append([]string{"wsx", "dial"}, args...), stdin, &stdout, &stderr)
	}()
	select {
	case code := <-done:
		return dialResult{stdout.String(), stderr.String(), code}
	case <-time.After(testTimeout):
		t.Fatalf("wsx dial %s did not end within %s; stderr:\n%s", strings.Join(args, " "), testTimeout, stderr.String())
	}
	return dialResult{}
}

// dialBinary runs the built wsx binary with args, stdin and extra
// environment variables, and waits for it to end.
func dialBinary(t *testing.T, stdin io.Reader, env []string, args ...string) dialResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, wsxBinary, append([]string{"dial"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &stdout, &stderr
	cmd.Env = append(os.Environ(), env...)
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("wsx dial %s did not end within %s; stderr:\n%s", strings.Join(args, " "), testTimeout, stderr.String())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return dialResult{stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()}
}

// wantExit fails the test unless the run ended with code.
func (r dialResult) wantExit(t *testing.T, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d; stderr:\n%s", r.code, code, r.stderr)
	}
}

// TestDialPipeRoundTrip pipes lines through wsx echo --prefix "" and checks
// that they come back byte for byte: UTF-8, empty lines, a "\r" before the
// newline, a 10 MiB line, and a last line without a newline.
func TestDialPipeRoundTrip(t *testing.T) {
	srv := newTestServer(t, "echo", "--prefix", "", "--max-message-size", "16MiB")
	long := strings.Repeat("0123456789abcdef", 10<<20/16)
	lines := []string{"hello", "", "héllo wörld 🌍", "tab\there", "carriage\r", "", long, "  spaces  "}
	input := strings.Join(lines, "\n") + "\nlast without newline"
	r := dialInProcess(t, strings.NewReader(input), srv.url)
	r.wantExit(t, exitOK)
	want := input + "\n"
	if r.stdout != want {
		t.Errorf("stdout differs from stdin: got %d bytes, want %d", len(r.stdout), len(want))
		for i, got := range strings.Split(r.stdout, "\n") {
			if i < len(lines) && got != lines[i] && len(got) < 100 {
				t.Errorf("line %d = %q, want %q", i+1, got, lines[i])
			}
		}
	}
	if !strings.Contains(r.stderr, "Connection closed (1000 - )") {
		t.Errorf("stderr lacks the close line:\n%s", r.stderr)
	}
}

// TestDialPipeLinesBeforeOpen sends lines that were all piped before the
// server accepted the connection: each arrives once, in order.
func TestDialPipeLinesBeforeOpen(t *testing.T) {
	got := make(chan string, 100)
	release := make(chan struct{})
	url := newPeer(t, func(w http.ResponseWriter, r *http.Request) {
		<-release // hold the handshake until stdin has been read
		c := accept(t, w, r)
		for {
			_, data, err := c.ReadMessage()
			if err != nil {
				close(got)
				return
			}
			got <- string(data)
		}
	})
	in := &notifyReader{r: strings.NewReader("a\nb\nc\n"), eof: release}
	dialInProcess(t, in, url, "--wait", "0").wantExit(t, exitOK)
	var msgs []string
	for m := range got {
		msgs = append(msgs, m)
	}
	if strings.Join(msgs, ",") != "a,b,c" {
		t.Errorf("server received %q, want a, b, c once each", msgs)
	}
}

// notifyReader closes eof when r reaches its end.
type notifyReader struct {
	r    io.Reader
	eof  chan struct{}
	once sync.Once
}

func (n *notifyReader) Read(p []byte) (int, error) {
	k, err := n.r.Read(p)
	if err == io.EOF {
		n.once.Do(func() { close(n.eof) })
	}
	return k, err
}

// TestDialWholeBinaryRoundTrip sends 1 MiB of random bytes as one binary
// message through the built binary and gets them back byte-exact.
func TestDialWholeBinaryRoundTrip(t *testing.T) {
	srv := newTestServer(t, "echo", "--prefix", "", "--max-message-size", "2MiB")
	data := make([]byte, 1<<20)
	rand.Read(data)
	r := dialBinary(t, bytes.NewReader(data), nil, srv.url, "--whole", "--binary", "--raw-binary", "-n", "1")
	r.wantExit(t, exitOK)
	if !bytes.Equal([]byte(r.stdout), data) {
		t.Errorf("got %d bytes back, want the %d sent, byte-exact", len(r.stdout), len(data))
	}
}

// TestDialBinaryOutput checks that received binary messages print as
// base64 lines, or raw with --raw-binary, and that --binary sends binary.
func TestDialBinaryOutput(t *testing.T) {
	types := make(chan int, 10)
	url := newPeer(t, func(w http.ResponseWriter, r *http.Request) {
		c := accept(t, w, r)
		op, data, err := c.ReadMessage()
		if err != nil {
			return
		}
		types <- op
		c.WriteMessage(websocket.BinaryMessage, []byte{0, 1, 2, 0xff, '\n'})
		c.WriteMessage(websocket.TextMessage, data)
		c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
		c.ReadMessage()
	})
	r := dialInProcess(t, strings.NewReader("hi\n"), url, "--binary")
	r.wantExit(t, exitOK)
	if op := <-types; op != websocket.BinaryMessage {
		t.Errorf("--binary sent a message of type %d, want binary", op)
	}
	if want := base64.StdEncoding.EncodeToString([]byte{0, 1, 2, 0xff, '\n'}) + "\nhi\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
	r = dialInProcess(t, strings.NewReader("hi\n"), url, "--raw-binary")
	r.wantExit(t, exitOK)
	if want := "\x00\x01\x02\xff\nhi\n"; r.stdout != want {
		t.Errorf("--raw-binary stdout %q, want %q", r.stdout, want)
	}
}

// TestDialInvalidUTF8Line refuses to send a line that is not UTF-8 as text,
// names the line, and sends nothing from it on.
func TestDialInvalidUTF8Line(t *testing.T) {
	srv := newTestServer(t, "echo", "--prefix", "")
	r := dialInProcess(t, strings.NewReader("good\nbad \xff\nnever\n"), srv.url)
	r.wantExit(t, exitFailure)
	if !strings.Contains(r.stderr, "line 2 is not valid UTF-8") || !strings.Contains(r.stderr, "hint: --binary") {
		t.Errorf("stderr does not name line 2 or give the hint:\n%s", r.stderr)
	}
	if r.stdout != "good\n" {
		t.Errorf("stdout %q, want only the line before the bad one", r.stdout)
	}
}

// TestDialExecute sends the -x messages, commas and all, each once and in
// order, instead of stdin.
func TestDialExecute(t *testing.T) {
	got := make(chan []string, 1)
	url := newPeer(t, func(w http.ResponseWriter, r *http.Request) {
		c := accept(t, w, r)
		var msgs []string
		for {
			_, data, err := c.ReadMessage()
			if err != nil {
				got <- msgs
				return
			}
			msgs = append(msgs, string(data))
		}
	})
	r := dialInProcess(t, strings.NewReader("stdin is not read\n"), url, "-x", "a, b", "--execute", "c", "-x", "d", "--wait", "0")
	r.wantExit(t, exitOK)
	if msgs := <-got; strings.Join(msgs, "|") != "a, b|c|d" {
		t.Errorf("server received %q, want a, b|c|d", msgs)
	}
	r = dialInProcess(t, strings.NewReader(""), url, "--binary", "-x", "\xff\x00,", "-x", "", "--wait", "0")
	r.wantExit(t, exitOK)
	if msgs := <-got; len(msgs) != 2 || msgs[0] != "\xff\x00," || msgs[1] != "" {
		t.Errorf("server received %q, want the two binary -x messages byte-exact", msgs)
	}
}

// TestDialExecuteAndCount exits after -n replies.
func TestDialExecuteAndCount(t *testing.T) {
	srv := newTestServer(t, "echo", "--prefix", "")
	r := dialInProcess(t, strings.NewReader(""), srv.url, "-x", "a, b", "-x", "c", "-n", "2")
	r.wantExit(t, exitOK)
	if r.stdout != "a, b\nc\n" {
		t.Errorf("stdout %q, want the two -x messages back", r.stdout)
	}
}

// TestDialCountStopsEarly exits after -n messages even though the server
// goes on sending.
func TestDialCountStopsEarly(t *testing.T) {
	url := newPeer(t, func(w http.ResponseWriter, r *http.Request) {
		c := accept(t, w, r)
		go c.ReadMessage() // answers the client's close
		for {
			if c.WriteMessage(websocket.TextMessage, []byte("tick")) != nil {
				return
			}
			time.Sleep(time.Millisecond)
		}
	})
	r := dialInProcess(t, strings.NewReader(""), url, "-n", "3")
	r.wantExit(t, exitOK)
	if r.stdout != "tick\ntick\ntick\n" {
		t.Errorf("stdout %q, want exactly 3 messages", r.stdout)
	}
}

// TestDialWaitAfterLastMessage keeps reading while messages keep coming:
// --wait counts from the last message, not from the end of the input.
func TestDialWaitAfterLastMessage(t *testing.T) {
	const n = 10
	url := newPeer(t, func(w http.ResponseWriter, r *http.Request) {
		c := accept(t, w, r)
		for i := 0; i < n; i++ {
			time.Sleep(50 * time.Millisecond) // well inside --wait
			if c.WriteMessage(websocket.TextMessage, []byte("m")) != nil {
				return
			}
		}
		c.ReadMessage()
	})
	r := dialInProcess(t, strings.NewReader(""), url, "--wait", "500ms")
	r.wantExit(t, exitOK)
	if got := strings.Count(r.stdout, "m\n"); got != n {
		t.Errorf("got %d messages, want all %d: --wait must restart with each message", got, n)
	}
}

// TestDialWaitZeroAndForever: --wait 0 closes as soon as the input is
// sent; --wait -1 waits until the server closes.
func TestDialWaitZeroAndForever(t *testing.T) {
	closes := make(chan int, 1)
	silent := newPeer(t, func(w http.ResponseWriter, r *http.Request) {
		c := accept(t, w, r)
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					closes <- ce.Code
				}
				close(closes)
				return
			}
		}
	})
	dialInProcess(t, strings.NewReader("x\n"), silent, "--wait", "0").wantExit(t, exitOK)
	if code := <-closes; code != websocket.CloseNormalClosure {
		t.Errorf("server saw close %d, want 1000", code)
	}

	late := newPeer(t, func(w http.ResponseWriter, r *http.Request) {
		c := accept(t, w, r)
		time.Sleep(1500 * time.Millisecond) // longer than the default --wait
		c.WriteMessage(websocket.TextMessage, []byte("late"))
		c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "done"))
		c.ReadMessage()
	})
	r := dialInProcess(t, strings.NewReader(""), late, "--wait", "-1")
	r.wantExit(t, exitOK)
	if r.stdout != "late\n" {
		t.Errorf("stdout %q, want the message sent after 1.5s", r.stdout)
	}
	if !strings.Contains(r.stderr, "Connection closed (1001 - done)") {
		t.Errorf("stderr lacks the server's close:\n%s", r.stderr)
	}
}

// TestDialFlushesPromptly reads each reply on stdout while wsx dial is
// still running: output is not held back until exit.
func TestDialFlushesPromptly(t *testing.T) {
	srv := newTestServer(t, "echo", "--prefix", "")
	p := startWSX(t, "dial", srv.url, "--wait", "-1")
	lines := p.lines()
	for _, msg := range []string{"first", "second"} {
		io.WriteString(p.stdin, msg+"\n")
		select {
		case l := <-lines:
			if l != msg {
				t.Fatalf("got %q, want %q", l, msg)
			}
		case <-time.After(testTimeout):
			t.Fatalf("%q not on stdout while the connection is open", msg)
		}
	}
}
