package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// noMessage asserts that nothing arrives on c for a short while. It is the
// only way to show a message was not delivered; the wait is bounded and
// short, and the tests send a message that must arrive after it, so a late
// delivery is still caught.
func noMessage(t *testing.T, c *websocket.Conn, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
	if op, data, err := c.ReadMessage(); err == nil {
		t.Fatalf("%s: got message type %d %q, want none", what, op, data)
	}
}

// rawClients dials n raw clients to url.
func rawClients(t *testing.T, url string, n int) []*websocket.Conn {
	t.Helper()
	cs := make([]*websocket.Conn, n)
	for i := range cs {
		cs[i] = dialTest(t, url, nil)
	}
	return cs
}

// jsonClient dials a client speaking wsx.chat.v1 and returns it with its
// welcome event.
func jsonClient(t *testing.T, url string, h http.Header) (*websocket.Conn, welcomeEvent) {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{chatProtocol}}
	c, resp, err := d.Dial(url, h)
	if err != nil {
		t.Fatalf("dial %s: %v %v", url, err, resp)
	}
	t.Cleanup(func() { c.Close() })
	if c.Subprotocol() != chatProtocol {
		t.Fatalf("subprotocol %q, want %s", c.Subprotocol(), chatProtocol)
	}
	var w welcomeEvent
	readJSON(t, c, &w)
	if w.Event != "welcome" {
		t.Fatalf("first event %q, want welcome", w.Event)
	}
	return c, w
}

// readJSON reads one text message and decodes it into v.
func readJSON(t *testing.T, c *websocket.Conn, v any) {
	t.Helper()
	op, data := readMsg(t, c)
	if op != websocket.TextMessage {
		t.Fatalf("JSON event in a message of type %d", op)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("event %q: %v", data, err)
	}
}

func TestServeRelaysToOthers(t *testing.T) {
	srv := newTestServer(t, "serve")
	cs := rawClients(t, srv.url, 3)
	a, b, c := cs[0], cs[1], cs[2]
	a.WriteMessage(websocket.TextMessage, []byte("hello from A\n with a newline "))
	for i, r := range []*websocket.Conn{b, c} {
		if op, got := readMsg(t, r); op != websocket.TextMessage || string(got) != "hello from A\n with a newline " {
			t.Errorf("client %d got %d %q", i+1, op, got)
		}
	}
	// The next message A receives is B's, so A did not get its own.
	b.WriteMessage(websocket.BinaryMessage, []byte{0, 1, 2})
	for _, r := range []*websocket.Conn{a, c} {
		if op, got := readMsg(t, r); op != websocket.BinaryMessage || !bytes.Equal(got, []byte{0, 1, 2}) {
			t.Errorf("binary relay: got %d %v, want B's message", op, got)
		}
	}
}

func TestServeIncludeSelf(t *testing.T) {
	srv := newTestServer(t, "serve", "--include-self")
	cs := rawClients(t, srv.url, 2)
	cs[0].WriteMessage(websocket.TextMessage, []byte("echo me"))
	for i, c := range cs {
		if _, got := readMsg(t, c); string(got) != "echo me" {
			t.Errorf("client %d got %q", i, got)
		}
	}
}

func TestServeRelaysLargeBinaryExactly(t *testing.T) {
	srv := newTestServer(t, "serve", "--history", "0")
	cs := rawClients(t, srv.url, 3)
	payload := make([]byte, 1<<20)
	rand.Read(payload)
	cs[0].WriteMessage(websocket.BinaryMessage, payload)
	for _, c := range cs[1:] {
		if op, got := readMsg(t, c); op != websocket.BinaryMessage || !bytes.Equal(got, payload) {
			t.Fatalf("1 MiB binary relay: type %d, %d bytes, equal %v", op, len(got), bytes.Equal(got, payload))
		}
	}
}

func TestServeRoomsIsolated(t *testing.T) {
	srv := newTestServer(t, "serve")
	lobbyA := dialTest(t, srv.url, nil)
	lobbyB := dialTest(t, srv.url+"lobby", nil) // "/" and "/lobby" are one room
	teamA := dialTest(t, srv.url+"team-a", nil)
	teamB := dialTest(t, srv.url+"team-a", nil)
	teamA.WriteMessage(websocket.TextMessage, []byte("team only"))
	if _, got := readMsg(t, teamB); string(got) != "team only" {
		t.Fatalf("team member got %q", got)
	}
	lobbyA.WriteMessage(websocket.TextMessage, []byte("lobby only"))
	if _, got := readMsg(t, lobbyB); string(got) != "lobby only" {
		t.Fatalf("lobby member got %q, want the lobby message (not the team's)", got)
	}
	noMessage(t, teamB, "a member of another room")
}

func TestServeRawAndJSONInteroperate(t *testing.T) {
	srv := newTestServer(t, "serve", "--welcome", "be nice")
	raw := dialTest(t, srv.url+"r?name=rawbot", nil)
	if _, got := readMsg(t, raw); string(got) != "be nice" {
		t.Fatalf("raw welcome %q", got)
	}
	js, w := jsonClient(t, srv.url+"r?name=alice", nil)
	if w.You.Name != "alice" || w.Room != "r" || w.Welcome != "be nice" || w.Role != roleReadWrite || len(w.Online) != 2 {
		t.Errorf("welcome = %+v", w)
	}

	raw.WriteMessage(websocket.TextMessage, []byte("from raw"))
	var m messageEvent
	readJSON(t, js, &m)
	if m.Event != "message" || m.From != "rawbot" || m.Room != "r" || m.Type != "text" || m.Data != "from raw" || m.Seq != 1 || m.ID == "" || m.Time.IsZero() {
		t.Errorf("message event = %+v", m)
	}
	raw.WriteMessage(websocket.BinaryMessage, []byte{0xff, 0})
	readJSON(t, js, &m)
	if m.Type != "binary" || m.Data != base64.StdEncoding.EncodeToString([]byte{0xff, 0}) || m.Seq != 2 {
		t.Errorf("binary message event = %+v", m)
	}

	js.WriteMessage(websocket.TextMessage, []byte("from json ✓"))
	if op, got := readMsg(t, raw); op != websocket.TextMessage || string(got) != "from json ✓" {
		t.Errorf("raw client got %d %q from the JSON client", op, got)
	}
	js.WriteMessage(websocket.BinaryMessage, []byte{9, 8, 7})
	if op, got := readMsg(t, raw); op != websocket.BinaryMessage || !bytes.Equal(got, []byte{9, 8, 7}) {
		t.Errorf("raw client got %d %v", op, got)
	}
}

func TestServeJoinLeaveAndNotices(t *testing.T) {
	srv := newTestServer(t, "serve", "--notices")
	js, _ := jsonClient(t, srv.url+"?name=watcher", nil)
	raw := dialTest(t, srv.url+"?name=rawwatcher", nil)
	var n noticeEvent
	readJSON(t, js, &n)
	if n.Event != "join" || n.Name != "rawwatcher" {
		t.Errorf("join event = %+v", n)
	}
	bob := dialTest(t, srv.url+"?name=bob", nil)
	readJSON(t, js, &n)
	if n.Event != "join" || n.Name != "bob" || n.Room != lobby {
		t.Errorf("join event = %+v", n)
	}
	if _, got := readMsg(t, raw); string(got) != "bob joined" {
		t.Errorf("raw notice %q, want %q", got, "bob joined")
	}
	bob.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	readJSON(t, js, &n)
	if n.Event != "leave" || n.Name != "bob" {
		t.Errorf("leave event = %+v", n)
	}
	if _, got := readMsg(t, raw); string(got) != "bob left" {
		t.Errorf("raw notice %q, want %q", got, "bob left")
	}
}

func TestServeNoNoticesForRawByDefault(t *testing.T) {
	srv := newTestServer(t, "serve")
	raw := dialTest(t, srv.url, nil)
	dialTest(t, srv.url, nil).Close()
	sender := dialTest(t, srv.url, nil)
	sender.WriteMessage(websocket.TextMessage, []byte("only this"))
	if _, got := readMsg(t, raw); string(got) != "only this" {
		t.Errorf("raw client got %q, want only the message", got)
	}
}

func TestServeHistoryOrderAndLimit(t *testing.T) {
	srv := newTestServer(t, "serve", "--history", "3")
	sender := dialTest(t, srv.url, nil)
	witness := dialTest(t, srv.url, nil)
	for i := 1; i <= 5; i++ {
		sender.WriteMessage(websocket.TextMessage, []byte(fmt.Sprint("m", i)))
		readMsg(t, witness) // relayed, so in the history
	}
	late := dialTest(t, srv.url, nil)
	for _, want := range []string{"m3", "m4", "m5"} {
		if _, got := readMsg(t, late); string(got) != want {
			t.Fatalf("history replay got %q, want %q", got, want)
		}
	}
	sender.WriteMessage(websocket.TextMessage, []byte("live"))
	if _, got := readMsg(t, late); string(got) != "live" {
		t.Fatalf("after history got %q, want the live message", got)
	}
	_, w := jsonClient(t, srv.url, nil)
	if len(w.History) != 3 || w.History[0].Data != "m4" || w.History[2].Data != "live" || w.History[2].Seq != 6 {
		t.Errorf("JSON welcome history = %+v", w.History)
	}
}

// TestServeStoreSurvivesSIGKILL runs the binary with --store, kills it with
// SIGKILL right after a message was relayed, and restarts it: the message
// is in the history. A torn last line is skipped with a warning.
func TestServeStoreSurvivesSIGKILL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chat.jsonl")
	p := startWSX(t, "serve", "--addr", "127.0.0.1:0", "--store", path)
	url := p.startLineURL(t)
	a, b := dialTest(t, url+"room1", nil), dialTest(t, url+"room1", nil)
	a.WriteMessage(websocket.TextMessage, []byte("keep me"))
	a.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3})
	readMsg(t, b)
	readMsg(t, b)
	p.signalAndWait(t, syscall.SIGKILL)

	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("store mode %v, want 0600", info.Mode().Perm())
	}
	// A crash mid-write leaves a torn line.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"event":"message","id":"x","seq":3,"room":"room1","fr`)
	f.Close()

	p2 := startWSX(t, "serve", "--addr", "127.0.0.1:0", "--store", path, "--shutdown-timeout", "200ms")
	url2 := p2.startLineURL(t)
	late := dialTest(t, url2+"room1", nil)
	if op, got := readMsg(t, late); op != websocket.TextMessage || string(got) != "keep me" {
		t.Errorf("after restart, history[0] = %d %q", op, got)
	}
	if op, got := readMsg(t, late); op != websocket.BinaryMessage || !bytes.Equal(got, []byte{1, 2, 3}) {
		t.Errorf("after restart, history[1] = %d %v", op, got)
	}
	// Numbering continues, and the new message lands on a line of its own.
	other := dialTest(t, url2+"room1", nil)
	other.WriteMessage(websocket.TextMessage, []byte("after restart"))
	readMsg(t, late)
	if code := p2.signalAndWait(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit %d", code)
	}
	if !strings.Contains(p2.stderr.String(), "line 3 skipped") {
		t.Errorf("torn line not reported:\n%s", p2.stderr.String())
	}
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	var last messageEvent
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last.Data != "after restart" || last.Seq != 3 {
		t.Errorf("last store line %q: %+v %v", lines[len(lines)-1], last, err)
	}
}

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

func TestServeHealthzAndPage(t *testing.T) {
	srv := newTestServer(t, "serve")
	rawClients(t, srv.url+"a", 2)
	dialTest(t, srv.url+"b", nil)
	resp, err := http.Get(httpURL(srv.url) + "healthz")
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Status      string `json:"status"`
		Connections int    `json:"connections"`
		Rooms       int    `json:"rooms"`
	}
	json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if h.Status != "ok" || h.Connections != 3 || h.Rooms != 2 {
		t.Errorf("healthz = %+v, want ok, 3 connections, 2 rooms", h)
	}
	resp, err = http.Get(httpURL(srv.url) + "team-a")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "<html") || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("page: %s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
}

func TestServeStdin(t *testing.T) {
	p := startWSX(t, "serve", "--addr", "127.0.0.1:0", "--stdin")
	url := p.startLineURL(t)
	js, _ := jsonClient(t, url, nil)
	p.stdin.Write([]byte("hello from the console\r\ncaf\xe9\n"))
	var m messageEvent
	readJSON(t, js, &m)
	if m.From != "server" || m.Type != "text" || m.Data != "hello from the console\r" {
		t.Errorf("stdin message = %+v, want the line with its \\r kept", m)
	}
	readJSON(t, js, &m)
	if m.Type != "binary" || m.Data != base64.StdEncoding.EncodeToString([]byte("caf\xe9")) {
		t.Errorf("a line that is not UTF-8 = %+v, want it as binary", m)
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
	aliveMsgs := readAll(alive)
	expectClose(t, deaf, websocket.CloseGoingAway)
	time.Sleep(500 * time.Millisecond) // several intervals
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
	time.Sleep(100 * time.Millisecond)
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

// TestHubForgetsUnusedRooms: rooms that only saw joins and leaves are
// dropped, so random paths cannot grow the hub; rooms with messages stay.
func TestHubForgetsUnusedRooms(t *testing.T) {
	h := newHub(hubConfig{history: 10, historyBytes: 1 << 20}, slog.New(slog.DiscardHandler), nil, nil, 1)
	for i := range 100 {
		h.deliver(&chatMessage{kind: kindJoin, room: fmt.Sprint("probe-", i)})
		h.deliver(&chatMessage{kind: kindLeave, room: fmt.Sprint("probe-", i)})
	}
	h.deliver(&chatMessage{kind: kindMessage, room: "talk", op: websocket.TextMessage, data: []byte("hi")})
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.rooms) != 1 || h.rooms["talk"] == nil {
		t.Errorf("rooms kept: %d, want only the one with a message", len(h.rooms))
	}
}

// TestServeIdleConnectionsHaveNoGoroutine: wsx serve parks idle
// connections in its poller; a goroutine per connection would cost a few
// kB each. The clients are bare sockets with no goroutine of their own.
func TestServeIdleConnectionsHaveNoGoroutine(t *testing.T) {
	srv := newTestServer(t, "serve", "--ping-interval", "0")
	before := runtime.NumGoroutine()
	const n = 200
	clients := make([]*rawClient, n)
	for i := range clients {
		clients[i] = newRawClient(t, srv.url)
	}
	time.Sleep(100 * time.Millisecond) // let the handlers finish
	if grown := runtime.NumGoroutine() - before; grown > n/10 {
		t.Errorf("%d idle connections added %d goroutines, want almost none", n, grown)
	}
	// They still work: a message from one reaches another.
	clients[0].conn.Write(maskedFrame(websocket.TextMessage, []byte("awake")))
	clients[1].conn.SetReadDeadline(time.Now().Add(testTimeout))
	reply := make([]byte, 2+len("awake"))
	if _, err := io.ReadFull(clients[1].r, reply); err != nil || string(reply[2:]) != "awake" {
		t.Errorf("idle client got %q, %v", reply, err)
	}
}
