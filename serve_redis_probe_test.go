package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
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
	l      net.Listener
	target string
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
	subs   []*atomic.Bool // per subscription connection: muted
}

func startRedisProxy(t *testing.T, target string) *redisProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &redisProxy{l: l, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *redisProxy) url() string { return "redis://" + p.l.Addr().String() + "/0" }

// muteSubscriptions silences the subscription connections open now and
// reports how many there were.
func (p *redisProxy) muteSubscriptions() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.subs {
		m.Store(true)
	}
	return len(p.subs)
}

func (p *redisProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		r, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, r)
		p.mu.Unlock()
		muted := new(atomic.Bool)
		p.wg.Add(2)
		go func() { // client → Redis, noting a SUBSCRIBE
			defer p.wg.Done()
			defer r.Close()
			buf := make([]byte, 32<<10)
			subscribed := false
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if !subscribed && bytes.Contains(bytes.ToLower(buf[:n]), []byte("subscribe")) {
						subscribed = true
						p.mu.Lock()
						p.subs = append(p.subs, muted)
						p.mu.Unlock()
					}
					if _, err := r.Write(buf[:n]); err != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
		go func() { // Redis → client, unless muted
			defer p.wg.Done()
			defer c.Close()
			buf := make([]byte, 32<<10)
			for {
				n, err := r.Read(buf)
				if n > 0 && !muted.Load() {
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

func (p *redisProxy) close() {
	p.l.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
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
