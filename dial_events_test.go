package main

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestDialJSONL checks that --jsonl prints each event as one JSON object
// with the fields the README documents.
func TestDialJSONL(t *testing.T) {
	url := newPeer(t, func(w http.ResponseWriter, r *http.Request) {
		c := accept(t, w, r, "chat.v2")
		pinged := make(chan struct{})
		var once atomicOnce
		c.SetPingHandler(func(data string) error {
			err := c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
			once.do(func() { close(pinged) }) // after the pong, so it precedes the close
			return err
		})
		msgs := readAll(c)
		c.WriteMessage(websocket.TextMessage, []byte("hello\nworld"))
		c.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3})
		c.WriteControl(websocket.PingMessage, []byte("p1"), time.Now().Add(time.Second))
		<-msgs   // the -x message
		<-pinged // a --ping-interval ping, so a pong event follows
		c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4001, "bye"))
		for range msgs {
		}
	})
	r := dialInProcess(t, strings.NewReader(""), url, "--jsonl", "-s", "chat.v2", "-x", "q", "--wait", "-1", "--ping-interval", "50ms")
	r.wantExit(t, exitAbnormal)
	var events []map[string]any
	for _, line := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("line %q is not JSON: %v", line, err)
		}
		if _, err := time.Parse(time.RFC3339Nano, e["time"].(string)); err != nil {
			t.Errorf("event %v: bad time: %v", e, err)
		}
		events = append(events, e)
	}
	find := func(kind string, match func(map[string]any) bool) map[string]any {
		for _, e := range events {
			if e["event"] == kind && match(e) {
				return e
			}
		}
		t.Errorf("no matching %s event in:\n%s", kind, r.stdout)
		return nil
	}
	all := func(map[string]any) bool { return true }
	if open := find("open", all); open != nil {
		headers, _ := open["headers"].(map[string]any)
		if open["url"] != url || open["subprotocol"] != "chat.v2" || headers["Sec-Websocket-Protocol"] == nil {
			t.Errorf("open event %v", open)
		}
	}
	find("message", func(e map[string]any) bool { return e["type"] == "text" && e["data"] == "hello\nworld" })
	find("message", func(e map[string]any) bool { return e["type"] == "binary" && e["data"] == "AQID" })
	find("ping", func(e map[string]any) bool { return e["data"] == "p1" && e["type"] == "text" })
	find("pong", all)
	find("close", func(e map[string]any) bool {
		return e["code"] == float64(4001) && e["reason"] == "bye" && e["by"] == "server"
	})
	if first, last := events[0]["event"], events[len(events)-1]["event"]; first != "open" || last != "close" {
		t.Errorf("events run from %v to %v, want open to close", first, last)
	}

	r = dialInProcess(t, strings.NewReader(""), "127.0.0.1:1", "--jsonl")
	r.wantExit(t, exitFailure)
	var e map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &e); err != nil || e["event"] != "error" || !strings.HasPrefix(e["error"].(string), "Could not connect: ") {
		t.Errorf("a failed connection gives %q, want one error event", r.stdout)
	}
}

// atomicOnce is a sync.Once usable from a gorilla handler.
type atomicOnce struct{ done atomic.Bool }

func (o *atomicOnce) do(f func()) {
	if o.done.CompareAndSwap(false, true) {
		f()
	}
}

// TestDialShowPing shows pings and pongs on stderr with -P, never on stdout,
// and sends pings with --ping-interval.
func TestDialShowPing(t *testing.T) {
	url := newPeer(t, func(w http.ResponseWriter, r *http.Request) {
		c := accept(t, w, r)
		pings := make(chan struct{}, 10)
		c.SetPingHandler(func(data string) error {
			err := c.WriteControl(websocket.PongMessage, []byte("pong-"+data), time.Now().Add(time.Second))
			pings <- struct{}{}
			return err
		})
		msgs := readAll(c)
		c.WriteControl(websocket.PingMessage, []byte("hb"), time.Now().Add(time.Second))
		<-pings
		<-pings
		c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
		for range msgs {
		}
	})
	r := dialInProcess(t, strings.NewReader(""), url, "-P", "--ping-interval", "50ms", "--wait", "-1")
	r.wantExit(t, exitOK)
	if !strings.Contains(r.stderr, `Received ping "hb"`) || !strings.Contains(r.stderr, `Received pong "pong-"`) {
		t.Errorf("-P does not show the ping and pongs:\n%s", r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("pings reached stdout: %q", r.stdout)
	}
	r = dialInProcess(t, strings.NewReader(""), url, "--ping-interval", "50ms", "--wait", "-1")
	r.wantExit(t, exitOK)
	if strings.Contains(r.stderr, "Received p") {
		t.Errorf("pings shown without -P:\n%s", r.stderr)
	}
}

// TestDialKeepaliveLoss counts a connection as lost when the server answers
// no ping for two intervals.
func TestDialKeepaliveLoss(t *testing.T) {
	url := newPeer(t, func(w http.ResponseWriter, r *http.Request) {
		c := accept(t, w, r)
		c.SetPingHandler(func(string) error { return nil }) // deaf
		for range readAll(c) {
		}
	})
	r := dialInProcess(t, strings.NewReader(""), url, "--ping-interval", "100ms", "--wait", "-1")
	r.wantExit(t, exitAbnormal)
	if !strings.Contains(r.stderr, "Connection closed (1006 - connection lost: nothing arrived for 200ms (--ping-interval))") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
}

// TestDialTimestamps puts the time before printed lines, on stdout and
// stderr.
func TestDialTimestamps(t *testing.T) {
	srv := newTestServer(t, "echo", "--prefix", "")
	r := dialInProcess(t, strings.NewReader(""), srv.url, "--timestamps", "-x", "hi", "-n", "1")
	r.wantExit(t, exitOK)
	stamp := `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d) `
	if !regexp.MustCompile(`^` + stamp + `hi\n$`).MatchString(r.stdout) {
		t.Errorf("stdout %q has no timestamp", r.stdout)
	}
	if !regexp.MustCompile(`(?m)^` + stamp + `Connection closed \(1000 - \)$`).MatchString(r.stderr) {
		t.Errorf("stderr has no timestamps:\n%s", r.stderr)
	}
}

// TestDialReconnect kills the server and starts it again on the same port:
// wsx dial --reconnect says so on stderr, and the lines piped while it was
// down arrive after it reconnects, in order. A server going away with 1001
// is reconnected to as well.
func TestDialReconnect(t *testing.T) {
	srv := startWSX(t, "echo", "--prefix", "", "--addr", "127.0.0.1:0")
	url := srv.startLineURL(t)
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/")

	dial := startWSX(t, "dial", url, "--reconnect", "--reconnect-max", "500ms", "--wait", "300ms")
	stdin, stderr, lines := dial.stdin, dial.stderr, dial.lines()
	expect := func(want string) {
		t.Helper()
		select {
		case got := <-lines:
			if got != want {
				t.Fatalf("stdout line %q, want %q; stderr:\n%s", got, want, stderr.String())
			}
		case <-time.After(testTimeout):
			t.Fatalf("no %q on stdout; stderr:\n%s", want, stderr.String())
		}
	}
	waitStderr := func(want string, count int) {
		t.Helper()
		waitFor(t, func() bool { return strings.Count(stderr.String(), want) >= count })
	}

	io.WriteString(stdin, "one\n")
	expect("one")
	srv.cmd.Process.Kill() // SIGKILL: no close frame, the connection is lost
	srv.wait(t)
	waitStderr("Reconnecting in", 1)
	io.WriteString(stdin, "two\nthree\n")
	srv = startWSX(t, "echo", "--prefix", "", "--addr", addr)
	srv.startLineURL(t)
	expect("two")
	expect("three")
	waitStderr("Reconnected to "+url, 1)

	srv.signalAndWait(t, syscall.SIGTERM) // close 1001: going away
	waitStderr("Connection closed (1001 - server shutting down)", 1)
	waitStderr("Reconnecting in", 2)
	io.WriteString(stdin, "four\n")
	srv = startWSX(t, "echo", "--prefix", "", "--addr", addr)
	srv.startLineURL(t)
	expect("four")

	stdin.Close()
	if code := dial.wait(t); code != exitOK {
		t.Errorf("exit code %d, want 0; stderr:\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "Connection closed (1006 - connection lost") {
		t.Errorf("the loss is not reported:\n%s", stderr.String())
	}
}
