package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gorilla/websocket"
)

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
