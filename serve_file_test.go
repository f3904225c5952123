package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

func TestParseFileAnnouncement(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool     // an announcement
		want fileMeta // when it is a good one
		err  string   // part of the error when it is a bad one
	}{
		{"name and mime", `{"event":"file","name":"cat.png","mime":"image/png"}`, true, fileMeta{"cat.png", "image/png"}, ""},
		{"spaces around", " {\"event\": \"file\", \"name\": \"a b.txt\"}\n", true, fileMeta{name: "a b.txt"}, ""},
		{"neither", `{"event":"file"}`, true, fileMeta{}, ""},
		{"unicode name", `{"event":"file","name":"Ünïcödé ✓.pdf","mime":"application/pdf"}`, true, fileMeta{"Ünïcödé ✓.pdf", "application/pdf"}, ""},
		{"escaped name", `{"event":"file","name":"\u00e9t\u00e9.jpg"}`, true, fileMeta{name: "été.jpg"}, ""},
		{"plain text", `hello {"event":"file"}`, false, fileMeta{}, ""},
		{"another event", `{"event":"message","data":"file"}`, false, fileMeta{}, ""},
		{"not JSON", `{"event":"file",`, false, fileMeta{}, ""},
		{"trailing text", `{"event":"file"} and more`, false, fileMeta{}, ""},
		{"an array", `[{"event":"file"}]`, false, fileMeta{}, ""},
		{"too long to be one", `{"event":"file","name":"` + strings.Repeat("x", maxAnnouncement) + `"}`, false, fileMeta{}, ""},
		{"long name", `{"event":"file","name":"` + strings.Repeat("é", 128) + `"}`, true, fileMeta{}, "256 bytes, at most 255"},
		{"longest name", `{"event":"file","name":"` + strings.Repeat("x", 255) + `"}`, true, fileMeta{name: strings.Repeat("x", 255)}, ""},
		{"newline in name", `{"event":"file","name":"a\nb"}`, true, fileMeta{}, "control character"},
		{"NUL in name", `{"event":"file","name":"a\u0000b"}`, true, fileMeta{}, "control character"},
		{"right-to-left override", `{"event":"file","name":"a\u202egpj.exe"}`, true, fileMeta{}, "control character"},
		{"mime without subtype", `{"event":"file","mime":"image"}`, true, fileMeta{}, `mime "image" is not type/subtype`},
		{"mime with parameters", `{"event":"file","mime":"text/plain; charset=utf-8"}`, true, fileMeta{}, "not type/subtype"},
		{"mime with spaces", `{"event":"file","mime":"image/ png"}`, true, fileMeta{}, "not type/subtype"},
		{"name not a string", `{"event":"file","name":7}`, true, fileMeta{}, "must be strings"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := parseFileAnnouncement([]byte(tt.in))
			switch {
			case ok != tt.ok:
				t.Errorf("parseFileAnnouncement(%q): announcement %v, want %v", tt.in, ok, tt.ok)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("parseFileAnnouncement(%q) error %v, want one saying %q", tt.in, err, tt.err)
			case tt.err == "" && (err != nil || got != tt.want):
				t.Errorf("parseFileAnnouncement(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
		})
	}
}

// nextMessage reads JSON events until a message event.
func nextMessage(t *testing.T, c *websocket.Conn) messageEvent {
	t.Helper()
	for {
		var m messageEvent
		readJSON(t, c, &m)
		if m.Event == "message" {
			return m
		}
	}
}

// TestServeFileAnnouncement: a JSON client's announcement gives its next
// binary message a name and a type, for JSON clients, in the history and
// in --store; raw clients get the bytes alone. A bad announcement is
// refused with an error event; a text message in between discards it; a
// raw client's text is never read as one.
func TestServeFileAnnouncement(t *testing.T) {
	store := filepath.Join(t.TempDir(), "chat.jsonl")
	srv := newTestServer(t, "serve", "--store", store, "--max-message-size", "100KiB", "--shutdown-timeout", "100ms")
	raw := dialTest(t, srv.url+"f?name=rawbot", nil)
	watcher, _ := jsonClient(t, srv.url+"f?name=watcher", nil)
	sender, w := jsonClient(t, srv.url+"f?name=alice", nil)
	if w.MaxMessageSize != 100<<10 {
		t.Errorf("welcome max_message_size %d, want %d", w.MaxMessageSize, 100<<10)
	}
	png := []byte("\x89PNG\r\n\x1a\nnot really")
	sender.WriteMessage(websocket.TextMessage, []byte(`{"event":"file","name":"cat.png","mime":"image/png"}`))
	sender.WriteMessage(websocket.BinaryMessage, png)
	if op, got := readMsg(t, raw); op != websocket.BinaryMessage || !bytes.Equal(got, png) {
		t.Fatalf("raw client got %d %q, want the file's bytes", op, got)
	}
	m := nextMessage(t, watcher)
	if m.Type != "binary" || m.Name != "cat.png" || m.Mime != "image/png" || m.Data != base64.StdEncoding.EncodeToString(png) || m.Seq != 1 {
		t.Errorf("JSON client got %+v", m)
	}

	// A bad announcement: an error for its sender, nothing for anyone.
	sender.WriteMessage(websocket.TextMessage, []byte(`{"event":"file","name":"a\nb"}`))
	var e errorEvent
	readJSON(t, sender, &e)
	if e.Event != "error" || e.Code != "bad-request" || !strings.Contains(e.Message, "control character") {
		t.Errorf("bad announcement: %+v", e)
	}
	// Announced, then a text: the announcement is dropped.
	sender.WriteMessage(websocket.TextMessage, []byte(`{"event":"file","name":"x.bin"}`))
	sender.WriteMessage(websocket.TextMessage, []byte("plain text"))
	sender.WriteMessage(websocket.BinaryMessage, []byte{1, 2})
	if _, got := readMsg(t, raw); string(got) != "plain text" {
		t.Fatalf("raw client got %q, want the text", got)
	}
	if m := nextMessage(t, watcher); m.Data != "plain text" || m.Name != "" {
		t.Errorf("JSON client got %+v, want the text", m)
	}
	if m := nextMessage(t, watcher); m.Type != "binary" || m.Name != "" || m.Mime != "" {
		t.Errorf("binary after a text: %+v, want no name or mime", m)
	}
	readMsg(t, raw)
	// A raw client's text is its message, whatever it looks like.
	raw.WriteMessage(websocket.TextMessage, []byte(`{"event":"file","name":"y.png"}`))
	if m := nextMessage(t, watcher); m.Type != "text" || m.Data != `{"event":"file","name":"y.png"}` {
		t.Errorf("a raw client's text: %+v", m)
	}

	_, late := jsonClient(t, srv.url+"f?name=late", nil)
	if len(late.History) != 4 || late.History[0].Name != "cat.png" || late.History[0].Mime != "image/png" {
		t.Errorf("history: %+v", late.History)
	}
	srv.stop()
	data, _ := os.ReadFile(store)
	var line storedLine
	if err := json.Unmarshal(bytes.SplitN(data, []byte("\n"), 2)[0], &line); err != nil || line.Name != "cat.png" || line.Mime != "image/png" || line.Epoch != w.Epoch {
		t.Errorf("store line %q: %+v %v", data, line, err)
	}
	if bytes.Contains(data, []byte(`"event":"file"`)) || bytes.Count(data, []byte("\n")) != 4 {
		t.Errorf("announcements stored as messages:\n%s", data)
	}
}
