package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestMaskBytes(t *testing.T) {
	for n := 0; n < 40; n++ {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i * 31)
		}
		key := [4]byte{0x12, 0x34, 0x56, byte(n)}
		got := bytes.Clone(data)
		maskBytes(key, got)
		for i := range data {
			if got[i] != data[i]^key[i%4] {
				t.Fatalf("maskBytes of %d bytes: byte %d = %#x, want %#x", n, i, got[i], data[i]^key[i%4])
			}
		}
	}
}

// rawServer accepts WebSocket connections on a bare socket, does the
// handshake by hand and sends every frame a client sends on frames. It shows
// what gorilla's server hides: frame boundaries, opcodes and masks. It
// answers a close frame with a close and hangs up.
func rawServer(t *testing.T) (url string, frames <-chan rawFrame) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan rawFrame, 1000)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go serveRaw(t, conn, ch)
		}
	}()
	return "ws://" + ln.Addr().String() + "/", ch
}

func serveRaw(t *testing.T, conn net.Conn, frames chan<- rawFrame) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(testTimeout))
	br := bufio.NewReader(conn)
	req, err := http.ReadRequest(br)
	if err != nil {
		t.Errorf("raw server: %v", err)
		return
	}
	fmt.Fprintf(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", acceptKey(req.Header.Get("Sec-WebSocket-Key")))
	for {
		f, err := readRawFrame(br)
		if err != nil {
			return
		}
		frames <- f
		if f.op == websocket.CloseMessage {
			conn.Write([]byte{finBit | websocket.CloseMessage, 0})
			return
		}
	}
}

// collectFrames reads frames up to and including the close.
func collectFrames(t *testing.T, frames <-chan rawFrame) []rawFrame {
	t.Helper()
	var got []rawFrame
	for {
		select {
		case f := <-frames:
			got = append(got, f)
			if f.op == websocket.CloseMessage {
				return got
			}
		case <-time.After(testTimeout):
			t.Fatalf("no close frame after %d frames", len(got))
		}
	}
}

// TestDialFragment checks on the wire that --fragment N sends each message
// as a first frame and continuation frames of at most N bytes, FIN on the
// last only, and that every client frame is masked.
func TestDialFragment(t *testing.T) {
	url, frames := rawServer(t)
	long := strings.Repeat("0123456789", 25) // 250 bytes: 100 + 100 + 50
	input := long + "\nshort\n" + strings.Repeat("x", 100) + "\n"
	dialInProcess(t, strings.NewReader(input), url, "--fragment", "100", "--wait", "0").wantExit(t, exitOK)
	got := collectFrames(t, frames)
	type want struct {
		op  byte
		fin bool
		n   int
	}
	wants := []want{
		{websocket.TextMessage, false, 100}, {continuationFrame, false, 100}, {continuationFrame, true, 50},
		{websocket.TextMessage, true, 5},
		{websocket.TextMessage, true, 100}, // exactly N bytes: one frame
		{websocket.CloseMessage, true, 2},
	}
	if len(got) != len(wants) {
		t.Fatalf("got %d frames, want %d: %+v", len(got), len(wants), got)
	}
	var message []byte
	for i, w := range wants {
		f := got[i]
		if f.op != w.op || f.fin != w.fin || len(f.payload) != w.n || !f.masked || f.rsv1 {
			t.Errorf("frame %d: op %d fin %v %d bytes masked %v rsv1 %v; want op %d fin %v %d bytes, masked", i, f.op, f.fin, len(f.payload), f.masked, f.rsv1, w.op, w.fin, w.n)
		}
		if i < 3 {
			message = append(message, f.payload...)
		}
	}
	if string(message) != long {
		t.Errorf("the fragments do not join up to the message")
	}
	if code := binary.BigEndian.Uint16(got[len(got)-1].payload); code != websocket.CloseNormalClosure {
		t.Errorf("close code %d, want 1000", code)
	}
}

// TestDialOneFramePerMessage checks that without --fragment a large message
// goes as one frame, and several queued messages as several frames.
func TestDialOneFramePerMessage(t *testing.T) {
	url, frames := rawServer(t)
	big := strings.Repeat("b", 300<<10)
	dialInProcess(t, strings.NewReader(big+"\n\nend"), url, "--wait", "0").wantExit(t, exitOK)
	got := collectFrames(t, frames)
	if len(got) != 4 {
		t.Fatalf("got %d frames, want 3 messages and a close", len(got))
	}
	for i, n := range []int{len(big), 0, 3} {
		if f := got[i]; !f.fin || f.op != websocket.TextMessage || len(f.payload) != n || !f.masked {
			t.Errorf("frame %d: op %d fin %v %d bytes masked %v; want one masked text frame of %d bytes", i, f.op, f.fin, len(f.payload), f.masked, n)
		}
	}
}
