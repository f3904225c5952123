package main

import (
	"bytes"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestAPIIdempotencyKey(t *testing.T) {
	srv := newTestServer(t, "serve", "--api-token", apiToken)
	c := dialTest(t, srv.url+"r", nil)
	key := "Idempotency-Key: order-42"
	first := publish(t, srv, "r", "text/plain", []byte("once"), key)
	var res publishResult
	first.expect(t, http.StatusAccepted, &res)
	again := publish(t, srv, "r", "text/plain", []byte("once"), key)
	again.expect(t, http.StatusAccepted, nil)
	if !bytes.Equal(again.body, first.body) || again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("retry answered %s (replayed %q), want the first answer %s", again.body, again.header.Get("Idempotent-Replayed"), first.body)
	}
	publish(t, srv, "r", "text/plain", []byte("other body"), key).expectError(t, http.StatusConflict, "Idempotency-Key")
	publish(t, srv, "elsewhere", "text/plain", []byte("once"), key).expectError(t, http.StatusConflict, "Idempotency-Key")
	publish(t, srv, "r", "text/plain", []byte("once"), "Idempotency-Key: "+strings.Repeat("k", 256)).expectError(t, http.StatusBadRequest, "Idempotency-Key")

	// Retries racing each other still publish once.
	var wg sync.WaitGroup
	answers := make([][]byte, 8)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := publish(t, srv, "r", "text/plain", []byte("raced"), "Idempotency-Key: race")
			if r.status == http.StatusAccepted {
				answers[i] = r.body
			}
		}()
	}
	wg.Wait()
	for i, a := range answers {
		if !bytes.Equal(a, answers[0]) || a == nil {
			t.Errorf("racing retry %d answered %s, want %s like the others", i, a, answers[0])
		}
	}
	publish(t, srv, "r", "text/plain", []byte("marker")).expect(t, http.StatusAccepted, nil)
	for _, want := range []string{"once", "raced", "marker"} {
		if _, got := readMsg(t, c); string(got) != want {
			t.Fatalf("client got %q, want %q: each key publishes once", got, want)
		}
	}
}

func TestIdempotencyCacheExpiresAndEvicts(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newIdempotencyCache(5*time.Minute, 3)
	c.now = func() time.Time { return now }
	fp := requestFingerprint("room r", "api", 0, websocket.TextMessage, []byte("x"))
	begin := func(key string) bool {
		e, owner := c.begin(key, fp)
		if owner {
			c.finish(e, http.StatusAccepted, []byte(`{}`))
		}
		return owner
	}
	if !begin("a") || begin("a") {
		t.Fatal("a new key must be owned, a known one not")
	}
	now = now.Add(5*time.Minute - time.Nanosecond)
	if begin("a") {
		t.Error("key forgotten before its 5 minutes")
	}
	now = now.Add(time.Nanosecond)
	if !begin("a") {
		t.Error("key still known after 5 minutes")
	}
	begin("b")
	begin("c")
	begin("d") // over the cap of 3: the oldest, a, goes
	if c.len() != 3 || !begin("a") {
		t.Errorf("after a fourth key: %d keys, and the oldest still known", c.len())
	}
	if begin("d") {
		t.Error("the newest key was evicted instead of the oldest")
	}

	// A failed first attempt is forgotten, so a retry tries again.
	e, _ := c.begin("fails", fp)
	c.finish(e, http.StatusInternalServerError, []byte(`{"error":"x"}`))
	if _, owner := c.begin("fails", fp); !owner {
		t.Error("a key whose first attempt failed is still remembered")
	}
}

func TestRequestFingerprint(t *testing.T) {
	base := requestFingerprint("room r", "api", 0, websocket.TextMessage, []byte("x"))
	for _, tt := range []struct {
		name string
		fp   [32]byte
	}{
		{"target", requestFingerprint("room s", "api", 0, websocket.TextMessage, []byte("x"))},
		{"sender", requestFingerprint("room r", "apj", 0, websocket.TextMessage, []byte("x"))},
		{"exclude", requestFingerprint("room r", "api", 1, websocket.TextMessage, []byte("x"))},
		{"type", requestFingerprint("room r", "api", 0, websocket.BinaryMessage, []byte("x"))},
		{"body", requestFingerprint("room r", "api", 0, websocket.TextMessage, []byte("y"))},
		{"field boundary", requestFingerprint("room ra", "pi", 0, websocket.TextMessage, []byte("x"))},
	} {
		if tt.fp == base {
			t.Errorf("a different %s gives the same fingerprint", tt.name)
		}
	}
}
