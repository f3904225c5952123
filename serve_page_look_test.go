package main

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"
)

// TestPageLooks: a conversation as people have one, seen at desktop and
// phone width, light and dark. At 360 px nothing sticks out sideways and
// the message box is on screen; dark mode is dark. With
// WSX_SCREENSHOT=DIR the test saves each view in DIR (chat.png is the
// README's picture), for a person to look at.
func TestPageLooks(t *testing.T) {
	srv := newTestServer(t, "serve")
	b := newBrowser(t)
	alice := b.open("alice", pageURL(srv, "team-a", "name=alice"))
	alice.waitConnected()
	bot := dialTest(t, srv.url+"team-a?name=build-bot", nil)
	alice.waitFor("the bot", `document.getElementById("people-count-2").textContent === "2"`)
	bot.WriteMessage(websocket.TextMessage, []byte("Deploy of main finished: https://ci.example.com/runs/1842 (all 312 tests passed)"))
	alice.waitText("Deploy of main finished: https://ci.example.com/runs/1842 (all 312 tests passed)")
	alice.typeAndSend("Nice! The new page is live, have a look")
	alice.typeAndSend("Here is how the dashboard looks now:")
	dir := t.TempDir()
	shot := filepath.Join(dir, "dashboard.png")
	os.WriteFile(shot, landscapePNG(t), 0o644)
	alice.do("attach a picture", chromedp.SetUploadFiles(chromedp.ID("file"), []string{shot}))
	alice.waitFor("the picture sent", `document.querySelector("#messages .msg.own img") !== null`)

	bob := b.open("bob", pageURL(srv, "team-a", "name=bob"))
	bob.waitConnected()
	bob.waitFor("the picture in the history", `document.querySelector("#messages img")?.complete === true`)
	bob.typeAndSend("Looks great!")
	bob.typeAndSend("Shipping the mobile fixes next:\n- wider message box\n- dark mode for the charts")
	alice.waitText("Looks great!")
	report := filepath.Join(dir, "release-notes.pdf")
	os.WriteFile(report, bytes.Repeat([]byte("%PDF-1.4 "), 2300), 0o644)
	alice.do("attach a file", chromedp.SetUploadFiles(chromedp.ID("file"), []string{report}))
	bob.waitFor("the file", `[...document.querySelectorAll("#messages .file a")].some((a) => a.textContent === "release-notes.pdf")`)
	bob.waitFor("the end of the list in view", `(() => { const s = document.getElementById("log"); return s.scrollHeight - s.scrollTop - s.clientHeight < 2; })()`)

	bob.emulate(820, 760, "light")
	bob.waitFor("the end of the list in view", `(() => { const s = document.getElementById("log"); s.scrollTop = s.scrollHeight; return true; })()`)
	bob.saveScreenshot("chat.png")
	bob.emulate(1024, 700, "dark")
	if bg := eval[string](bob, `getComputedStyle(document.body).backgroundColor`); bg != "rgb(18, 20, 25)" {
		t.Errorf("dark mode: the page's background is %s", bg)
	}
	bob.saveScreenshot("chat-dark.png")
	for _, scheme := range []string{"light", "dark"} {
		bob.emulate(360, 740, scheme)
		if w := eval[int](bob, `document.documentElement.scrollWidth`); w > 360 {
			t.Errorf("at 360 px (%s) the page is %d px wide", scheme, w)
		}
		if bottom := eval[float64](bob, `document.getElementById("send").getBoundingClientRect().bottom`); bottom > 740 {
			t.Errorf("at 360 px (%s) the Send button is off screen (bottom %v)", scheme, bottom)
		}
		bob.saveScreenshot("chat-phone-" + scheme + ".png")
	}
	bob.do("open the people online", chromedp.Click(chromedp.ID("people-toggle")))
	bob.waitFor("the list open", `document.getElementById("people").getBoundingClientRect().width > 100`)
	bob.saveScreenshot("chat-phone-people.png")
	alice.noProblems()
	bob.noProblems()
}

// landscapePNG draws a small picture: a sky, a sun and two hills.
func landscapePNG(t *testing.T) []byte {
	t.Helper()
	const w, h = 480, 270
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := color.NRGBA{uint8(120 + 80*y/h), uint8(170 + 60*y/h), 240, 255}
			if dx, dy := x-360, y-80; dx*dx+dy*dy < 34*34 {
				c = color.NRGBA{255, 204, 77, 255}
			}
			if y > 200-x/6 && y > 150+(x-300)*(x-300)/900 {
				c = color.NRGBA{76, 153, 92, 255}
			}
			if y > 230-x/12 {
				c = color.NRGBA{52, 120, 70, 255}
			}
			img.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
