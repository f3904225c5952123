package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// apiToken is the --api-token of the API tests.
const apiToken = "api-s3cret"

// apiResponse is an answer from the API, its body read.
type apiResponse struct {
	status int
	header http.Header
	body   []byte
}

// apiDo sends a request to srv's HTTP side with the API token (unless a
// header "Authorization: ..." is given) and the headers given as
// "Name: value" strings.
func apiDo(t *testing.T, srv *testServer, method, path string, body io.Reader, headers ...string) apiResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(httpURL(srv.url), "/")+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+apiToken)
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ": ")
		req.Header.Set(name, value)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return apiResponse{status: resp.StatusCode, header: resp.Header, body: b}
}

// expect fails the test unless the answer has the status and a JSON body,
// which it decodes into v (if not nil).
func (r apiResponse) expect(t *testing.T, status int, v any) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json; body %s", ct, r.body)
	}
	var any map[string]any
	if err := json.Unmarshal(r.body, &any); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.body, err)
	}
	if v != nil {
		if err := json.Unmarshal(r.body, v); err != nil {
			t.Fatalf("body %q: %v", r.body, err)
		}
	}
}

// expectError checks an error answer: the status, a JSON {"error"} that
// contains want.
func (r apiResponse) expectError(t *testing.T, status int, want string) {
	t.Helper()
	var e apiError
	r.expect(t, status, &e)
	if e.Error == "" || !strings.Contains(e.Error, want) {
		t.Fatalf("error %q, want it to mention %q", e.Error, want)
	}
}

// publish posts a message to a room, given as ROOM or ROOM?QUERY, and
// returns the answer.
func publish(t *testing.T, srv *testServer, room, contentType string, body []byte, headers ...string) apiResponse {
	t.Helper()
	path := "/api/rooms/" + room + "/messages"
	if name, query, ok := strings.Cut(room, "?"); ok {
		path = "/api/rooms/" + name + "/messages?" + query
	}
	if contentType != "" {
		headers = append(headers, "Content-Type: "+contentType)
	}
	return apiDo(t, srv, "POST", path, bytes.NewReader(body), headers...)
}

func TestAPIPublishReachesRawAndJSONClients(t *testing.T) {
	store := filepath.Join(t.TempDir(), "chat.jsonl")
	srv := newTestServer(t, "serve", "--api-token", apiToken, "--store", store)
	raw := dialTest(t, srv.url+"orders", nil)
	js, _ := jsonClient(t, srv.url+"orders", nil)

	tests := []struct {
		name        string
		contentType string
		query       string
		body        []byte
		op          int
		from        string
	}{
		{"text with a newline", "text/plain; charset=utf-8", "", []byte("new order #42\n"), websocket.TextMessage, "api"},
		{"binary", "application/octet-stream", "", []byte{0, 0xff, 0x10, '\n'}, websocket.BinaryMessage, "api"},
		{"JSON is text", "application/json", "?from=shop", []byte(`{"price": 1.5}`), websocket.TextMessage, "shop"},
		{"no Content-Type is binary", "", "", []byte("raw bytes"), websocket.BinaryMessage, "api"},
	}
	for i, tt := range tests {
		var res publishResult
		publish(t, srv, "orders"+tt.query, tt.contentType, tt.body).expect(t, http.StatusAccepted, &res)
		if res.Seq != uint64(i+1) || res.Room != "orders" || res.Delivered != 2 || res.ID == "" {
			t.Errorf("%s: answer %+v, want seq %d, room orders, delivered 2, an id", tt.name, res, i+1)
		}
		if op, got := readMsg(t, raw); op != tt.op || !bytes.Equal(got, tt.body) {
			t.Errorf("%s: raw client got type %d %q, want type %d %q", tt.name, op, got, tt.op, tt.body)
		}
		var m messageEvent
		readJSON(t, js, &m)
		want := messageEvent{Event: "message", ID: res.ID, Seq: res.Seq, Room: "orders", From: tt.from, Type: "text", Data: string(tt.body), Time: m.Time}
		if tt.op == websocket.BinaryMessage {
			want.Type, want.Data = "binary", base64.StdEncoding.EncodeToString(tt.body)
		}
		if m != want {
			t.Errorf("%s: JSON client got %+v, want %+v", tt.name, m, want)
		}
	}

	// A late joiner gets them from the history, in order, with their types.
	late := dialTest(t, srv.url+"orders", nil)
	for _, tt := range tests {
		if op, got := readMsg(t, late); op != tt.op || !bytes.Equal(got, tt.body) {
			t.Errorf("history: got type %d %q, want type %d %q", op, got, tt.op, tt.body)
		}
	}
	lines := strings.Split(strings.TrimSpace(readFile(t, store)), "\n")
	if len(lines) != len(tests) {
		t.Fatalf("--store has %d lines, want %d:\n%s", len(lines), len(tests), strings.Join(lines, "\n"))
	}
	for i, l := range lines {
		m, err := parseStoredLine([]byte(l))
		if err != nil || m.seq != uint64(i+1) || m.from != tests[i].from || m.op != tests[i].op || !bytes.Equal(m.data, tests[i].body) {
			t.Errorf("--store line %d %s: %+v %v", i+1, l, m, err)
		}
	}
}

// readFile returns a file's contents, failing the test if it cannot.
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestAPIPublishInOrderWithChat: an API message takes its place among the
// clients' messages, numbered in the same sequence.
func TestAPIPublishInOrderWithChat(t *testing.T) {
	srv := newTestServer(t, "serve", "--api-token", apiToken)
	sender := dialTest(t, srv.url, nil)
	js, _ := jsonClient(t, srv.url, nil)
	var m messageEvent
	sender.WriteMessage(websocket.TextMessage, []byte("one"))
	readJSON(t, js, &m)
	publish(t, srv, "lobby", "text/plain", []byte("two")).expect(t, http.StatusAccepted, nil)
	sender.WriteMessage(websocket.TextMessage, []byte("three"))
	for i, want := range []string{"two", "three"} {
		readJSON(t, js, &m)
		if m.Data != want || m.Seq != uint64(i+2) {
			t.Errorf("got %q seq %d, want %q seq %d", m.Data, m.Seq, want, i+2)
		}
	}
}

// TestAPIPublishExclude: ?exclude= skips one connection of the room, even
// with --include-self (which is about a client's own messages).
func TestAPIPublishExclude(t *testing.T) {
	srv := newTestServer(t, "serve", "--api-token", apiToken, "--include-self")
	a, _ := jsonClient(t, srv.url+"r", nil)
	b, wb := jsonClient(t, srv.url+"r", nil)
	readJSON(t, a, new(noticeEvent)) // b joined
	var res publishResult
	publish(t, srv, fmt.Sprintf("r?exclude=%d", wb.You.Conn), "text/plain", []byte("not for b")).expect(t, http.StatusAccepted, &res)
	if res.Delivered != 1 {
		t.Errorf("delivered %d, want 1 (b excluded)", res.Delivered)
	}
	var m messageEvent
	readJSON(t, a, &m)
	if m.Data != "not for b" {
		t.Errorf("a got %q", m.Data)
	}
	// A connection of another room excludes nobody here; and b's next
	// message is this one, so it did not get the first.
	other, wo := jsonClient(t, srv.url+"elsewhere", nil)
	publish(t, srv, fmt.Sprintf("r?exclude=%d", wo.You.Conn), "text/plain", []byte("for both")).expect(t, http.StatusAccepted, &res)
	if res.Delivered != 2 {
		t.Errorf("exclude of another room's connection: delivered %d, want 2", res.Delivered)
	}
	for _, c := range []*websocket.Conn{a, b} {
		if readJSON(t, c, &m); m.Data != "for both" {
			t.Errorf("got %q, want the message published after the one that excluded b", m.Data)
		}
	}
	noMessage(t, other, "a client of another room")
}

func TestAPIAuth(t *testing.T) {
	guarded := newTestServer(t, "serve", "--api-token", apiToken, "--token", "chat-token")
	tests := []struct {
		name   string
		header string
		path   string
		status int
	}{
		{"no token", "Authorization: ", "/api/rooms", http.StatusUnauthorized},
		{"wrong token", "Authorization: Bearer nope", "/api/rooms", http.StatusUnauthorized},
		{"the chat token", "Authorization: Bearer chat-token", "/api/rooms", http.StatusUnauthorized},
		{"the token as Basic password", "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("x:"+apiToken)), "/api/rooms", http.StatusUnauthorized},
		{"the token in the query", "Authorization: ", "/api/rooms?token=" + apiToken, http.StatusUnauthorized},
		{"the API token", "Authorization: Bearer " + apiToken, "/api/rooms", http.StatusOK},
		{"lower-case scheme", "Authorization: bearer " + apiToken, "/api/rooms", http.StatusOK},
		{"metrics without the token", "Authorization: ", "/metrics", http.StatusUnauthorized},
		{"unknown endpoint without the token", "Authorization: ", "/api/nope", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		r := apiDo(t, guarded, "GET", tt.path, nil, tt.header)
		if r.status != tt.status {
			t.Errorf("%s: status %d, want %d (%s)", tt.name, r.status, tt.status, r.body)
		}
		if tt.status == http.StatusUnauthorized {
			r.expectError(t, http.StatusUnauthorized, "token")
			if r.header.Get("Www-Authenticate") == "" {
				t.Errorf("%s: 401 without WWW-Authenticate", tt.name)
			}
		}
	}

	// Without a token the API is off, whatever is sent.
	off := newTestServer(t, "serve")
	for _, path := range []string{"/api/rooms", "/api/rooms/lobby/messages", "/metrics", "/api"} {
		apiDo(t, off, "GET", path, nil).expectError(t, http.StatusNotFound, "--api-token")
	}
	publish(t, off, "lobby", "text/plain", []byte("x")).expectError(t, http.StatusNotFound, "off")

	open := newTestServer(t, "serve", "--api-open")
	apiDo(t, open, "GET", "/api/rooms", nil, "Authorization: ").expect(t, http.StatusOK, nil)
	if r := apiDo(t, open, "GET", "/metrics", nil, "Authorization: "); r.status != http.StatusOK {
		t.Errorf("--api-open: /metrics status %d, want 200", r.status)
	}
	// A web page elsewhere cannot use the browser to post to an open API.
	publish(t, open, "lobby", "text/plain", []byte("x"), "Sec-Fetch-Site: cross-site").expectError(t, http.StatusForbidden, "cross-origin")
	publish(t, open, "lobby", "text/plain", []byte("x"), "Origin: https://evil.example").expectError(t, http.StatusForbidden, "cross-origin")
	metricsOnly := newTestServer(t, "serve", "--metrics-open")
	if r := apiDo(t, metricsOnly, "GET", "/metrics", nil, "Authorization: "); r.status != http.StatusOK {
		t.Errorf("--metrics-open: /metrics status %d, want 200", r.status)
	}
	apiDo(t, metricsOnly, "GET", "/api/rooms", nil).expectError(t, http.StatusNotFound, "off")
}

func TestAPIOpenWithTokenIsUsageError(t *testing.T) {
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"wsx", "serve", "--api-open", "--api-token", "t", "--addr", "127.0.0.1:0"}, strings.NewReader(""), io.Discard, &stderr)
	if code != exitUsage || !strings.Contains(stderr.String(), "--api-open") {
		t.Errorf("exit %d, stderr %q; want %d naming --api-open", code, stderr.String(), exitUsage)
	}
}

func TestAPIErrors(t *testing.T) {
	srv := newTestServer(t, "serve", "--api-token", apiToken, "--max-message-size", "4KiB")
	c := dialTest(t, srv.url, nil)
	publish(t, srv, "lobby", "text/plain", []byte("caf\xe9")).expectError(t, http.StatusBadRequest, "UTF-8")
	publish(t, srv, "lobby", "application/json", []byte{0xff}).expectError(t, http.StatusBadRequest, "UTF-8")
	publish(t, srv, "lobby", "application/octet-stream", make([]byte, 4097)).expectError(t, http.StatusRequestEntityTooLarge, "max-message-size")
	// Without Content-Length (chunked), the limit holds while reading.
	chunked := apiDo(t, srv, "POST", "/api/rooms/lobby/messages", io.MultiReader(bytes.NewReader(make([]byte, 4096)), strings.NewReader("x")))
	chunked.expectError(t, http.StatusRequestEntityTooLarge, "max-message-size")
	publish(t, srv, "lobby", "text/plain; charset", []byte("x")).expectError(t, http.StatusBadRequest, "Content-Type")
	publish(t, srv, "lobby?from=not%20a%20name", "text/plain", []byte("x")).expectError(t, http.StatusBadRequest, "from")
	publish(t, srv, "lobby?from=ok&exlcude=3", "text/plain", []byte("x")).expectError(t, http.StatusBadRequest, "exlcude")
	publish(t, srv, "lobby?exclude=me", "text/plain", []byte("x")).expectError(t, http.StatusBadRequest, "exclude")
	publish(t, srv, "api", "text/plain", []byte("x")).expectError(t, http.StatusBadRequest, "reserved")
	publish(t, srv, "metrics%2Fx", "text/plain", []byte("x")).expectError(t, http.StatusBadRequest, "reserved")
	publish(t, srv, "a%00b", "text/plain", []byte("x")).expectError(t, http.StatusBadRequest, "invalid room")
	publish(t, srv, "%2Fteam", "text/plain", []byte("x")).expectError(t, http.StatusBadRequest, "invalid room")

	for _, tt := range []struct{ method, path, allow string }{
		{"PUT", "/api/rooms/lobby/messages", "GET, HEAD, POST"},
		{"DELETE", "/api/rooms", "GET, HEAD"},
		{"POST", "/api/connections/1", "DELETE, GET, HEAD"},
		{"POST", "/metrics", "GET, HEAD"},
	} {
		r := apiDo(t, srv, tt.method, tt.path, nil)
		r.expectError(t, http.StatusMethodNotAllowed, tt.method)
		if got := r.header.Get("Allow"); got != tt.allow {
			t.Errorf("%s %s: Allow %q, want %q", tt.method, tt.path, got, tt.allow)
		}
	}
	apiDo(t, srv, "GET", "/api/nope", nil).expectError(t, http.StatusNotFound, "/api/nope")
	apiDo(t, srv, "GET", "/api/rooms/lobby/messages?since=x", nil).expectError(t, http.StatusBadRequest, "since")
	apiDo(t, srv, "GET", "/api/rooms/lobby/messages?limit=0", nil).expectError(t, http.StatusBadRequest, "limit")

	// None of the refused publishes reached the client.
	publish(t, srv, "lobby", "application/octet-stream", make([]byte, 4096)).expect(t, http.StatusAccepted, nil)
	if _, got := readMsg(t, c); len(got) != 4096 {
		t.Errorf("client got %d bytes, want only the message at the limit", len(got))
	}
}
