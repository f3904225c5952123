package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// TestPageName: without ?name= the page asks for a name once and
// remembers it; a name the server would refuse is not taken; a user may
// stay a guest.
func TestPageName(t *testing.T) {
	srv := newTestServer(t, "serve")
	b := newBrowser(t)
	first := b.open("first", pageURL(srv, "r", ""))
	first.waitFor("the name dialog", `document.getElementById("name-dialog").open`)
	first.saveScreenshot("name.png")
	if state := eval[string](first, `document.getElementById("status").dataset.state`); state != "connecting" {
		t.Errorf("before a name is chosen the page is %q, want not yet connected", state)
	}
	first.do("type a bad name", chromedp.KeyEvent("no spaces"), chromedp.KeyEvent(kb.Enter))
	if invalid := eval[string](first, `document.getElementById("name-input").getAttribute("aria-invalid") + " " + document.getElementById("name-dialog").open`); invalid != "true true" {
		t.Errorf("a bad name: aria-invalid and open = %q, want the dialog still open and the field marked", invalid)
	}
	first.do("type a good name", chromedp.Evaluate[chromedp.Void](`document.getElementById("name-input").select()`), chromedp.KeyEvent("dora"), chromedp.KeyEvent(kb.Enter))
	first.waitConnected()
	if me := eval[string](first, `document.getElementById("me").textContent + " " + document.activeElement.id`); me != "dora text" {
		t.Errorf("after choosing: name and focus %q, want dora and the message box", me)
	}

	// The same person's next tab remembers the name.
	second := b.open("second", pageURL(srv, "r", ""))
	second.waitConnected()
	if me := eval[string](second, `document.getElementById("me").textContent + " " + document.getElementById("name-dialog").open`); me != "dora false" {
		t.Errorf("the second tab: %q, want dora without asking", me)
	}

	// Someone else stays a guest, with Escape.
	guest := b.openApart("guest", pageURL(srv, "r", ""))
	guest.waitFor("the name dialog", `document.getElementById("name-dialog").open`)
	guest.do("press Escape", chromedp.KeyEvent(kb.Escape))
	guest.waitConnected()
	if me := eval[string](guest, `document.getElementById("me").textContent`); len(me) < 7 || me[:6] != "guest-" {
		t.Errorf("a guest is named %q", me)
	}
	for _, tb := range []*tab{first, second, guest} {
		tb.noProblems()
	}
}

// TestPageReadOnly: a read-only user sees that they are, and cannot type;
// a wrong token is shown as refused, not as a server out of reach.
func TestPageReadOnly(t *testing.T) {
	users := filepath.Join(t.TempDir(), "users.txt")
	os.WriteFile(users, []byte("reader:r-token:ro\nwriter:w-token:rw\n"), 0o600)
	srv := newTestServer(t, "serve", "--users", users)
	b := newBrowser(t)
	reader := b.open("reader", pageURL(srv, "news", "token=r-token"))
	reader.waitConnected()
	writer := b.open("writer", pageURL(srv, "news", "token=w-token"))
	writer.waitConnected()
	writer.typeAndSend("read this")
	reader.waitText("read this")
	reader.saveScreenshot("read-only.png")
	got := eval[string](reader, `[document.getElementById("me").textContent, document.getElementById("text").disabled,
		document.getElementById("send").disabled, document.getElementById("attach").disabled,
		document.getElementById("note").hidden, document.getElementById("note").textContent].join(" | ")`)
	want := "reader | true | true | true | false | You have read-only access: you can read this room, not write in it."
	if got != want {
		t.Errorf("the read-only page: %q, want %q", got, want)
	}
	if state := eval[string](writer, `document.getElementById("text").disabled + " " + document.getElementById("note").hidden`); state != "false true" {
		t.Errorf("the read-write page: disabled, note hidden = %q", state)
	}
	reader.noProblems()
	writer.noProblems()

	// A wrong token: the page says the server refused it, and keeps trying.
	wrong := b.open("wrong", pageURL(srv, "news", "token=nope"))
	wrong.waitFor("the refusal", `/^The server refused the connection .*: reconnecting in \d+ s…$/.test(document.getElementById("banner-text").textContent)`)
}
