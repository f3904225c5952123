package main

import (
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"
)

// TestPageReconnect: the server is restarted on the same port with
// --store. Both tabs say they are reconnecting, with a countdown and a
// button to retry now, come back by themselves, catch up on what was sent
// meanwhile, show nothing twice, and get new messages. After a restart
// without --store the room's history is gone, and the tabs say that some
// earlier messages are not available.
func TestPageReconnect(t *testing.T) {
	store := filepath.Join(t.TempDir(), "chat.jsonl")
	srv := newTestServer(t, "serve", "--store", store, "--shutdown-timeout", "200ms")
	addr := strings.TrimSuffix(strings.TrimPrefix(srv.url, "ws://"), "/")
	b := newBrowser(t)
	alice := b.open("alice", pageURL(srv, "r", "name=alice"))
	alice.waitConnected()
	bob := b.open("bob", pageURL(srv, "r", "name=bob"))
	bob.waitConnected()
	alice.typeAndSend("one")
	bob.waitText("one")
	bob.typeAndSend("two")
	alice.waitText("two")

	srv.stop()
	for _, tb := range []*tab{alice, bob} {
		tb.waitFor("the countdown", `/reconnecting in \d+ s…$/.test(document.getElementById("banner-text").textContent) &&
			!document.getElementById("banner").hidden && document.getElementById("status").dataset.state !== "open"`)
	}
	bob.saveScreenshot("reconnecting.png")
	srv = newTestServer(t, "serve", "--store", store, "--shutdown-timeout", "200ms", "--addr", addr)
	raw := dialTest(t, srv.url+"r?name=raw", nil)
	raw.WriteMessage(websocket.TextMessage, []byte("three")) // most likely before the tabs are back
	for _, tb := range []*tab{alice, bob} {
		tb.waitConnected()
		tb.waitText("three")
	}
	alice.typeAndSend("four")
	bob.waitText("four")
	bob.typeAndSend("five")
	alice.waitText("five")
	want := []string{"one", "two", "three", "four", "five"}
	for _, tb := range []*tab{alice, bob} {
		if got := tb.texts(); !slices.Equal(got, want) {
			t.Errorf("%s shows %q, want %q", tb.name, got, want)
		}
		if ids := eval[[]string](tb, `[...document.querySelectorAll("#messages .msg")].map((li) => li.dataset.id ?? "")`); len(ids) != 5 || ids[0] == "" || ids[1] == "" {
			t.Errorf("%s: message ids %q: the messages sent before the restart were not matched with the catch-up", tb.name, ids)
		}
		for _, n := range tb.notices() {
			if strings.Contains(n, "not available") || strings.Contains(n, "delivered") {
				t.Errorf("%s: notice %q after a complete catch-up", tb.name, n)
			}
		}
		if n := eval[int](tb, `document.querySelectorAll("#messages .failed").length`); n != 0 {
			t.Errorf("%s: %d messages marked as not delivered", tb.name, n)
		}
	}

	// Without --store the history is lost: the tabs say so. Bob does not
	// wait for the countdown.
	srv.stop()
	bob.waitFor("the retry button", `!document.getElementById("banner").hidden`)
	newTestServer(t, "serve", "--shutdown-timeout", "200ms", "--addr", addr)
	bob.do("retry now", chromedp.Click(chromedp.ID("retry")))
	bob.waitConnected()
	for _, tb := range []*tab{alice, bob} {
		tb.waitFor("the gap", `[...document.querySelectorAll("#messages .notice.warn")].some((n) => n.textContent === "Some earlier messages are not available.")`)
	}
	bob.saveScreenshot("gap.png")
	alice.waitConnected()
	alice.typeAndSend("six")
	bob.waitText("six")
	if got := bob.texts(); !slices.Equal(got, append(want, "six")) {
		t.Errorf("bob shows %q, want %q", got, append(want, "six"))
	}
}

// TestPageLostMessage: a message the network loses just before the
// connection breaks is marked as not delivered once the page has caught up,
// and one that arrived is not; nobody else shows the lost one.
func TestPageLostMessage(t *testing.T) {
	srv := newTestServer(t, "serve")
	proxy := newLossyProxy(t, strings.TrimSuffix(strings.TrimPrefix(srv.url, "ws://"), "/"))
	b := newBrowser(t)
	alice := b.open("alice", "http://"+proxy.addr()+"/r?name=alice")
	alice.waitConnected()
	bob := b.open("bob", pageURL(srv, "r", "name=bob"))
	bob.waitConnected()
	alice.typeAndSend("kept")
	bob.waitText("kept")

	proxy.drop.Store(true)
	alice.typeAndSend("lost in transit")
	waitFor(t, func() bool { return proxy.dropped.Load() > 0 })
	proxy.drop.Store(false)
	proxy.cut()
	alice.waitFor("the loss marked", `[...document.querySelectorAll("#messages .msg")].map((li) =>
		li.querySelector(".text").textContent + ": " + (li.querySelector(".failed")?.textContent ?? "ok")).join(" | ") ===
		"kept: ok | lost in transit: Not delivered: the connection was lost before it reached the server."`)
	alice.typeAndSend("after")
	bob.waitText("after")
	if got := bob.texts(); !slices.Equal(got, []string{"kept", "after"}) {
		t.Errorf("bob shows %q", got)
	}
}

// lossyProxy forwards TCP connections to a server, and can drop what the
// clients send and then break every connection: a network that loses a
// message before the connection is seen to fail.
type lossyProxy struct {
	*testProxy
	drop    atomic.Bool
	dropped atomic.Int64 // bytes dropped
}

func newLossyProxy(t *testing.T, target string) *lossyProxy {
	t.Helper()
	p := &lossyProxy{testProxy: newTestProxy(t, target)}
	p.up = func(_ int, b []byte) bool {
		if p.drop.Load() {
			p.dropped.Add(int64(len(b)))
			return false
		}
		return true
	}
	p.start()
	return p
}
