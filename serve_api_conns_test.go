package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// connections lists the server's connections through the API.
func connections(t *testing.T, srv *testServer, query string) map[string]connectionInfo {
	t.Helper()
	var list struct{ Connections []connectionInfo }
	apiDo(t, srv, "GET", "/api/connections"+query, nil).expect(t, http.StatusOK, &list)
	byName := make(map[string]connectionInfo)
	for _, c := range list.Connections {
		byName[c.Name] = c
	}
	return byName
}

func TestAPIListConnections(t *testing.T) {
	srv := newTestServer(t, "serve", "--api-token", apiToken)
	start := time.Now()
	bob, _ := jsonClient(t, srv.url+"team?name=bob", nil)
	alice := dialTest(t, srv.url+"team?name=alice", nil)
	dialTest(t, srv.url+"other?name=carol", nil)
	var join noticeEvent
	readJSON(t, bob, &join)
	alice.WriteMessage(websocket.TextMessage, []byte("one"))
	alice.WriteMessage(websocket.BinaryMessage, []byte("two"))
	var m messageEvent
	readJSON(t, bob, &m)
	readJSON(t, bob, &m)

	all := connections(t, srv, "")
	if len(all) != 3 {
		t.Fatalf("%d connections, want 3: %+v", len(all), all)
	}
	a, b := all["alice"], all["bob"]
	// bob got his welcome, alice's join and her two messages; alice
	// nothing: bob joined before her and her messages are not hers to get.
	if a.Room != "team" || a.Protocol != "raw" || a.Role != "rw" || a.MessagesIn != 2 || a.MessagesOut != 0 || a.Remote == "" {
		t.Errorf("alice: %+v, want raw in team, 2 messages in, 0 out", a)
	}
	if b.Protocol != "json" || b.MessagesIn != 0 || b.MessagesOut != 4 || b.ID != join.Conn-1 {
		t.Errorf("bob: %+v, want json, 0 messages in, 4 out, id %d", b, join.Conn-1)
	}
	if a.Since.Before(start.Add(-time.Second)) || a.Since.After(time.Now()) || a.QueuedBytes != 0 {
		t.Errorf("alice: since %s, queued %d, want since the test began and nothing queued", a.Since, a.QueuedBytes)
	}
	if team := connections(t, srv, "?room=team"); len(team) != 2 || team["carol"].ID != 0 {
		t.Errorf("?room=team: %+v, want alice and bob", team)
	}
	if none := connections(t, srv, "?room=nobody"); len(none) != 0 {
		t.Errorf("?room=nobody: %+v, want none", none)
	}
	var one connectionInfo
	apiDo(t, srv, "GET", fmt.Sprint("/api/connections/", a.ID), nil).expect(t, http.StatusOK, &one)
	if one.ID != a.ID || one.Name != "alice" {
		t.Errorf("GET /api/connections/%d: %+v", a.ID, one)
	}
}

func TestAPIPushToConnection(t *testing.T) {
	srv := newTestServer(t, "serve", "--api-token", apiToken)
	alice := dialTest(t, srv.url+"team?name=alice", nil)
	bob, wb := jsonClient(t, srv.url+"team?name=bob", nil)
	aliceID := connections(t, srv, "")["alice"].ID

	var res pushResult
	path := fmt.Sprintf("/api/connections/%d/messages", aliceID)
	apiDo(t, srv, "POST", path, strings.NewReader("just you\n"), "Content-Type: text/plain").expect(t, http.StatusAccepted, &res)
	if res.Conn != aliceID || res.Delivered != 1 || res.ID == "" {
		t.Errorf("answer %+v, want conn %d, delivered 1, an id", res, aliceID)
	}
	if op, got := readMsg(t, alice); op != websocket.TextMessage || string(got) != "just you\n" {
		t.Errorf("alice got %d %q", op, got)
	}
	payload := []byte{0xde, 0xad, 0xbe, 0xef}
	path = fmt.Sprintf("/api/connections/%d/messages?from=shop", wb.You.Conn)
	apiDo(t, srv, "POST", path, bytes.NewReader(payload), "Content-Type: application/octet-stream").expect(t, http.StatusAccepted, &res)
	var m messageEvent
	readJSON(t, bob, &m)
	want := messageEvent{Event: "message", ID: res.ID, Seq: 0, Room: "team", From: "shop", Type: "binary", Data: base64.StdEncoding.EncodeToString(payload), Time: m.Time}
	if m != want {
		t.Errorf("bob got %+v, want %+v", m, want)
	}
	// Neither is in the room's history, nor reached the other.
	var h struct{ Messages []messageEvent }
	apiDo(t, srv, "GET", "/api/rooms/team/messages", nil).expect(t, http.StatusOK, &h)
	if len(h.Messages) != 0 {
		t.Errorf("history %+v, want none", h.Messages)
	}
	noMessage(t, alice, "a push to bob")

	apiDo(t, srv, "POST", "/api/connections/999/messages", strings.NewReader("x")).expectError(t, http.StatusNotFound, "no connection 999")
	apiDo(t, srv, "POST", "/api/connections/x/messages", strings.NewReader("x")).expectError(t, http.StatusBadRequest, "connection id")
	apiDo(t, srv, "POST", path, strings.NewReader("caf\xe9"), "Content-Type: text/plain").expectError(t, http.StatusBadRequest, "UTF-8")
}

func TestAPICloseConnection(t *testing.T) {
	srv := newTestServer(t, "serve", "--api-token", apiToken)
	alice := dialTest(t, srv.url+"?name=alice", nil)
	id := connections(t, srv, "")["alice"].ID
	path := fmt.Sprint("/api/connections/", id)
	for _, tt := range []struct{ query, want string }{
		{"?code=1001", "close code"},
		{"?code=2999", "close code"},
		{"?code=5000", "close code"},
		{"?code=x", "close code"},
		{"?reason=" + strings.Repeat("r", 124), "reason"},
		{"?reason=%ff", "reason"},
		{"?cdoe=4000", "cdoe"},
	} {
		apiDo(t, srv, "DELETE", path+tt.query, nil).expectError(t, http.StatusBadRequest, tt.want)
	}
	reason := strings.Repeat("é", 61) + "!" // 123 bytes, the most a close frame holds
	var res closeResult
	apiDo(t, srv, "DELETE", path+"?code=4000&reason="+url.QueryEscape(reason), nil).expect(t, http.StatusAccepted, &res)
	if res != (closeResult{Conn: id, Code: 4000, Reason: reason}) {
		t.Errorf("answer %+v", res)
	}
	if ce := expectClose(t, alice, 4000); ce.Text != reason {
		t.Errorf("close reason %q, want %q", ce.Text, reason)
	}
	waitFor(t, func() bool { return apiDo(t, srv, "GET", path, nil).status == http.StatusNotFound })
	apiDo(t, srv, "DELETE", path, nil).expectError(t, http.StatusNotFound, "no connection")

	// Without a code, 1000.
	bob := dialTest(t, srv.url+"?name=bob", nil)
	apiDo(t, srv, "DELETE", fmt.Sprint("/api/connections/", connections(t, srv, "")["bob"].ID), nil).expect(t, http.StatusAccepted, nil)
	expectClose(t, bob, websocket.CloseNormalClosure)
}

func TestCloseParams(t *testing.T) {
	tests := []struct {
		query      string
		code       int
		reason     string
		wantStatus int // 0: accepted
	}{
		{"", 1000, "", 0},
		{"code=1000", 1000, "", 0},
		{"code=3000&reason=x", 3000, "x", 0},
		{"code=4999", 4999, "", 0},
		{"code=1001", 0, "", 400},
		{"code=1008", 0, "", 400},
		{"code=5000", 0, "", 400},
		{"code=-4000", 0, "", 400},
		{"code=", 0, "", 400},
		{"reason=" + strings.Repeat("a", 123), 1000, strings.Repeat("a", 123), 0},
		{"reason=" + strings.Repeat("a", 124), 0, "", 400},
		{"reason=%C3", 0, "", 400},
		{"why=x", 0, "", 400},
	}
	for _, tt := range tests {
		q, _ := url.ParseQuery(tt.query)
		code, reason, herr := closeParams(q)
		status := 0
		if herr != nil {
			status = herr.status
		}
		if status != tt.wantStatus || (herr == nil && (code != tt.code || reason != tt.reason)) {
			t.Errorf("closeParams(%q) = %d, %q, %v; want %d, %q, status %d", tt.query, code, reason, herr, tt.code, tt.reason, tt.wantStatus)
		}
	}
}
