package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// The harness of the page's tests in a real browser: Debian's Chromium,
// headless, driven over the DevTools protocol with chromedp. One Chromium,
// with a fresh profile, serves the whole run (TestMain stops it); each test
// gets a browser context of its own, as a separate browser would be, opens
// tabs on a wsx serve running in-process, and waits for what a user would
// see. When a test fails, every open tab is saved as a screenshot whose
// path is logged.

// chromiumFlags keep Chromium from reaching for the network (this machine
// has none, and without them Chromium stalls) and from asking anything.
var chromiumFlags = []string{
	"headless", "no-sandbox", "disable-gpu", "no-first-run", "disable-background-networking",
	"disable-component-update", "disable-sync", "disable-quic", "disable-extensions",
	"disable-default-apps", "disable-dev-shm-usage", "mute-audio", "disable-features=Translate,MediaRouter,OptimizationHints",
	"password-store=basic", "use-mock-keychain",
	// The tests' https servers have self-signed certificates.
	"ignore-certificate-errors",
}

// chromiumPath is Debian's Chromium, or another Chromium or Chrome on PATH.
func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// chromium is the one browser of the run, started by the first test that
// wants it.
var chromium struct {
	once sync.Once
	ctx  context.Context // its first tab
	stop func()
	err  error
}

// startChromium starts the run's browser, with a profile of its own.
func startChromium(path string) {
	dir, err := os.MkdirTemp("", "wsx-chromium")
	if err != nil {
		chromium.err = err
		return
	}
	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(path), chromedp.UserDataDir(dir), chromedp.WindowSize(1024, 700)}
	for _, f := range chromiumFlags {
		name, value, ok := strings.Cut(f, "=")
		if ok {
			opts = append(opts, chromedp.Flag(name, value))
		} else {
			opts = append(opts, chromedp.Flag(name, true))
		}
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	chromium.ctx = ctx
	chromium.stop = func() {
		cancel()
		cancelAlloc()
		os.RemoveAll(dir)
	}
	if err := chromedp.Do(ctx); err != nil {
		chromium.err = fmt.Errorf("start %s: %w", path, err)
	}
}

// stopChromium ends the run's browser, if it was started.
func stopChromium() {
	if chromium.stop != nil {
		chromium.stop()
	}
}

// browser is a test's own part of the run's Chromium: a browser context,
// whose tabs share storage as one person's browser does.
type browser struct {
	t    *testing.T
	ctx  context.Context // its first tab; every tab is a child of it
	mu   sync.Mutex
	tabs []*tab
}

// newBrowser gives the test a browser context of its own, or skips the
// test when there is no Chromium. It is closed when the test ends, after a
// failing test's screenshots.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := chromiumPath()
	if path == "" {
		t.Skip("chromium not found: apt-get install chromium")
	}
	chromium.once.Do(func() { startChromium(path) })
	if chromium.err != nil {
		t.Fatal(chromium.err)
	}
	ctx, cancel := chromedp.NewContext(chromium.ctx, chromedp.WithNewBrowserContext())
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		t.Fatalf("new browser context: %v", err)
	}
	b := &browser{t: t, ctx: ctx}
	t.Cleanup(func() {
		if t.Failed() {
			b.screenshots()
		}
		cancel()
	})
	return b
}

// tab is one browser tab and what its page wrote to the console.
type tab struct {
	b      *browser
	t      *testing.T
	name   string
	ctx    context.Context
	close  context.CancelFunc
	closed bool

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

// open opens url in a new tab named name (for messages and screenshots).
// Tabs share cookies and local storage, as the tabs of one person do.
func (b *browser) open(name, url string) *tab {
	b.t.Helper()
	tb := b.newTab(name)
	tb.navigate(url)
	return tb
}

// openApart opens url in a new tab with storage of its own, as another
// person's browser.
func (b *browser) openApart(name, url string) *tab {
	b.t.Helper()
	tb := b.newTab(name, chromedp.WithNewBrowserContext())
	tb.navigate(url)
	return tb
}

// newTab opens a blank tab that records its console.
func (b *browser) newTab(name string, opts ...chromedp.ContextOption) *tab {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, opts...)
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		b.t.Fatalf("tab %s: %v", name, err)
	}
	tb := &tab{b: b, t: b.t, name: name, ctx: ctx, close: cancel}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			tb.mu.Lock()
			tb.console = append(tb.console, m)
			tb.mu.Unlock()
		}
	}()
	b.mu.Lock()
	b.tabs = append(b.tabs, tb)
	b.mu.Unlock()
	return tb
}

func (tb *tab) navigate(url string) {
	tb.t.Helper()
	tb.do("navigate to "+url, chromedp.Navigate(url))
}

// shut closes the tab, as a user closing it.
func (tb *tab) shut() {
	tb.closed = true
	tb.close()
}

// do runs actions in the tab, failing the test on error.
func (tb *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, testTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("%s: %s: %v", tb.name, what, err)
	}
}

// eval evaluates a JavaScript expression in the tab and decodes its value.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, testTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.t.Fatalf("%s: %s: %v", tb.name, expr, err)
	}
	return v
}

// waitFor waits until the JavaScript expression cond is true in the tab.
func (tb *tab) waitFor(what, cond string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, testTimeout)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(testTimeout)))
	if err != nil {
		tb.t.Fatalf("%s: waiting for %s: %v\nmessages shown: %q", tb.name, what, err, tb.texts())
	}
}

// texts are the texts of the messages shown, oldest first.
func (tb *tab) texts() []string {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, testTimeout)
	defer cancel()
	v, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#messages .msg .text")].map((e) => e.textContent)`))
	return v
}

// notices are the texts of the notices shown, oldest first.
func (tb *tab) notices() []string {
	return eval[[]string](tb, `[...document.querySelectorAll("#messages .notice")].map((e) => e.textContent)`)
}

// waitText waits until a message with exactly this text is shown.
func (tb *tab) waitText(text string) {
	tb.t.Helper()
	tb.waitFor(fmt.Sprintf("the message %q", text), fmt.Sprintf(`[...document.querySelectorAll("#messages .msg .text")].some((e) => e.textContent === %s)`, jsString(text)))
}

// waitConnected waits until the page shows it is connected.
func (tb *tab) waitConnected() {
	tb.t.Helper()
	tb.waitFor("connected", `document.getElementById("status").dataset.state === "open"`)
}

// typeAndSend types text into the message box and presses Enter. A "\n"
// in text is typed as Shift+Enter, a new line in the message.
func (tb *tab) typeAndSend(text string) {
	tb.t.Helper()
	actions := []chromedp.Action[chromedp.Void]{chromedp.Focus(chromedp.ID("text"))}
	for i, line := range strings.Split(text, "\n") {
		if i > 0 {
			actions = append(actions, chromedp.KeyEvent(kb.Enter, chromedp.KeyModifiers(chromedp.ModifierShift)))
		}
		if line != "" {
			actions = append(actions, chromedp.KeyEvent(line))
		}
	}
	actions = append(actions, pressEnter)
	tb.do("type and send", actions...)
}

// pressEnter presses Enter as a keyboard does. chromedp's KeyEvent adds a
// separate char event, which a textarea takes as a new line even when the
// page cancelled the key down, as the page does to send.
var pressEnter = chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
	for _, typ := range []input.DispatchKeyEventType{input.DispatchKeyEventTypeRawKeyDown, input.DispatchKeyEventTypeKeyUp} {
		_, err := cdp.Call(ctx, t, input.DispatchKeyEvent, input.DispatchKeyEventParams{
			Type: typ, Key: "Enter", Code: "Enter", WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13,
		})
		if err != nil {
			return err
		}
	}
	return nil
})

// problems are the console's errors and warnings, and uncaught exceptions.
func (tb *tab) problems() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	var out []string
	for _, m := range tb.console {
		if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleWarning || m.IsException() {
			out = append(out, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line+1))
		}
	}
	return out
}

// noProblems fails the test if the page wrote an error or a warning to
// the console: a CSP violation, a failed request, an exception.
func (tb *tab) noProblems() {
	tb.t.Helper()
	// Console events come asynchronously: a round trip to the tab lets
	// those of what the page did so far arrive.
	eval[bool](tb, "true")
	if p := tb.problems(); len(p) > 0 {
		tb.t.Errorf("%s: the console shows problems:\n%s", tb.name, strings.Join(p, "\n"))
	}
}

// emulate sets the viewport width and height and the colour scheme.
func (tb *tab) emulate(width, height int64, scheme string) {
	tb.t.Helper()
	tb.do("emulate", chromedp.EmulateViewport(width, height), chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		})
		return err
	}))
}

// screenshot returns a PNG of the tab's viewport.
func (tb *tab) screenshot() ([]byte, error) {
	ctx, cancel := context.WithTimeout(tb.ctx, testTimeout)
	defer cancel()
	return chromedp.Run(ctx, chromedp.CaptureScreenshot())
}

// saveScreenshot saves the tab's viewport as DIR/name when the variable
// WSX_SCREENSHOT names a directory DIR, for a person to look at.
func (tb *tab) saveScreenshot(name string) {
	tb.t.Helper()
	dir := os.Getenv("WSX_SCREENSHOT")
	if dir == "" {
		return
	}
	png, err := tb.screenshot()
	if err != nil {
		tb.t.Fatalf("%s: screenshot: %v", tb.name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
}

// screenshots saves each open tab as a PNG and logs where.
func (b *browser) screenshots() {
	b.mu.Lock()
	tabs := append([]*tab(nil), b.tabs...)
	b.mu.Unlock()
	safe := regexp.MustCompile(`[^A-Za-z0-9_-]+`).ReplaceAllString(b.t.Name(), "_")
	for _, tb := range tabs {
		if tb.closed {
			continue
		}
		png, err := tb.screenshot()
		if err != nil {
			b.t.Logf("%s: no screenshot: %v", tb.name, err)
			continue
		}
		path := filepath.Join(os.TempDir(), "wsx-"+safe+"-"+tb.name+".png")
		if err := os.WriteFile(path, png, 0o644); err != nil {
			b.t.Logf("%s: screenshot: %v", tb.name, err)
			continue
		}
		b.t.Logf("%s: screenshot saved in %s", tb.name, path)
		if p := tb.problems(); len(p) > 0 {
			b.t.Logf("%s: console:\n%s", tb.name, strings.Join(p, "\n"))
		}
	}
}

// jsString is s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// pageURL is the page of room on srv, with a query such as "name=alice".
func pageURL(srv *testServer, room, query string) string {
	u := httpURL(srv.url) + room
	if query != "" {
		u += "?" + query
	}
	return u
}
