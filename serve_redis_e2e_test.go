package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"
)

// Tests of wsx serve --redis with a real redis-server and two or three
// wsx serve processes (in-process, so the race detector sees the broker,
// or the built binary where a process must be killed).

// redisServer is a redis-server on a random loopback port, without
// persistence, stopped when the test ends.
type redisServer struct {
	t    *testing.T
	port int
	dir  string
	cmd  *exec.Cmd
}

// startRedis starts redis-server, or skips the test if it is not installed.
func startRedis(t *testing.T) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed (apt-get install redis-server): skipping the --redis tests")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	r := &redisServer{t: t, port: port, dir: t.TempDir()}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *redisServer) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

// client returns a client of r, closed when the test ends.
func (r *redisServer) client() *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.port)})
	r.t.Cleanup(func() { rdb.Close() })
	return rdb
}

// expectOnline joins url as a JSON client and checks that its welcome
// lists want clients, itself included.
func expectOnline(t *testing.T, url string, want int, who string) {
	t.Helper()
	if _, w := jsonClient(t, url, nil); len(w.Online) != want {
		t.Errorf("online %v, want %s", w.Online, who)
	}
}

// start starts redis-server on r's port and waits until it answers.
func (r *redisServer) start() {
	r.t.Helper()
	r.cmd = exec.Command("redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir)
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.port)})
	defer c.Close()
	waitFor(r.t, func() bool { return c.Ping(context.Background()).Err() == nil })
}

// stop stops redis-server (its data is lost: no persistence).
func (r *redisServer) stop() {
	if r.cmd != nil && r.cmd.ProcessState == nil {
		r.cmd.Process.Signal(syscall.SIGTERM)
		r.cmd.Wait()
	}
}

// redisServe runs n wsx serve --redis processes in-process with args.
func redisServe(t *testing.T, r *redisServer, n int, args ...string) []*testServer {
	t.Helper()
	srvs := make([]*testServer, n)
	for i := range srvs {
		srvs[i] = newTestServer(t, append([]string{"serve", "--redis", r.url()}, args...)...)
	}
	return srvs
}

// nextEvent reads JSON events from c until one of kind event, skipping the
// others, and returns it raw.
func nextEvent(t *testing.T, c *websocket.Conn, event string) []byte {
	t.Helper()
	for {
		_, data := readMsg(t, c)
		var e struct{ Event string }
		json.Unmarshal(data, &e)
		if e.Event == event {
			return data
		}
	}
}

func TestRedisDeliversAcrossProcesses(t *testing.T) {
	r := startRedis(t)
	srv := redisServe(t, r, 2)
	a := dialTest(t, srv[0].url+"room", nil)
	b := dialTest(t, srv[1].url+"room", nil)
	j, w := jsonClient(t, srv[1].url+"room", nil)
	if len(w.Online) != 3 {
		t.Errorf("welcome online %v, want the 3 clients of both processes", w.Online)
	}
	binary := []byte{0, 0xff, 0xfe, '\n', ' ', 1}
	a.WriteMessage(websocket.TextMessage, []byte("héllo"))
	a.WriteMessage(websocket.BinaryMessage, binary)
	if op, data := readMsg(t, b); op != websocket.TextMessage || string(data) != "héllo" {
		t.Fatalf("b got %d %q, want text héllo", op, data)
	}
	if op, data := readMsg(t, b); op != websocket.BinaryMessage || !bytes.Equal(data, binary) {
		t.Fatalf("b got %d %q, want binary %q", op, data, binary)
	}
	var e messageEvent
	json.Unmarshal(nextEvent(t, j, "message"), &e)
	if e.Data != "héllo" || e.Type != "text" || e.Seq != 1 || e.Room != "room" || e.From == "" {
		t.Errorf("JSON client got %+v", e)
	}
	json.Unmarshal(nextEvent(t, j, "message"), &e)
	if e.Type != "binary" || e.Seq != 2 {
		t.Errorf("JSON client got %+v", e)
	}
	// The sender gets nothing back, on any process: the next thing a gets
	// is b's reply, which comes after a's messages in the room's order.
	b.WriteMessage(websocket.TextMessage, []byte("back"))
	if _, data := readMsg(t, a); string(data) != "back" {
		t.Fatalf("a got %q, want back (and not its own messages)", data)
	}
	// Another room hears nothing.
	other := dialTest(t, srv[0].url+"other", nil)
	a.WriteMessage(websocket.TextMessage, []byte("x"))
	noMessage(t, other, "other room")
}

func TestRedisIncludeSelf(t *testing.T) {
	r := startRedis(t)
	srv := redisServe(t, r, 2, "--include-self")
	a := dialTest(t, srv[0].url, nil)
	b := dialTest(t, srv[1].url, nil)
	a.WriteMessage(websocket.TextMessage, []byte("one"))
	a.WriteMessage(websocket.TextMessage, []byte("two"))
	for _, c := range []*websocket.Conn{a, b} {
		for _, want := range []string{"one", "two"} {
			if _, data := readMsg(t, c); string(data) != want {
				t.Fatalf("got %q, want %q (exactly once each, in order)", data, want)
			}
		}
	}
	noMessage(t, a, "sender after its two messages")
}

// TestRedisOneOrder sends from two processes at once and checks that
// subscribers on three processes see every message once, in one order.
func TestRedisOneOrder(t *testing.T) {
	const perPublisher = 2000
	r := startRedis(t)
	srv := redisServe(t, r, 3)
	var subs []*websocket.Conn
	for _, s := range srv {
		c, _ := jsonClient(t, s.url+"order", nil)
		subs = append(subs, c)
	}
	pubs := []*websocket.Conn{dialTest(t, srv[0].url+"order", nil), dialTest(t, srv[1].url+"order", nil)}
	got := make([][]string, len(subs))
	var wg sync.WaitGroup
	for i, c := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(time.Now().Add(60 * time.Second))
			for len(got[i]) < 2*perPublisher {
				_, data, err := c.ReadMessage()
				if err != nil {
					t.Errorf("subscriber %d after %d messages: %v", i, len(got[i]), err)
					return
				}
				var e messageEvent
				json.Unmarshal(data, &e)
				if e.Event != "message" {
					continue
				}
				if want := uint64(len(got[i]) + 1); e.Seq != want {
					t.Errorf("subscriber %d: seq %d, want %d", i, e.Seq, want)
					return
				}
				got[i] = append(got[i], e.Data)
			}
		}()
	}
	for p, c := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range perPublisher {
				if err := c.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, "p%d-%d", p, n)); err != nil {
					t.Errorf("publisher %d: %v", p, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for i := 1; i < len(got); i++ {
		for k := range got[0] {
			if got[i][k] != got[0][k] {
				t.Fatalf("subscriber %d differs from subscriber 0 at message %d: %q vs %q", i, k+1, got[i][k], got[0][k])
			}
		}
	}
	// Each publisher's own messages keep their order within the one order.
	next := [2]int{}
	for _, d := range got[0] {
		var p, n int
		fmt.Sscanf(d, "p%d-%d", &p, &n)
		if n != next[p] {
			t.Fatalf("publisher %d's message %d came before %d", p, n, next[p])
		}
		next[p]++
	}
}

// TestRedisHistoryAndCatchUp checks that history and ?since= catch-up are
// the same on every process, also after a process restarts.
func TestRedisHistoryAndCatchUp(t *testing.T) {
	r := startRedis(t)
	srv := redisServe(t, r, 2, "--history", "10")
	a := dialTest(t, srv[0].url+"h", nil)
	for i := range 12 {
		a.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, "m%d", i+1))
	}
	var w welcomeEvent
	waitFor(t, func() bool {
		c, welcome := jsonClient(t, srv[1].url+"h", nil)
		c.Close()
		w = welcome
		return len(w.History) == 10 && w.History[9].Seq == 12
	})
	if w.History[0].Data != "m3" || w.History[0].Seq != 3 {
		t.Fatalf("history starts with %+v, want m3 at seq 3", w.History[0])
	}
	// Catch up on the other process from seq 9: exactly m10..m12.
	_, w2 := jsonClient(t, srv[0].url+"h?since=9&epoch="+w.Epoch, nil)
	if w2.Recovered == nil || !*w2.Recovered || len(w2.History) != 3 || w2.History[0].Data != "m10" || w2.Epoch != w.Epoch {
		t.Fatalf("catch-up on process 0: recovered %v, history %+v, epoch %q (want %q)", w2.Recovered, w2.History, w2.Epoch, w.Epoch)
	}
	// A process that restarts keeps the rooms' numbering: it is Redis's.
	srv[1].stop()
	again := newTestServer(t, "serve", "--redis", r.url(), "--history", "10")
	_, w3 := jsonClient(t, again.url+"h?since=11&epoch="+w.Epoch, nil)
	if w3.Recovered == nil || !*w3.Recovered || len(w3.History) != 1 || w3.History[0].Data != "m12" || w3.Epoch != w.Epoch {
		t.Fatalf("catch-up after a restart: recovered %v, history %+v, epoch %q (want %q)", w3.Recovered, w3.History, w3.Epoch, w.Epoch)
	}
}

// TestRedisPresence checks online lists, joins and leaves across processes,
// and that connection ids are unique across them.
func TestRedisPresence(t *testing.T) {
	r := startRedis(t)
	srv := redisServe(t, r, 2)
	a, wa := jsonClient(t, srv[0].url+"p?name=alice", nil)
	b, wb := jsonClient(t, srv[1].url+"p?name=bob", nil)
	if wa.You.Conn == wb.You.Conn {
		t.Fatalf("two processes gave the same connection id %d", wa.You.Conn)
	}
	if len(wb.Online) != 2 {
		t.Errorf("bob's welcome online %v, want alice and bob", wb.Online)
	}
	var join noticeEvent
	json.Unmarshal(nextEvent(t, a, "join"), &join)
	if join.Name != "bob" || join.Conn != wb.You.Conn {
		t.Errorf("alice got join %+v, want bob's", join)
	}
	b.Close()
	var leave noticeEvent
	json.Unmarshal(nextEvent(t, a, "leave"), &leave)
	if leave.Name != "bob" || leave.Conn != wb.You.Conn {
		t.Errorf("alice got leave %+v, want bob's", leave)
	}
	c, wc := jsonClient(t, srv[1].url+"p?name=carol", nil)
	defer c.Close()
	if len(wc.Online) != 2 {
		t.Errorf("carol's welcome online %v, want alice and carol", wc.Online)
	}
}

// TestRedisKilledProcessLeaves kills a process with SIGKILL: its clients
// leave the survivors' online lists within 15 s, with one leave each.
func TestRedisKilledProcessLeaves(t *testing.T) {
	r := startRedis(t)
	survivors := redisServe(t, r, 2)
	victim := startWSX(t, "serve", "--addr", "127.0.0.1:0", "--redis", r.url())
	url := victim.startLineURL(t)
	watchers := []*websocket.Conn{}
	for _, s := range survivors {
		c, _ := jsonClient(t, s.url+"k", nil)
		watchers = append(watchers, c)
	}
	ghosts := map[uint64]bool{}
	for range 2 {
		_, w := jsonClient(t, url+"k", nil)
		ghosts[w.You.Conn] = true
	}
	for _, c := range watchers {
		for range 2 {
			nextEvent(t, c, "join")
		}
	}
	victim.cmd.Process.Kill()
	killed := time.Now()
	var wg sync.WaitGroup
	for i, c := range watchers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			left := map[uint64]int{}
			// Read until 3 s past the bound: every leave came by then,
			// and no second one.
			c.SetReadDeadline(killed.Add(18 * time.Second))
			for {
				_, data, err := c.ReadMessage()
				if err != nil {
					break
				}
				var e noticeEvent
				json.Unmarshal(data, &e)
				if e.Event == "leave" {
					left[e.Conn]++
					since := time.Since(killed)
					if since > 15*time.Second {
						t.Errorf("watcher %d: leave of %d came %s after the kill", i, e.Conn, since)
					}
					t.Logf("watcher %d: leave of %d %s after the kill", i, e.Conn, since.Round(time.Millisecond))
				}
			}
			for id := range ghosts {
				if left[id] != 1 {
					t.Errorf("watcher %d: %d leave events for connection %d, want exactly 1", i, left[id], id)
				}
			}
		}()
	}
	wg.Wait()
	expectOnline(t, survivors[0].url+"k", 3, "the 2 watchers and the newcomer after the kill")
}

// TestRedisStoppedProcessLeaves stops a process gracefully while Redis is
// busy, so that its clients' leaves cannot go out before it stops: they
// leave the other processes' online lists at once anyway (not after the
// 9 s of a crash, nor never), each with one leave event.
func TestRedisStoppedProcessLeaves(t *testing.T) {
	r := startRedis(t)
	srv := redisServe(t, r, 2)
	watcher, _ := jsonClient(t, srv[0].url+"g?name=alice", nil)
	gone := map[uint64]bool{}
	var last *websocket.Conn
	for _, name := range []string{"bob", "carol"} {
		c, w := jsonClient(t, srv[1].url+"g?name="+name, nil)
		gone[w.You.Conn] = true
		last = c
		nextEvent(t, watcher, "join")
		go func() { // answers the server's close, as a browser would
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		}()
	}
	// A script keeps Redis busy for 0.5 s: a message of carol's waits for
	// it, and the leaves queue behind.
	rdb := r.client()
	busy := make(chan error, 1)
	go func() {
		busy <- rdb.Eval(context.Background(), `local t = redis.call('TIME')
local start = t[1] * 1e6 + t[2]
repeat t = redis.call('TIME') until t[1] * 1e6 + t[2] - start > 500000
return 1`, nil).Err()
	}()
	time.Sleep(50 * time.Millisecond)
	last.WriteMessage(websocket.TextMessage, []byte("just before the stop"))
	time.Sleep(50 * time.Millisecond)
	stopped := time.Now()
	srv[1].stop()
	if err := <-busy; err != nil {
		t.Fatal(err)
	}
	left := map[uint64]int{}
	watcher.SetReadDeadline(stopped.Add(3 * time.Second)) // well before a reaper would act
	for len(left) < len(gone) {
		_, data, err := watcher.ReadMessage()
		if err != nil {
			t.Fatalf("leaves %v of %v within 3 s of a graceful stop: %v", left, gone, err)
		}
		var e noticeEvent
		if json.Unmarshal(data, &e); e.Event == "leave" {
			left[e.Conn]++
		}
	}
	for id := range gone {
		if left[id] != 1 {
			t.Errorf("%d leave events for connection %d, want 1", left[id], id)
		}
	}
	expectOnline(t, srv[0].url+"g?name=dave", 2, "alice and dave after the stop")
}

// TestRedisReapedProcessRejoins: a process that was taken for dead (its
// heartbeats late, after a long pause) and reaped puts its clients back in
// the online lists at its next heartbeat.
func TestRedisReapedProcessRejoins(t *testing.T) {
	r := startRedis(t)
	srv := redisServe(t, r, 1)
	_, w := jsonClient(t, srv[0].url+"z?name=alice", nil)
	rdb := r.client()
	ctx := context.Background()
	online := redisPrefix + "room:z:online"
	conn := strconv.FormatUint(w.You.Conn, 10)
	if name, err := rdb.HGet(ctx, online, conn).Result(); err != nil || name != "alice" {
		t.Fatalf("alice in the online list: %q, %v", name, err)
	}
	// What a surviving process's reaper does to a dead one.
	insts, err := rdb.ZRange(ctx, redisPrefix+"instances", 0, -1).Result()
	if err != nil || len(insts) != 1 {
		t.Fatalf("instances %v, %v", insts, err)
	}
	rdb.ZRem(ctx, redisPrefix+"instances", insts[0])
	rdb.HDel(ctx, online, conn)
	rdb.Del(ctx, redisPrefix+"instance:"+insts[0]+":conns")
	waitFor(t, func() bool {
		name, _ := rdb.HGet(ctx, online, conn).Result()
		return name == "alice"
	})
	if room, _ := rdb.HGet(ctx, redisPrefix+"instance:"+insts[0]+":conns", conn).Result(); room != "z" {
		t.Errorf("alice's process lists her in room %q, want z", room)
	}
}

// TestRedisScriptFlush: Redis forgets its scripts (SCRIPT FLUSH, or a
// restart the subscription did not notice); messages are still relayed.
func TestRedisScriptFlush(t *testing.T) {
	r := startRedis(t)
	srv := redisServe(t, r, 2)
	a, _ := jsonClient(t, srv[0].url+"f", nil)
	b, _ := jsonClient(t, srv[1].url+"f", nil)
	rdb := r.client()
	if err := rdb.ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		text := fmt.Sprintf("after flush %d", i)
		a.WriteMessage(websocket.TextMessage, []byte(text))
		var m messageEvent
		json.Unmarshal(nextEvent(t, b, "message"), &m)
		if m.Data != text {
			t.Fatalf("got %+v, want %q", m, text)
		}
	}
}

// getJSON fetches url and decodes its JSON body into v, returning the status.
func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(v)
	return resp.StatusCode
}

// TestRedisOutage stops redis-server mid-test: sends are refused loudly,
// /readyz answers 503, and when Redis is back delivery resumes for the
// clients that stayed connected.
func TestRedisOutage(t *testing.T) {
	r := startRedis(t)
	srv := redisServe(t, r, 2)
	base := httpURL(srv[0].url)
	var health struct{ Status, Broker, Backplane, Error string }
	if code := getJSON(t, base+"healthz", &health); code != 200 || health.Broker != "redis" || health.Backplane != "up" || health.Status != "ok" {
		t.Fatalf("healthz %d %+v", code, health)
	}
	j, _ := jsonClient(t, srv[0].url+"o", nil)
	raw := dialTest(t, srv[0].url+"o", nil)
	far, _ := jsonClient(t, srv[1].url+"o", nil)

	r.stop()
	waitFor(t, func() bool { return getJSON(t, base+"readyz", &health) == http.StatusServiceUnavailable })
	if getJSON(t, base+"healthz", &health); health.Status != "degraded" || health.Backplane != "down" || !strings.Contains(health.Error, "unreachable") {
		t.Errorf("healthz while down: %+v", health)
	}
	j.WriteJSON(map[string]string{"x": "y"}) // any text is a message
	var e errorEvent
	json.Unmarshal(nextEvent(t, j, "error"), &e)
	if e.Code != "unavailable" {
		t.Errorf("error event %+v, want code unavailable", e)
	}
	raw.WriteMessage(websocket.TextMessage, []byte("lost?"))
	expectClose(t, raw, websocket.CloseTryAgainLater)
	_, resp, err := websocket.DefaultDialer.Dial(srv[0].url+"o", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("handshake while down: %v %v, want 503", err, resp)
	}

	r.start()
	waitFor(t, func() bool { return getJSON(t, base+"readyz", &health) == http.StatusOK })
	waitFor(t, func() bool { return getJSON(t, httpURL(srv[1].url)+"readyz", &health) == http.StatusOK })
	j.WriteMessage(websocket.TextMessage, []byte("after"))
	var m messageEvent
	json.Unmarshal(nextEvent(t, far, "message"), &m)
	if m.Data != "after" {
		t.Fatalf("after the outage the far client got %+v, want after", m)
	}
}

func TestRedisStartErrors(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed (apt-get install redis-server)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--redis", "redis://" + addr + "/0"}, 1, "cannot reach Redis at " + addr},
		{[]string{"--redis", "http://" + addr}, 2, "--redis"},
		{[]string{"--redis", "redis://" + addr, "--store", "x.jsonl"}, 2, "--store"},
	} {
		p := startWSX(t, append([]string{"serve", "--addr", "127.0.0.1:0"}, tc.args...)...)
		if code := p.wait(t); code != tc.code || !strings.Contains(p.stderr.String(), tc.want) {
			t.Errorf("wsx serve %v: exit %d, stderr %q; want exit %d and %q", tc.args, code, p.stderr.String(), tc.code, tc.want)
		}
	}
}
