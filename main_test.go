package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// testTimeout bounds every wait in the tests, so a bug fails fast instead
// of hanging.
const testTimeout = 10 * time.Second

// wsxBinary is the wsx binary built once for the end-to-end tests.
var wsxBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wsx-test")
	if err != nil {
		panic(err)
	}
	wsxBinary = filepath.Join(dir, "wsx")
	build := exec.Command("go", "build", "-race", "-o", wsxBinary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		panic("go build: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// startLine matches the start line every server prints on stdout.
var startLine = regexp.MustCompile(`^Server is running on (wss?://\S+)$`)

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testServer is a wsx server running in-process through run, so the race
// detector sees the server code.
type testServer struct {
	url    string      // ws:// or wss:// URL from the start line
	stderr *syncBuffer // the server's log
	stop   func() int  // stops the server and returns its exit code
}

// newTestServer runs "wsx ARGS... --addr 127.0.0.1:0" in-process and waits
// for its start line. The server is stopped when the test ends.
func newTestServer(t testing.TB, args ...string) *testServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	stderr := new(syncBuffer)
	done := make(chan int, 1)
	argv := append(append([]string{"wsx"}, args...), "--addr", "127.0.0.1:0")
	go func() {
		code := run(ctx, argv, strings.NewReader(""), pw, stderr)
		pw.Close()
		done <- code
	}()
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		first := true
		for sc.Scan() {
			if first {
				lines <- sc.Text()
				first = false
			}
		}
		close(lines)
	}()
	var url string
	select {
	case line, ok := <-lines:
		m := startLine.FindStringSubmatch(line)
		if !ok || m == nil {
			cancel()
			t.Fatalf("wsx %s: no start line (got %q); stderr:\n%s", strings.Join(args, " "), line, stderr.String())
		}
		url = m[1]
	case <-time.After(testTimeout):
		cancel()
		t.Fatalf("wsx %s: no start line within %s; stderr:\n%s", strings.Join(args, " "), testTimeout, stderr.String())
	}
	var once sync.Once
	var code int
	stop := func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(testTimeout):
				t.Errorf("server did not stop within %s", testTimeout)
			}
		})
		return code
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("server log:\n%s", stderr.String())
		}
	})
	return &testServer{url: url, stderr: stderr, stop: stop}
}

// dialTest connects a gorilla client to url, failing the test on error. The
// connection is closed when the test ends.
func dialTest(t *testing.T, url string, h http.Header) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(url, h)
	if err != nil {
		status := ""
		if resp != nil {
			status = resp.Status
		}
		t.Fatalf("dial %s: %v %s", url, err, status)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readMsg reads one message with a deadline.
func readMsg(t *testing.T, c *websocket.Conn) (int, []byte) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(testTimeout))
	op, data, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return op, data
}

// expectClose reads until the connection ends and checks the close code.
func expectClose(t *testing.T, c *websocket.Conn, code int) *websocket.CloseError {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(testTimeout))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("read: %v, want close %d", err, code)
		}
		if ce.Code != code {
			t.Fatalf("close code %d (%q), want %d", ce.Code, ce.Text, code)
		}
		return ce
	}
}

// httpURL turns a ws:// URL into its http:// form.
func httpURL(ws string) string {
	return "http" + strings.TrimPrefix(ws, "ws")
}

// wsxProcess is the wsx binary running as a child process.
type wsxProcess struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr *syncBuffer
}

// startWSX starts the built binary and returns once it is running. It is
// killed when the test ends if still running.
func startWSX(t testing.TB, args ...string) *wsxProcess {
	t.Helper()
	return startProcess(t, wsxBinary, args...)
}

// startProcess starts the program at path with pipes for stdin and stdout,
// as startWSX does; benchmarks also run peers such as wscat with it.
func startProcess(t testing.TB, path string, args ...string) *wsxProcess {
	t.Helper()
	cmd := exec.Command(path, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &wsxProcess{cmd: cmd, stdin: stdin, stdout: bufio.NewReaderSize(stdout, 64<<10), stderr: new(syncBuffer)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return p
}

// lines reads stdout in a goroutine and sends each line without its
// newline; the channel is closed at the end of stdout.
func (p *wsxProcess) lines() <-chan string {
	ch := make(chan string, 100)
	go func() {
		defer close(ch)
		for {
			l, err := p.stdout.ReadString('\n')
			if err != nil {
				return
			}
			ch <- strings.TrimSuffix(l, "\n")
		}
	}()
	return ch
}

// startLineURL reads the start line from the process's stdout.
func (p *wsxProcess) startLineURL(t *testing.T) string {
	t.Helper()
	line := make(chan string, 1)
	go func() {
		l, _ := p.stdout.ReadString('\n')
		line <- strings.TrimSuffix(l, "\n")
	}()
	select {
	case l := <-line:
		m := startLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("start line %q does not match %s; stderr:\n%s", l, startLine, p.stderr.String())
		}
		return m[1]
	case <-time.After(testTimeout):
		t.Fatalf("no start line within %s; stderr:\n%s", testTimeout, p.stderr.String())
	}
	return ""
}

// signalAndWait sends sig and returns the exit code.
func (p *wsxProcess) signalAndWait(t *testing.T, sig os.Signal) int {
	t.Helper()
	p.cmd.Process.Signal(sig)
	return p.wait(t)
}

// wait returns the exit code once the process ends.
func (p *wsxProcess) wait(t *testing.T) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(testTimeout):
		p.cmd.Process.Kill()
		t.Fatalf("wsx did not exit within %s; stderr:\n%s", testTimeout, p.stderr.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

func TestUsageErrorsExit2(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // in the message on stderr
	}{
		{"unknown flag", []string{"echo", "--nope"}, "--nope"},
		{"bad duration", []string{"echo", "--ping-interval", "soon"}, "ping-interval"},
		{"bad size", []string{"echo", "--max-message-size", "lots"}, "max-message-size"},
		{"bad log format", []string{"--log-format", "xml", "echo"}, "log-format"},
		{"bad template", []string{"echo", "--reply", "{{.Data"}, "--reply"},
		{"unknown template field", []string{"echo", "--reply", "{{.Nope}}"}, "Nope"},
		{"cert without key", []string{"echo", "--tls-cert", "x.pem"}, "--tls-key"},
		{"missing cert file", []string{"echo", "--tls-cert", "nope.pem", "--tls-key", "nope.key"}, "nope.pem"},
		{"self-signed and cert", []string{"echo", "--tls-self-signed", "--tls-cert", "a", "--tls-key", "b"}, "--tls-self-signed"},
		{"zero max-conns", []string{"echo", "--max-conns", "0"}, "max-conns"},
		{"bad subprotocol", []string{"echo", "--subprotocol", "a b"}, "subprotocol"},
		{"unknown command", []string{"nope"}, "nope"},
		{"value missing after the URL", []string{"dial", "ws://127.0.0.1:1/", "-x"}, "flag --execute needs a value"},
		{"prefix not UTF-8", []string{"echo", "--prefix", "\xff"}, "--prefix"},
		{"welcome not UTF-8", []string{"serve", "--welcome", "\xff"}, "--welcome"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"wsx"}, tt.args...), strings.NewReader(""), &stdout, &stderr)
			if code != exitUsage {
				t.Errorf("wsx %s: exit %d, want %d; stderr: %s", strings.Join(tt.args, " "), code, exitUsage, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("wsx %s: stderr %q does not name %q", strings.Join(tt.args, " "), stderr.String(), tt.want)
			}
		})
	}
}

func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"echo", "--help"}} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), append([]string{"wsx"}, args...), strings.NewReader(""), &stdout, &stderr); code != exitOK {
			t.Errorf("wsx %v: exit %d, want 0", args, code)
		}
		if !strings.Contains(stdout.String(), "EXIT CODES") {
			t.Errorf("wsx %v: help does not list the exit codes:\n%s", args, stdout.String())
		}
	}
	var stdout bytes.Buffer
	if code := run(context.Background(), []string{"wsx", "--version"}, strings.NewReader(""), &stdout, io.Discard); code != exitOK || !strings.Contains(stdout.String(), "wsx version") {
		t.Errorf("wsx --version: exit %d, output %q", code, stdout.String())
	}
}

// silentServer listens on loopback, accepts connections and holds them
// open without ever answering, until the test ends.
func silentServer(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	return ln
}
