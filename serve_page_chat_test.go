package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/gorilla/websocket"
)

// TestPageTwoTabs: two tabs of one room chat as people do: Enter and the
// Send button send, Shift+Enter is a new line, each sees the other's
// messages with the sender and its own set apart, consecutive messages of
// one sender grouped, and who is online; nothing goes to the console.
func TestPageTwoTabs(t *testing.T) {
	srv := newTestServer(t, "serve")
	b := newBrowser(t)
	alice := b.open("alice", pageURL(srv, "team-a", "name=alice"))
	alice.waitConnected()
	bob := b.open("bob", pageURL(srv, "team-a", "name=bob"))
	bob.waitConnected()
	alice.waitFor("bob's join", `document.getElementById("people-count-2").textContent === "2"`)

	alice.typeAndSend("hello bob")
	bob.waitText("hello bob")
	alice.typeAndSend("two lines:\nthis is the second")
	bob.waitText("two lines:\nthis is the second")
	bob.do("click Send", chromedp.SendKeys(chromedp.ID("text"), "hi alice"), chromedp.Click(chromedp.ID("send")))
	alice.waitText("hi alice")

	if got := bob.texts(); len(got) != 3 || got[0] != "hello bob" || got[2] != "hi alice" {
		t.Errorf("bob sees %q", got)
	}
	// Alice's two messages form one group under her name; bob's own
	// message is set apart.
	groups := eval[[]string](bob, `[...document.querySelectorAll("#messages .msg")].map((li) =>
		(li.classList.contains("own") ? "own" : "other") + (li.classList.contains("first") ? " first " : " ") + (li.querySelector(".from")?.textContent ?? ""))`)
	want := []string{"other first alice", "other ", "own first "}
	if len(groups) != len(want) {
		t.Fatalf("bob's messages: %q, want %q", groups, want)
	}
	for i := range want {
		if groups[i] != want[i] {
			t.Errorf("bob's message %d: %q, want %q", i, groups[i], want[i])
		}
	}
	if online := eval[[]string](alice, `[...document.querySelectorAll("#people-list li")].map((li) => li.textContent + (li.classList.contains("you") ? " (you)" : ""))`); len(online) != 2 || online[0] != "alice (you)" || online[1] != "bob" {
		t.Errorf("alice's online list: %q", online)
	}
	if title := eval[string](alice, `document.title`); title != "team-a · wsx chat" {
		t.Errorf("title %q", title)
	}

	// While alice's tab is hidden, the title counts what she has not read.
	setHidden := func(hidden bool) string {
		return fmt.Sprintf(`Object.defineProperty(document, "hidden", { value: %v, configurable: true });
			document.dispatchEvent(new Event("visibilitychange")); true`, hidden)
	}
	eval[bool](alice, setHidden(true))
	bob.typeAndSend("are you there?")
	bob.typeAndSend("hello?")
	alice.waitFor("two unread in the title", `document.title === "(2) team-a · wsx chat"`)
	eval[bool](alice, setHidden(false))
	alice.waitFor("the title without a count", `document.title === "team-a · wsx chat"`)

	// With the keyboard alone: Tab from the message box reaches Send.
	alice.do("type, Tab to Send, press Enter", chromedp.Focus(chromedp.ID("text")), chromedp.KeyEvent("by keyboard"), chromedp.KeyEvent(kb.Tab))
	if id := eval[string](alice, `document.activeElement.id`); id != "send" {
		t.Errorf("Tab from the message box went to #%s, want #send", id)
	}
	alice.do("press Enter on Send", chromedp.KeyEvent(kb.Enter))
	bob.waitText("by keyboard")

	// The online list follows a tab that closes.
	alice.noProblems()
	bob.noProblems()
	bob.shut()
	alice.waitFor("bob gone from the list", `document.getElementById("people-count-2").textContent === "1"`)
	alice.waitFor("the leave notice", `[...document.querySelectorAll("#messages .notice")].some((n) => n.textContent === "bob left")`)
	if online := eval[[]string](alice, `[...document.querySelectorAll("#people-list li")].map((li) => li.textContent)`); len(online) != 1 || online[0] != "alice" {
		t.Errorf("after bob closed his tab alice's list is %q", online)
	}
	alice.noProblems()
}

// TestPageRawClient: what a raw client sends shows in the page exactly, as
// text (the XSS string too), with its links clickable; what is typed in the
// page reaches the raw client byte-exact.
func TestPageRawClient(t *testing.T) {
	srv := newTestServer(t, "serve")
	b := newBrowser(t)
	raw := dialTest(t, srv.url+"?name=wscat", nil)
	page := b.open("page", pageURL(srv, "", "name=carol"))
	page.waitConnected()
	page.waitFor("wscat online", `document.getElementById("people-count-2").textContent === "2"`)
	if room := eval[string](page, `document.getElementById("room").textContent`); room != "lobby" {
		t.Errorf("the page of / names the room %q, want lobby", room)
	}

	sent := []string{
		"  spaces around, tabs\tand ünïcödé ✓  ",
		"line one\nline two\n",
		"<img src=x onerror=window.pwned=1>",
		"<script>window.pwned=2</script>& &amp; &lt;",
		"see https://example.com/a_(b)?q=1#x, and http://x.test/.",
	}
	for _, s := range sent {
		raw.WriteMessage(websocket.TextMessage, []byte(s))
	}
	page.waitText(sent[len(sent)-1])
	if got := page.texts(); strings.Join(got, "|") != strings.Join(sent, "|") {
		t.Errorf("the page shows %q, want %q", got, sent)
	}
	if n := eval[int](page, `document.querySelectorAll("#messages img, #messages script").length + (window.pwned ? 100 : 0)`); n != 0 {
		t.Errorf("markup in a message became elements (%d, 100 more if it ran)", n)
	}
	links := eval[[]string](page, `[...document.querySelectorAll("#messages .text a")].map((a) => a.href + " " + a.rel + " " + a.target)`)
	want := []string{"https://example.com/a_(b)?q=1#x noopener noreferrer _blank", "http://x.test/ noopener noreferrer _blank"}
	if strings.Join(links, "|") != strings.Join(want, "|") {
		t.Errorf("links %q, want %q", links, want)
	}

	page.typeAndSend("  typed: ünïcödé ✓\nsecond line  ")
	if op, got := readMsg(t, raw); op != websocket.TextMessage || string(got) != "  typed: ünïcödé ✓\nsecond line  " {
		t.Errorf("the raw client got %d %q", op, got)
	}
	page.noProblems()
}

// TestPageTLS: served over https, the page connects with wss:.
func TestPageTLS(t *testing.T) {
	srv := newTestServer(t, "serve", "--tls-self-signed")
	if !strings.HasPrefix(srv.url, "wss://") {
		t.Fatalf("server URL %s", srv.url)
	}
	b := newBrowser(t)
	page := b.open("page", pageURL(srv, "secure", "name=erin"))
	page.waitConnected()
	d := websocket.Dialer{TLSClientConfig: pinnedTLS(t, srv)}
	raw, _, err := d.Dial(srv.url+"secure", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	page.typeAndSend("over wss")
	if _, got := readMsg(t, raw); string(got) != "over wss" {
		t.Errorf("the raw client got %q", got)
	}
	if u := eval[string](page, `location.protocol`); u != "https:" {
		t.Errorf("the page is on %s", u)
	}
}
