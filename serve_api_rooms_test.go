package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// TestServeReservedRoomNames: the HTTP side's paths are no rooms, for an
// upgrade or for the page; a client cannot call itself "api".
func TestServeReservedRoomNames(t *testing.T) {
	srv := newTestServer(t, "serve")
	for _, path := range []string{"api", "api/x", "metrics", "healthz", "readyz", "readyz/deep/er"} {
		_, resp, err := websocket.DefaultDialer.Dial(srv.url+path, nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Errorf("upgrade to /%s: %v %v, want 400", path, resp, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(body), "reserved") {
			t.Errorf("upgrade to /%s: %q does not say the name is reserved", path, body)
		}
	}
	apiDo(t, srv, "GET", "/metrics/x", nil).expectError(t, http.StatusBadRequest, "reserved")
	apiDo(t, srv, "GET", "/healthz/x", nil).expectError(t, http.StatusBadRequest, "reserved")
	var ready struct{ Status string }
	apiDo(t, srv, "GET", "/readyz", nil).expect(t, http.StatusOK, &ready)
	if ready.Status != "ready" {
		t.Errorf("/readyz status %q, want ready", ready.Status)
	}
	if _, resp, err := websocket.DefaultDialer.Dial(srv.url+"?name=api", nil); err == nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("name api: %v, want 400", resp)
	}
	// Names that only start like a reserved one are rooms as before.
	a := dialTest(t, srv.url+"apiary", nil)
	b := dialTest(t, srv.url+"apiary", nil)
	a.WriteMessage(websocket.TextMessage, []byte("buzz"))
	if _, got := readMsg(t, b); string(got) != "buzz" {
		t.Errorf("room apiary: got %q", got)
	}
	if r := apiDo(t, srv, "GET", "/metricsx", nil); r.status != http.StatusOK {
		t.Errorf("page of /metricsx: status %d, want 200", r.status)
	}
}

func TestAPIRoomsAndHistory(t *testing.T) {
	srv := newTestServer(t, "serve", "--api-token", apiToken, "--history", "3")
	_, wa := jsonClient(t, srv.url+"team?name=ann", nil)
	_, wb := jsonClient(t, srv.url+"team?name=ben", nil)
	dialTest(t, srv.url, nil)
	for _, s := range []string{"m1", "m2", "m3", "m4"} {
		publish(t, srv, "team", "text/plain", []byte(s)).expect(t, http.StatusAccepted, nil)
	}
	var rooms struct{ Rooms []roomSummary }
	apiDo(t, srv, "GET", "/api/rooms", nil).expect(t, http.StatusOK, &rooms)
	want := []roomSummary{{Room: "lobby", Clients: 1}, {Room: "team", Clients: 2, Seq: 4}}
	if fmt.Sprint(rooms.Rooms) != fmt.Sprint(want) {
		t.Errorf("rooms %+v, want %+v", rooms.Rooms, want)
	}
	var room roomDetail
	apiDo(t, srv, "GET", "/api/rooms/team", nil).expect(t, http.StatusOK, &room)
	online := []onlineUser{wa.You, wb.You}
	if room.Room != "team" || room.Seq != 4 || room.Clients != 2 || room.History != 3 || fmt.Sprint(room.Online) != fmt.Sprint(online) {
		t.Errorf("room %+v, want team, seq 4, 2 clients %v, 3 in history", room, online)
	}
	apiDo(t, srv, "GET", "/api/rooms/empty", nil).expect(t, http.StatusOK, &room)
	if room.Room != "empty" || room.Clients != 0 || room.Online == nil {
		t.Errorf("a room nobody used: %+v, want it empty with an empty online list", room)
	}

	for _, tt := range []struct {
		query string
		want  []string
	}{
		{"", []string{"m2", "m3", "m4"}},
		{"?since=2", []string{"m3", "m4"}},
		{"?since=1&limit=1", []string{"m2"}},
		{"?since=4", []string{}},
	} {
		var h struct {
			Room     string
			Seq      uint64
			Messages []messageEvent
		}
		apiDo(t, srv, "GET", "/api/rooms/team/messages"+tt.query, nil).expect(t, http.StatusOK, &h)
		got := []string{}
		for _, m := range h.Messages {
			got = append(got, m.Data)
			if m.Event != "message" || m.From != "api" || m.Room != "team" {
				t.Errorf("history event %+v", m)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) || h.Seq != 4 || h.Messages == nil {
			t.Errorf("history%s: %v (seq %d), want %v (seq 4)", tt.query, got, h.Seq, tt.want)
		}
	}
}

func TestReservedRoom(t *testing.T) {
	tests := []struct {
		room string
		want bool
	}{
		{"api", true}, {"api/v2", true}, {"metrics", true}, {"healthz", true}, {"readyz/x", true},
		{"lobby", false}, {"apiary", false}, {"team/api", false}, {"Metrics", false},
	}
	for _, tt := range tests {
		if got := reservedRoom(tt.room); got != tt.want {
			t.Errorf("reservedRoom(%q) = %v, want %v", tt.room, got, tt.want)
		}
	}
}

func TestIsTextType(t *testing.T) {
	tests := []struct {
		mediaType string
		want      bool
	}{
		{"text/plain", true}, {"text/csv", true}, {"application/json", true}, {"application/ld+json", true},
		{"application/octet-stream", false}, {"image/png", false}, {"application/x-www-form-urlencoded", false},
	}
	for _, tt := range tests {
		if got := isTextType(tt.mediaType); got != tt.want {
			t.Errorf("isTextType(%q) = %v, want %v", tt.mediaType, got, tt.want)
		}
	}
}
