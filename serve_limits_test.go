package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Tests of wsx serve's protection: authentication, limits, slow consumers,
// keepalive, TLS and shutdown.

func TestServeToken(t *testing.T) {
	srv := newTestServer(t, "serve", "--token", "s3cret")
	for _, tt := range []struct {
		name   string
		suffix string
		header http.Header
		status int
	}{
		{"no token", "", nil, http.StatusUnauthorized},
		{"wrong token", "?token=nope", nil, http.StatusUnauthorized},
		{"query token", "?token=s3cret", nil, http.StatusSwitchingProtocols},
		{"bearer", "", http.Header{"Authorization": {"Bearer s3cret"}}, http.StatusSwitchingProtocols},
		{"basic password", "", http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("bob:s3cret"))}}, http.StatusSwitchingProtocols},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, resp, err := websocket.DefaultDialer.Dial(srv.url+tt.suffix, tt.header)
			if c != nil {
				c.Close()
			}
			if resp == nil || resp.StatusCode != tt.status {
				t.Errorf("status %v (%v), want %d", resp, err, tt.status)
			}
		})
	}
}

func TestServeUsersFile(t *testing.T) {
	users := filepath.Join(t.TempDir(), "users.txt")
	os.WriteFile(users, []byte("# name:token:role[:rooms]\nalice:a-token:rw\nreader:r-token:ro\nteam:t-token:rw:team-a,team-b\n"), 0o600)
	srv := newTestServer(t, "serve", "--users", users)

	_, resp, _ := websocket.DefaultDialer.Dial(srv.url+"team-c?token=t-token", nil)
	if resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("room not allowed: %v, want 403", resp)
	}
	_, resp, _ = websocket.DefaultDialer.Dial(srv.url+"?token=bad", nil)
	if resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("bad token: %v, want 401", resp)
	}
	dialTest(t, srv.url+"team-a?token=t-token", nil)

	alice := dialTest(t, srv.url+"?token=a-token&name=ignored", nil)
	rawReader := dialTest(t, srv.url+"?token=r-token", nil)
	jsReader, w := jsonClient(t, srv.url, http.Header{"Authorization": {"Bearer r-token"}})
	if w.You.Name != "reader" || w.Role != roleReadOnly {
		t.Errorf("welcome = %+v, want reader with role ro", w)
	}
	alice.WriteMessage(websocket.TextMessage, []byte("to readers"))
	if _, got := readMsg(t, rawReader); string(got) != "to readers" {
		t.Errorf("read-only raw client got %q", got)
	}
	var m messageEvent
	readJSON(t, jsReader, &m)
	if m.From != "alice" || m.Data != "to readers" {
		t.Errorf("read-only JSON client got %+v", m)
	}

	// A read-only JSON client that sends gets an error and stays.
	jsReader.WriteMessage(websocket.TextMessage, []byte("let me talk"))
	var e errorEvent
	readJSON(t, jsReader, &e)
	if e.Event != "error" || e.Code != "read-only" {
		t.Errorf("error event = %+v", e)
	}
	// A read-only raw client that sends is closed 1008.
	rawReader.WriteMessage(websocket.TextMessage, []byte("me too"))
	expectClose(t, rawReader, websocket.ClosePolicyViolation)
	// Nothing they sent was relayed; the JSON reader still receives.
	alice.WriteMessage(websocket.TextMessage, []byte("still there?"))
	for {
		var ev messageEvent
		readJSON(t, jsReader, &ev)
		if ev.Event == "leave" {
			continue
		}
		if ev.Data != "still there?" {
			t.Fatalf("read-only JSON client got %+v, want alice's next message", ev)
		}
		break
	}
	noMessage(t, alice, "alice (nothing from read-only clients)")
}

func TestServeBadUsersFileExit2(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct{ name, content, want string }{
		{"field count", "alice:tok\n", "line 1"},
		{"unknown role", "alice:tok:rw\nbob:tok2:admin\n", "line 2"},
		{"duplicate name", "alice:tok:rw\n\nalice:tok2:ro\n", "line 3"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name)
			os.WriteFile(path, []byte(tt.content), 0o600)
			var stderr bytes.Buffer
			code := run(context.Background(), []string{"wsx", "serve", "--addr", "127.0.0.1:0", "--users", path}, strings.NewReader(""), io.Discard, &stderr)
			if code != exitUsage || !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("exit %d, stderr %q; want 2 naming %s", code, stderr.String(), tt.want)
			}
		})
	}
}

func TestServeBadName400(t *testing.T) {
	srv := newTestServer(t, "serve")
	_, resp, _ := websocket.DefaultDialer.Dial(srv.url+"?name="+url.QueryEscape("no spaces please"), nil)
	if resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad name: %v, want 400", resp)
	}
}

// TestServeSlowConsumerIsCut: a client that never reads is closed once its
// queue passes --send-queue, while the others receive every message. The
// sender goes at the pace of the healthy readers, as a chat would, so only
// the stalled client's queue grows.
func TestServeSlowConsumerIsCut(t *testing.T) {
	srv := newTestServer(t, "serve", "--history", "0")
	newRawClient(t, srv.url) // completes the handshake, then never reads
	sender := dialTest(t, srv.url, nil)
	readers := rawClients(t, srv.url, 2)
	got := make([]<-chan []byte, len(readers))
	for i, r := range readers {
		got[i] = readAll(r)
	}
	const rounds, perRound = 48, 8
	payload := bytes.Repeat([]byte("z"), 64<<10) // 48 x 8 x 64 KiB = 24 MiB, past any socket buffer
	for round := range rounds {
		for i := range perRound {
			payload[0], payload[1] = byte(round), byte(i)
			if err := sender.WriteMessage(websocket.BinaryMessage, payload); err != nil {
				t.Fatal(err)
			}
		}
		for r, ch := range got {
			for i := range perRound {
				select {
				case m, ok := <-ch:
					if !ok || len(m) != len(payload) || m[0] != byte(round) || m[1] != byte(i) {
						t.Fatalf("reader %d round %d message %d: open=%v, %d bytes", r, round, i, ok, len(m))
					}
				case <-time.After(testTimeout):
					t.Fatalf("reader %d: round %d message %d not received", r, round, i)
				}
			}
		}
	}
	log := srv.stderr.String()
	if !strings.Contains(log, "Connection 1 is a slow consumer") || strings.Count(log, "slow consumer") != 1 {
		t.Errorf("want exactly the stalled client (1) cut as a slow consumer:\n%s", log)
	}
}

func TestServeRateLimit(t *testing.T) {
	// 0.5 msg/s: a burst of 1, and no token comes back within the test.
	srv := newTestServer(t, "serve", "--rate", "0.5")
	js, _ := jsonClient(t, srv.url, nil)
	flooder := dialTest(t, srv.url, nil)
	readJSON(t, js, new(noticeEvent)) // flooder joined
	for i := range 20 {
		flooder.WriteMessage(websocket.TextMessage, []byte(fmt.Sprint("flood ", i)))
	}
	expectClose(t, flooder, websocket.ClosePolicyViolation)
	var relayed []string
	for {
		var m messageEvent
		readJSON(t, js, &m)
		if m.Event == "leave" {
			break
		}
		relayed = append(relayed, m.Data)
	}
	if len(relayed) != 1 || relayed[0] != "flood 0" {
		t.Errorf("relayed %q, want the burst of 1", relayed)
	}
	if !strings.Contains(srv.stderr.String(), "over --rate") {
		t.Errorf("drops not logged:\n%s", srv.stderr.String())
	}
}

func TestServeInvalidUTF8ReachesNobody(t *testing.T) {
	srv := newTestServer(t, "serve")
	cs := rawClients(t, srv.url, 2)
	cs[0].WriteMessage(websocket.TextMessage, []byte("bad \xc3\x28"))
	expectClose(t, cs[0], websocket.CloseInvalidFramePayloadData)
	other := dialTest(t, srv.url, nil)
	other.WriteMessage(websocket.TextMessage, []byte("good"))
	if _, got := readMsg(t, cs[1]); string(got) != "good" {
		t.Errorf("got %q, want only the valid message", got)
	}
}

func TestServeSIGTERMClosesAll1001(t *testing.T) {
	p := startWSX(t, "serve", "--addr", "127.0.0.1:0")
	url := p.startLineURL(t)
	cs := rawClients(t, url, 3)
	js, _ := jsonClient(t, url+"other", nil)
	p.cmd.Process.Signal(syscall.SIGTERM)
	for _, c := range append(cs, js) {
		expectClose(t, c, websocket.CloseGoingAway)
	}
	if code := p.wait(t); code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
}

func TestServeReservedAndBadNames(t *testing.T) {
	users := filepath.Join(t.TempDir(), "users.txt")
	os.WriteFile(users, []byte("alice:a-token:rw\n"), 0o600)
	srv := newTestServer(t, "serve", "--token", "shared", "--users", users)
	basic := func(name string) http.Header {
		return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(name+":shared"))}}
	}
	for _, tt := range []struct {
		name   string
		suffix string
		header http.Header
	}{
		{"the server's name", "?token=shared&name=server", nil},
		{"a user's name", "?token=shared&name=alice", nil},
		{"a bad Basic name", "", basic("evil name\nNew connection!")},
		{"a user's name through Basic", "", basic("alice")},
	} {
		_, resp, _ := websocket.DefaultDialer.Dial(srv.url+tt.suffix, tt.header)
		if resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %v, want 400", tt.name, resp)
		}
	}
	_, w := jsonClient(t, srv.url, basic("bob"))
	if w.You.Name != "bob" {
		t.Errorf("Basic user name with the shared token: name %q, want bob", w.You.Name)
	}
}

// TestServeKeepaliveWithIdleConnectionsPolled: idle connections wait in the
// poller with no reader goroutine; their pongs must still count, and a
// client that ignores pings must still be dropped.
func TestServeKeepaliveWithIdleConnectionsPolled(t *testing.T) {
	srv := newTestServer(t, "serve", "--ping-interval", "100ms")
	deaf := dialTest(t, srv.url, nil)
	deaf.SetPingHandler(func(string) error { return nil })
	alive := dialTest(t, srv.url, nil)
	pings := answerPings(alive)
	aliveMsgs := readAll(alive)
	expectClose(t, deaf, websocket.CloseGoingAway)
	for i := range 5 { // several intervals
		next(t, pings, fmt.Sprintf("ping %d", i+1))
	}
	sender := dialTest(t, srv.url, nil)
	sender.WriteMessage(websocket.TextMessage, []byte("still here"))
	select {
	case got := <-aliveMsgs:
		if string(got) != "still here" {
			t.Errorf("client answering pings got %q", got)
		}
	case <-time.After(testTimeout):
		t.Fatalf("client answering pings was dropped:\n%s", srv.stderr.String())
	}
}

func TestServeTLS(t *testing.T) {
	srv := newTestServer(t, "serve", "--tls-self-signed")
	d := websocket.Dialer{TLSClientConfig: pinnedTLS(t, srv)}
	a, _, err := d.Dial(srv.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, _, err := d.Dial(srv.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a.WriteMessage(websocket.TextMessage, []byte("over tls"))
	if _, got := readMsg(t, b); string(got) != "over tls" {
		t.Errorf("got %q", got)
	}
}

// TestServeHistoryBoundedBySendQueue: every joiner gets a copy of the
// history, so it keeps at most --send-queue bytes, the newest messages; and
// a joiner is not cut as a slow consumer by the history it asked for.
func TestServeHistoryBoundedBySendQueue(t *testing.T) {
	srv := newTestServer(t, "serve", "--history", "50", "--send-queue", "64KiB")
	sender := dialTest(t, srv.url, nil)
	witness := dialTest(t, srv.url, nil)
	msg := bytes.Repeat([]byte("h"), 7<<10) // 9 fit in 64 KiB, 10 do not
	for i := range 12 {
		msg[0] = byte('a' + i)
		sender.WriteMessage(websocket.BinaryMessage, msg)
		readMsg(t, witness)
	}
	late := dialTest(t, srv.url, nil)
	sender.WriteMessage(websocket.TextMessage, []byte("live"))
	for i := 3; i < 12; i++ {
		if _, got := readMsg(t, late); len(got) != len(msg) || got[0] != byte('a'+i) {
			t.Fatalf("history: got %d bytes starting %q, want message %c", len(got), got[:1], 'a'+i)
		}
	}
	if _, got := readMsg(t, late); string(got) != "live" {
		t.Fatalf("after the history got %q, want the live message", got)
	}
}

func TestServeOversizeReachesNobody(t *testing.T) {
	srv := newTestServer(t, "serve", "--max-message-size", "4KiB")
	cs := rawClients(t, srv.url, 2)
	cs[0].WriteMessage(websocket.BinaryMessage, make([]byte, 4097))
	expectClose(t, cs[0], websocket.CloseMessageTooBig)
	other := dialTest(t, srv.url, nil)
	other.WriteMessage(websocket.BinaryMessage, make([]byte, 4096))
	if _, got := readMsg(t, cs[1]); len(got) != 4096 {
		t.Errorf("got %d bytes, want only the message at the limit", len(got))
	}
}

// TestServeShutdownRacingUpgrades: connections upgraded while the server
// stops get close 1001 too, none is left to time out.
func TestServeShutdownRacingUpgrades(t *testing.T) {
	srv := newTestServer(t, "serve", "--shutdown-timeout", "5s")
	var wg sync.WaitGroup
	var connected atomic.Int64
	codes := make(chan int, 10000)
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, _, err := websocket.DefaultDialer.Dial(srv.url, nil)
				if err != nil {
					continue // refused while stopping, or the listener is gone
				}
				connected.Add(1)
				go func() {
					defer c.Close()
					c.SetReadDeadline(time.Now().Add(testTimeout))
					for {
						if _, _, err := c.ReadMessage(); err != nil {
							var ce *websocket.CloseError
							if errors.As(err, &ce) {
								codes <- ce.Code
							} else {
								codes <- 0
							}
							return
						}
					}
				}()
			}
		}()
	}
	// Stop while the dialers are busy upgrading.
	waitFor(t, func() bool { return connected.Load() >= 20 })
	srv.stop()
	close(stop)
	wg.Wait()
	if connected.Load() == 0 {
		t.Fatal("no client connected")
	}
	deadline := time.After(testTimeout)
	for range connected.Load() {
		select {
		case code := <-codes:
			if code != websocket.CloseGoingAway {
				t.Fatalf("a client ended with %d, want 1001", code)
			}
		case <-deadline:
			t.Fatal("clients still open after the server stopped")
		}
	}
}

// TestServeIdleConnectionsHaveNoGoroutine: wsx serve parks idle
// connections in its poller; a goroutine per connection would cost a few
// kB each. The clients are bare sockets with no goroutine of their own.
func TestServeIdleConnectionsHaveNoGoroutine(t *testing.T) {
	srv := newTestServer(t, "serve", "--ping-interval", "0")
	clients := parkedClients(t, srv.url, 200)
	// They still work: a message from one reaches another.
	clients[0].conn.Write(maskedFrame(websocket.TextMessage, []byte("awake")))
	clients[1].conn.SetReadDeadline(time.Now().Add(testTimeout))
	reply := make([]byte, 2+len("awake"))
	if _, err := io.ReadFull(clients[1].r, reply); err != nil || string(reply[2:]) != "awake" {
		t.Errorf("idle client got %q, %v", reply, err)
	}
}
