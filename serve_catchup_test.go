package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

func TestParseResume(t *testing.T) {
	tests := []struct {
		name  string
		query string
		want  *resumePoint
		err   string // part of the 400's message; "" for none
	}{
		{"none", "name=alice", nil, ""},
		{"both", "since=7&epoch=m1x2-ab12cd34", &resumePoint{since: 7, epoch: "m1x2-ab12cd34"}, ""},
		{"zero", "since=0&epoch=e", &resumePoint{since: 0, epoch: "e"}, ""},
		{"since alone", "since=7", nil, "?since= needs ?epoch="},
		{"epoch alone", "epoch=e", nil, "?epoch= needs ?since="},
		{"negative", "since=-1&epoch=e", nil, `invalid ?since="-1"`},
		{"not a number", "since=seven&epoch=e", nil, `invalid ?since="seven"`},
		{"empty since", "since=&epoch=e", nil, `invalid ?since=""`},
		{"too big", "since=18446744073709551616&epoch=e", nil, "invalid ?since="},
		{"empty epoch", "since=1&epoch=", nil, `invalid ?epoch=""`},
		{"bad epoch", "since=1&epoch=a%20b", nil, `invalid ?epoch="a b"`},
		{"long epoch", "since=1&epoch=" + strings.Repeat("e", 65), nil, "invalid ?epoch="},
		{"twice", "since=1&since=2&epoch=e", nil, "given once"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, _ := url.ParseQuery(tt.query)
			got, herr := parseResume(q)
			switch {
			case tt.err != "" && (herr == nil || herr.status != http.StatusBadRequest || !strings.Contains(herr.msg, tt.err)):
				t.Errorf("parseResume(%q) = %+v, %+v; want a 400 saying %q", tt.query, got, herr, tt.err)
			case tt.err == "" && herr != nil:
				t.Errorf("parseResume(%q): %s", tt.query, herr.msg)
			case tt.err == "" && fmt.Sprint(got) != fmt.Sprint(tt.want):
				t.Errorf("parseResume(%q) = %+v, want %+v", tt.query, got, tt.want)
			}
		})
	}
}

// TestRoomCatchUp: a resuming client gets exactly the messages after its
// seq when the history holds all of them in its numbering, else the whole
// history and recovered false.
func TestRoomCatchUp(t *testing.T) {
	mk := func(epoch string, seq uint64, held ...uint64) *room {
		r := &room{epoch: epoch, seq: seq}
		for _, s := range held {
			r.history = append(r.history, &chatMessage{seq: s})
		}
		return r
	}
	tests := []struct {
		name      string
		r         *room
		p         *resumePoint
		want      []uint64
		recovered bool
	}{
		{"first join", mk("e", 5, 3, 4, 5), nil, []uint64{3, 4, 5}, false},
		{"some missed", mk("e", 5, 3, 4, 5), &resumePoint{3, "e"}, []uint64{4, 5}, true},
		{"from the first held", mk("e", 5, 3, 4, 5), &resumePoint{2, "e"}, []uint64{3, 4, 5}, true},
		{"none missed", mk("e", 5, 3, 4, 5), &resumePoint{5, "e"}, nil, true},
		{"none missed, no history", mk("e", 5), &resumePoint{5, "e"}, nil, true},
		{"empty room", mk("e", 0), &resumePoint{0, "e"}, nil, true},
		{"history too short", mk("e", 5, 3, 4, 5), &resumePoint{1, "e"}, []uint64{3, 4, 5}, false},
		{"no history kept", mk("e", 5), &resumePoint{4, "e"}, nil, false},
		{"other epoch", mk("e", 5, 3, 4, 5), &resumePoint{4, "f"}, []uint64{3, 4, 5}, false},
		{"seq past the room's", mk("e", 5, 3, 4, 5), &resumePoint{9, "e"}, []uint64{3, 4, 5}, false},
		{"a gap in the history", mk("e", 5, 2, 4, 5), &resumePoint{2, "e"}, []uint64{2, 4, 5}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msgs, recovered := tt.r.catchUp(tt.p)
			var got []uint64
			for _, m := range msgs {
				got = append(got, m.seq)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) || recovered != tt.recovered {
				t.Errorf("catchUp(%+v) = %v, %v; want %v, %v", tt.p, got, recovered, tt.want, tt.recovered)
			}
		})
	}
}

// sendN sends the texts mFROM..mTO from c and waits until the JSON client
// watcher has them all.
func sendN(t *testing.T, c, watcher *websocket.Conn, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		c.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, "m%d", i))
	}
	for i := from; i <= to; {
		var m messageEvent
		readJSON(t, watcher, &m)
		if m.Event != "message" {
			continue // a join or leave
		}
		if m.Data != fmt.Sprintf("m%d", i) {
			t.Fatalf("watcher got %+v, want m%d", m, i)
		}
		i++
	}
}

// TestServeCatchUpRaw: a raw client that passes ?since= gets only the
// messages it missed, then live ones; when the history no longer reaches
// back that far, the history as on a first join.
func TestServeCatchUpRaw(t *testing.T) {
	srv := newTestServer(t, "serve", "--history", "3")
	sender := dialTest(t, srv.url+"r", nil)
	watcher, w := jsonClient(t, srv.url+"r", nil)
	if w.Epoch == "" || w.Recovered != nil {
		t.Fatalf("welcome without ?since=: epoch %q, recovered %v", w.Epoch, w.Recovered)
	}
	sendN(t, sender, watcher, 1, 5) // the history holds m3, m4, m5

	expect := func(c *websocket.Conn, want ...string) {
		t.Helper()
		for _, text := range want {
			if _, got := readMsg(t, c); string(got) != text {
				t.Fatalf("got %q, want %q", got, text)
			}
		}
	}
	complete := dialTest(t, srv.url+"r?since=3&epoch="+w.Epoch, nil)
	upToDate := dialTest(t, srv.url+"r?since=5&epoch="+w.Epoch, nil)
	tooOld := dialTest(t, srv.url+"r?since=1&epoch="+w.Epoch, nil)
	otherEpoch := dialTest(t, srv.url+"r?since=4&epoch=elsewhere", nil)
	sendN(t, sender, watcher, 6, 6)
	expect(complete, "m4", "m5", "m6")
	expect(upToDate, "m6")
	expect(tooOld, "m3", "m4", "m5", "m6")
	expect(otherEpoch, "m3", "m4", "m5", "m6")
}

// TestServeCatchUpJSON: the welcome says whether the catch-up is complete.
func TestServeCatchUpJSON(t *testing.T) {
	srv := newTestServer(t, "serve", "--history", "3")
	sender := dialTest(t, srv.url+"r", nil)
	watcher, w := jsonClient(t, srv.url+"r", nil)
	sendN(t, sender, watcher, 1, 5)
	tests := []struct {
		query     string
		recovered bool
		history   string
	}{
		{"since=3&epoch=" + w.Epoch, true, "m4 m5"},
		{"since=5&epoch=" + w.Epoch, true, ""},
		{"since=1&epoch=" + w.Epoch, false, "m3 m4 m5"},
		{"since=3&epoch=x" + w.Epoch, false, "m3 m4 m5"},
		{"since=6&epoch=" + w.Epoch, false, "m3 m4 m5"},
	}
	for _, tt := range tests {
		_, got := jsonClient(t, srv.url+"r?"+tt.query, nil)
		var texts []string
		for _, m := range got.History {
			texts = append(texts, m.Data)
		}
		if got.Recovered == nil || *got.Recovered != tt.recovered || strings.Join(texts, " ") != tt.history || got.Epoch != w.Epoch {
			t.Errorf("?%s: recovered %v, history %q, epoch %q; want %v, %q, %q", tt.query, got.Recovered, texts, got.Epoch, tt.recovered, tt.history, w.Epoch)
		}
	}
}

// TestServeCatchUpBadQuery: a malformed ?since= or ?epoch= is answered
// 400 before the upgrade, saying what is wrong; so is a room that would
// take the page files' place.
func TestServeCatchUpBadQuery(t *testing.T) {
	srv := newTestServer(t, "serve")
	for path, want := range map[string]string{
		"r?since=x&epoch=e":  `invalid ?since="x"`,
		"r?since=1":          "?since= needs ?epoch=",
		"r?since=1&epoch=%2": "", // not even a query: net/http refuses it
		".wsx/chat.js":       "reserved",
		".wsxroom":           "reserved",
	} {
		_, resp, err := websocket.DefaultDialer.Dial(srv.url+path, nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %v %v, want 400", path, err, resp)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(body), want) {
			t.Errorf("%s: 400 %q, want it to say %q", path, body, want)
		}
	}
}

// TestServeEpochAcrossRestarts: with --store a room keeps its epoch over a
// restart, so a client catches up; without it the epoch changes. Store
// lines written before lines had an epoch share one derived from the
// file's path, the same at each start.
func TestServeEpochAcrossRestarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chat.jsonl")
	srv := newTestServer(t, "serve", "--store", path, "--shutdown-timeout", "100ms")
	sender := dialTest(t, srv.url+"r", nil)
	watcher, w := jsonClient(t, srv.url+"r", nil)
	sendN(t, sender, watcher, 1, 2)
	srv.stop()

	srv = newTestServer(t, "serve", "--store", path, "--shutdown-timeout", "100ms")
	dialTest(t, srv.url+"r", nil) // a member, so the room is live
	_, again := jsonClient(t, srv.url+"r?since=1&epoch="+w.Epoch, nil)
	if again.Epoch != w.Epoch || again.Recovered == nil || !*again.Recovered || len(again.History) != 1 || again.History[0].Data != "m2" {
		t.Errorf("after a restart with --store: epoch %q (was %q), recovered %v, history %+v; want the same epoch and m2", again.Epoch, w.Epoch, again.Recovered, again.History)
	}
	_, fresh := jsonClient(t, srv.url+"new-room", nil)
	if fresh.Epoch == w.Epoch {
		t.Errorf("a room new in this process has the stored room's epoch %q", w.Epoch)
	}
	srv.stop()

	srv = newTestServer(t, "serve", "--shutdown-timeout", "100ms")
	_, lost := jsonClient(t, srv.url+"r?since=2&epoch="+w.Epoch, nil)
	if lost.Epoch == w.Epoch || lost.Recovered == nil || *lost.Recovered {
		t.Errorf("after a restart without --store: epoch %q (was %q), recovered %v; want a new epoch, not recovered", lost.Epoch, w.Epoch, lost.Recovered)
	}
	srv.stop()

	old := filepath.Join(t.TempDir(), "old.jsonl")
	os.WriteFile(old, []byte(`{"event":"message","id":"a-1","seq":1,"room":"r","from":"x","conn":1,"time":"2026-01-01T00:00:00Z","type":"text","data":"old"}`+"\n"), 0o600)
	var epochs []string
	for range 2 {
		srv = newTestServer(t, "serve", "--store", old, "--shutdown-timeout", "100ms")
		sender := dialTest(t, srv.url+"r", nil)
		watcher, w := jsonClient(t, srv.url+"r", nil)
		epochs = append(epochs, w.Epoch)
		sendN(t, sender, watcher, 2, 2)
		_, w2 := jsonClient(t, srv.url+"r?since=1&epoch="+w.Epoch, nil)
		if w2.Recovered == nil || !*w2.Recovered || len(w2.History) == 0 || w2.History[0].Data != "m2" {
			t.Errorf("legacy store: catch-up from 1 = %v %+v", w2.Recovered, w2.History)
		}
		srv.stop()
	}
	if epochs[0] != legacyEpoch(old) || epochs[1] != epochs[0] {
		t.Errorf("legacy store epochs %q, want %q twice", epochs, legacyEpoch(old))
	}
	data, _ := os.ReadFile(old)
	if n := strings.Count(string(data), `"epoch":"`+epochs[0]+`"`); n != 2 {
		t.Errorf("new lines of a legacy store carry its epoch %d times, want 2:\n%s", n, data)
	}
}
