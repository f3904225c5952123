package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// probeWait bounds how long a silent subscription may go unnoticed: a
// probe every probeBeats heartbeats, found missing at the next one, then a
// reconnect with backoff.
const probeWait = 2*probeBeats*heartbeatInterval + 2*backoffMax

// redisProxy forwards loopback connections to a redis-server and can make
// the subscriptions open at one moment silent: they stay open, and what
// Redis sends on them is dropped — a subscription that stopped receiving,
// as after a failover (centrifugo#1189). Later connections are not muted.
type redisProxy struct {
	*testProxy
	subsMu sync.Mutex
	subs   map[int]bool // connections that subscribed
	muted  map[int]bool
}

func startRedisProxy(t *testing.T, target string) *redisProxy {
	p := &redisProxy{testProxy: newTestProxy(t, target), subs: map[int]bool{}, muted: map[int]bool{}}
	p.up = func(conn int, b []byte) bool { // note a SUBSCRIBE
		if bytes.Contains(bytes.ToLower(b), []byte("subscribe")) {
			p.subsMu.Lock()
			p.subs[conn] = true
			p.subsMu.Unlock()
		}
		return true
	}
	p.down = func(conn int, _ []byte) bool {
		p.subsMu.Lock()
		defer p.subsMu.Unlock()
		return !p.muted[conn]
	}
	p.start()
	return p
}

func (p *redisProxy) url() string { return "redis://" + p.addr() + "/0" }

// muteSubscriptions silences the subscription connections open now and
// reports how many there were.
func (p *redisProxy) muteSubscriptions() int {
	p.subsMu.Lock()
	defer p.subsMu.Unlock()
	for conn := range p.subs {
		p.muted[conn] = true
	}
	return len(p.subs)
}

// TestRedisSilentSubscription makes one process's subscription silent: the
// probe finds it, the process subscribes again, and its client gets the
// messages sent meanwhile, in order, then those after — without a restart.
func TestRedisSilentSubscription(t *testing.T) {
	r := startRedis(t)
	proxy := startRedisProxy(t, fmt.Sprintf("127.0.0.1:%d", r.port))
	near := newTestServer(t, "serve", "--redis", r.url())
	far := newTestServer(t, "serve", "--redis", proxy.url())
	sender, _ := jsonClient(t, near.url+"s", nil)
	receiver, _ := jsonClient(t, far.url+"s", nil)
	receiver.SetReadDeadline(time.Time{}) // the test's waits bound it; the server's close ends it
	events := readAll(receiver)
	// next returns the data of the next message event, or reports false if
	// none came within d.
	next := func(d time.Duration) (string, bool) {
		t.Helper()
		timeout := time.After(d)
		for {
			select {
			case data, ok := <-events:
				if !ok {
					t.Fatal("the far connection ended")
				}
				var m messageEvent
				if json.Unmarshal(data, &m); m.Event == "message" {
					return m.Data, true
				}
			case <-timeout:
				return "", false
			}
		}
	}
	send := func(text string) {
		t.Helper()
		if err := sender.WriteMessage(websocket.TextMessage, []byte(text)); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(text string, within time.Duration) {
		t.Helper()
		m, ok := next(within)
		if !ok {
			t.Fatalf("%q did not arrive in %v; far server log:\n%s", text, within, far.stderr.String())
		}
		if m != text {
			t.Fatalf("got %q, want %q", m, text)
		}
	}
	send("before")
	expect("before", testTimeout)

	if n := proxy.muteSubscriptions(); n != 1 {
		t.Fatalf("the far process has %d subscription connections, want 1", n)
	}
	send("silent-1")
	send("silent-2")
	if m, ok := next(300 * time.Millisecond); ok {
		t.Fatalf("a silent subscription delivered %q", m)
	}
	// The probe finds the silence; the process subscribes again, syncs the
	// room and gives its client what it missed.
	expect("silent-1", probeWait+testTimeout)
	expect("silent-2", testTimeout)
	if log := far.stderr.String(); !strings.Contains(log, "subscription stopped receiving") {
		t.Errorf("the far process did not log the silent subscription:\n%s", log)
	}
	send("after")
	expect("after", testTimeout)
}
