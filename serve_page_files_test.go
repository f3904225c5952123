package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"
)

// TestPageFiles: an image, an audio file and a video file chosen in one
// tab reach a raw client as exactly their bytes, one binary message each
// and nothing else, and show in the other tab with their names: the image
// drawn, the players loaded. Another file is a download link with its name
// and size; a file name is text, not HTML; files dropped on the page or
// pasted are sent too; a file over --max-message-size is refused in the
// page, naming the limit, and nothing is sent.
func TestPageFiles(t *testing.T) {
	srv := newTestServer(t, "serve", "--max-message-size", "64KiB")
	b := newBrowser(t)
	raw := dialTest(t, srv.url+"media?name=rawbot", nil)
	alice := b.open("alice", pageURL(srv, "media", "name=alice"))
	alice.waitConnected()
	bob := b.open("bob", pageURL(srv, "media", "name=bob"))
	bob.waitConnected()

	video, err := os.ReadFile("testdata/page/clip.webm")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := []struct {
		name string
		data []byte
	}{
		{"picture.png", landscapePNG(t)},
		{"tone.wav", toneWAV()},
		{"clip.webm", video},
		{"<img src=x onerror=window.pwned=1>.txt", []byte("plain notes\n")},
	}
	var paths []string
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, f.data, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	alice.do("choose files", chromedp.SetUploadFiles(chromedp.ID("file"), paths))
	for _, f := range files {
		if op, got := readMsg(t, raw); op != websocket.BinaryMessage || !bytes.Equal(got, f.data) {
			t.Fatalf("raw client: %s arrived as type %d, %d bytes (want binary, %d bytes, equal: %v)", f.name, op, len(got), len(f.data), bytes.Equal(got, f.data))
		}
	}

	bob.waitFor("the picture drawn", `(() => { const i = document.querySelector('#messages img[alt="picture.png"]'); return !!i && i.complete && i.naturalWidth === 480; })()`)
	bob.waitFor("the audio player loaded", `(() => { const a = document.querySelector('#messages audio[aria-label="tone.wav"]'); return !!a && a.controls && a.readyState >= 1 && a.duration > 0.2; })()`)
	bob.waitFor("the video player loaded", `(() => { const v = document.querySelector('#messages video[aria-label="clip.webm"]'); return !!v && v.controls && v.readyState >= 1 && v.videoWidth === 128; })()`)
	links := eval[[]string](bob, `[...document.querySelectorAll("#messages .file")].map((f) => f.querySelector("a").getAttribute("download") + " | " + f.querySelector(".size").textContent)`)
	var wantLinks []string
	for _, f := range files {
		wantLinks = append(wantLinks, f.name+" | "+sizeText(len(f.data)))
	}
	if strings.Join(links, "\n") != strings.Join(wantLinks, "\n") {
		t.Errorf("bob's file links:\n%s\nwant:\n%s", strings.Join(links, "\n"), strings.Join(wantLinks, "\n"))
	}
	if n := eval[int](bob, `document.querySelectorAll("#messages img").length + (window.pwned ? 100 : 0)`); n != 1 {
		t.Errorf("a file name became HTML: %d images (100 more if its script ran), want the one picture", n)
	}
	// The sender sees its own files too, once.
	if n := eval[int](alice, `document.querySelectorAll("#messages .msg.own .file").length`); n != 4 {
		t.Errorf("alice shows %d of her files, want 4", n)
	}

	// Dropped on the page, and pasted into the message box.
	alice.do("drop a file", chromedp.Evaluate[chromedp.Void](`(() => {
		const dt = new DataTransfer();
		dt.items.add(new File(["dropped bytes"], "dropped.txt", { type: "text/plain" }));
		document.getElementById("log").dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
	})()`))
	if op, got := readMsg(t, raw); op != websocket.BinaryMessage || string(got) != "dropped bytes" {
		t.Fatalf("raw client: the dropped file arrived as %d %q", op, got)
	}
	alice.do("paste a file", chromedp.Evaluate[chromedp.Void](`(() => {
		const dt = new DataTransfer();
		dt.items.add(new File([new Uint8Array([0, 1, 2, 255])], "pasted.bin", { type: "application/octet-stream" }));
		document.getElementById("text").dispatchEvent(new ClipboardEvent("paste", { clipboardData: dt, bubbles: true, cancelable: true }));
	})()`))
	if op, got := readMsg(t, raw); op != websocket.BinaryMessage || !bytes.Equal(got, []byte{0, 1, 2, 255}) {
		t.Fatalf("raw client: the pasted file arrived as %d %v", op, got)
	}
	bob.waitFor("the pasted file", `[...document.querySelectorAll("#messages .file a")].some((a) => a.textContent === "pasted.bin")`)

	// Over the limit: refused before anything is sent.
	big := filepath.Join(dir, "big.bin")
	os.WriteFile(big, make([]byte, 100<<10), 0o644)
	alice.do("choose a big file", chromedp.SetUploadFiles(chromedp.ID("file"), []string{big}))
	alice.waitFor("the refusal", `[...document.querySelectorAll("#messages .notice.error")].some((n) => n.textContent.includes("big.bin is 100 KiB") && n.textContent.includes("at most 64 KiB"))`)
	alice.typeAndSend("after the big one")
	if op, got := readMsg(t, raw); op != websocket.TextMessage || string(got) != "after the big one" {
		t.Fatalf("raw client: after the refused file got %d %q, want the next text", op, got)
	}
	bob.saveScreenshot("files.png")
	alice.noProblems()
	bob.noProblems()
}

// sizeText is how the page writes a file's size: bytes below 1 KiB, else
// KiB with one decimal below 10.
func sizeText(n int) string {
	switch {
	case n < 1024:
		return fmt.Sprintf("%d bytes", n)
	case n < 10<<10:
		return strings.TrimSuffix(fmt.Sprintf("%.1f", float64(n)/1024), ".0") + " KiB"
	}
	return fmt.Sprintf("%.0f KiB", float64(n)/1024)
}

// toneWAV is a quarter of a second of a 440 Hz tone, 16-bit mono at 8 kHz.
func toneWAV() []byte {
	const rate, n = 8000, 2000
	var buf bytes.Buffer
	w := func(v any) { binary.Write(&buf, binary.LittleEndian, v) }
	buf.WriteString("RIFF")
	w(uint32(36 + 2*n))
	buf.WriteString("WAVEfmt ")
	w(uint32(16))
	w(uint16(1)) // PCM
	w(uint16(1)) // mono
	w(uint32(rate))
	w(uint32(2 * rate))
	w(uint16(2))
	w(uint16(16))
	buf.WriteString("data")
	w(uint32(2 * n))
	for i := range n {
		w(int16(8000 * math.Sin(2*math.Pi*440*float64(i)/rate)))
	}
	return buf.Bytes()
}
