package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestDialExitCodes checks the exit code and the close line for each way
// a connection can end.
func TestDialExitCodes(t *testing.T) {
	closeWith := func(code int, reason string) func(http.ResponseWriter, *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			c := accept(t, w, r)
			c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason))
			c.ReadMessage()
		}
	}
	dropped := func(w http.ResponseWriter, r *http.Request) {
		c := accept(t, w, r)
		c.NetConn().Close()
	}
	silent := func(w http.ResponseWriter, r *http.Request) {
		c := accept(t, w, r)
		c.ReadMessage()
	}
	tests := []struct {
		name   string
		handle func(http.ResponseWriter, *http.Request)
		args   []string
		code   int
		stderr string
	}{
		{"server closes 1000", closeWith(1000, "bye"), []string{"--wait", "-1"}, exitOK, "Connection closed (1000 - bye)"},
		{"server closes 1001", closeWith(1001, "restart"), []string{"--wait", "-1"}, exitOK, "Connection closed (1001 - restart)"},
		{"server closes 4000", closeWith(4000, "custom"), []string{"--wait", "-1"}, exitAbnormal, "Connection closed (4000 - custom)"},
		{"server closes 1011", closeWith(1011, "oops"), []string{"--wait", "-1"}, exitAbnormal, "Connection closed (1011 - oops)"},
		{"connection lost", dropped, []string{"--wait", "-1"}, exitAbnormal, "Connection closed (1006 - connection lost"},
		{"timeout", silent, []string{"--wait", "-1", "--timeout", "1s"}, exitAbnormal, "Timeout: --timeout 1s passed"},
		{"we close after EOF", silent, []string{"--wait", "0"}, exitOK, "Connection closed (1000 - )"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := newPeer(t, tt.handle)
			r := dialInProcess(t, strings.NewReader(""), append([]string{url}, tt.args...)...)
			r.wantExit(t, tt.code)
			if !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, r.stderr)
			}
		})
	}
}

// TestDialServerInvalidUTF8 fails the connection with 1007 when the server
// sends text that is not UTF-8.
func TestDialServerInvalidUTF8(t *testing.T) {
	closes := make(chan int, 1)
	url := newPeer(t, func(w http.ResponseWriter, r *http.Request) {
		c := accept(t, w, r)
		c.WriteMessage(websocket.TextMessage, []byte("bad \xff"))
		_, _, err := c.ReadMessage()
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			closes <- ce.Code
		}
		close(closes)
	})
	r := dialInProcess(t, strings.NewReader(""), url, "--wait", "-1")
	r.wantExit(t, exitAbnormal)
	if code := <-closes; code != websocket.CloseInvalidFramePayloadData {
		t.Errorf("server saw close %d, want 1007", code)
	}
	if r.stdout != "" || !strings.Contains(r.stderr, "not valid UTF-8") {
		t.Errorf("stdout %q, stderr:\n%s", r.stdout, r.stderr)
	}
}

// TestDialCouldNotConnect checks the message and exit code 1 when nothing
// listens, and when the server refuses the upgrade with 401.
func TestDialCouldNotConnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	r := dialInProcess(t, strings.NewReader(""), addr)
	r.wantExit(t, exitFailure)
	if !strings.HasPrefix(r.stderr, "Could not connect: ws://"+addr+"/: dial tcp "+addr) || !strings.Contains(r.stderr, "connection refused") {
		t.Errorf("stderr %q does not say why", r.stderr)
	}

	url := newPeer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Basic realm="wsx test"`)
		w.Header().Set("X-Irrelevant", "not shown")
		http.Error(w, "missing credentials", http.StatusUnauthorized)
	})
	r = dialBinary(t, strings.NewReader(""), nil, url)
	r.wantExit(t, exitFailure)
	for _, want := range []string{
		"Could not connect: " + url + ": the server answered HTTP/1.1 401 Unauthorized\n",
		"\n  Www-Authenticate: Basic realm=\"wsx test\"\n",
		`body: "missing credentials\n"`,
		"\nhint: the server wants credentials: try --auth USER:PASSWORD or --token TOKEN",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "X-Irrelevant") {
		t.Errorf("stderr shows an irrelevant header:\n%s", r.stderr)
	}
}

// TestDialConnectTimeout gives up on a server that accepts TCP but never
// answers the upgrade.
func TestDialConnectTimeout(t *testing.T) {
	ln := silentServer(t)
	r := dialInProcess(t, strings.NewReader(""), ln.Addr().String(), "--connect-timeout", "200ms")
	r.wantExit(t, exitFailure)
	if !strings.Contains(r.stderr, "Could not connect: ") || !strings.Contains(r.stderr, "hint: no answer within --connect-timeout 200ms") {
		t.Errorf("stderr does not explain the timeout:\n%s", r.stderr)
	}
}

// TestDialInterruptStuckWrite: Ctrl-C and --timeout end a write stuck on a
// server that stopped reading.
func TestDialInterruptStuckWrite(t *testing.T) {
	upgrader := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		<-r.Context().Done() // never reads
		c.Close()
	}))
	defer srv.Close()
	line := strings.Repeat("a", 64<<20) + "\n" // far more than the socket buffers take
	for _, tt := range []struct {
		name   string
		args   []string
		signal bool
		code   int
		stderr string
	}{
		{"SIGINT", nil, true, exitOK, "Connected"},
		{"--timeout", []string{"--timeout", "500ms"}, false, exitAbnormal, "Timeout"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(wsxBinary, append([]string{"dial", "ws" + strings.TrimPrefix(srv.URL, "http")}, tt.args...)...)
			cmd.Stdin = strings.NewReader(line)
			var stderr syncBuffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if tt.signal {
				// Once connected and well into the write (before the fix:
				// exit 3 after writeWait, "i/o timeout").
				waitFor(t, func() bool { return strings.Contains(stderr.String(), "Connected") })
				time.Sleep(time.Second)
				cmd.Process.Signal(os.Interrupt)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(testTimeout):
				cmd.Process.Kill()
				t.Fatal("the stuck write was not interrupted")
			}
			if code := cmd.ProcessState.ExitCode(); code != tt.code || !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr.String(), tt.code, tt.stderr)
			}
		})
	}
}

// TestDialTimeoutWhileConnecting: --timeout bounds the whole run, the
// handshake included, and is an abnormal end (3), not "could not connect".
func TestDialTimeoutWhileConnecting(t *testing.T) {
	ln := silentServer(t)
	var stderr syncBuffer
	code := run(context.Background(), []string{"wsx", "dial", ln.Addr().String(), "--timeout", "300ms"}, strings.NewReader(""), io.Discard, &stderr)
	if code != exitAbnormal || !strings.Contains(stderr.String(), "Timeout: --timeout 300ms passed while connecting") {
		t.Errorf("exit %d, stderr %q; want 3 and the timeout", code, stderr.String())
	}
}
