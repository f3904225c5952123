package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Tests of the inline read path (wsserver_inline.go), through wsx echo,
// whose frames are read and answered on the poller's goroutine.

// TestEchoPipelinedWithoutReading: a client sends thousands of messages
// before it reads a reply, with a receive buffer too small for the
// replies, so the server's writes meet a full socket again and again and
// the connection goes back and forth between the poller and a goroutine
// of its own. Every reply still arrives, whole, in order, and nothing is
// cut as a slow consumer: a client that does not read only slows itself.
func TestEchoPipelinedWithoutReading(t *testing.T) {
	srv := newTestServer(t, "echo")
	d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			c.(*net.TCPConn).SetReadBuffer(64 << 10) // no autotuning: the replies back up
		}
		return c, err
	}}
	c, _, err := d.Dial(srv.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// Small messages, which the poller's goroutine answers: 6 MB of
	// replies, more than the server's socket buffer grows to. Then a few
	// larger than a connection's input buffer, which a goroutine of its
	// own reads.
	const n = 30000
	msg := func(i int) []byte {
		m := []byte(strconv.Itoa(i) + ":")
		if i >= n-3000 && i%500 == 0 {
			return append(m, bytes.Repeat([]byte{'x'}, 3000)...)
		}
		return append(m, bytes.Repeat([]byte{'y'}, 200)...)
	}
	written := make(chan error, 1)
	go func() {
		for i := range n {
			if err := c.WriteMessage(websocket.TextMessage, msg(i)); err != nil {
				written <- err
				return
			}
		}
		written <- nil
	}()
	// Read nothing until the writes stall against the server's backed-up
	// replies, or end.
	select {
	case err := <-written:
		written <- err
	case <-time.After(500 * time.Millisecond):
	}
	for i := range n {
		c.SetReadDeadline(time.Now().Add(testTimeout))
		op, got, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if want := append([]byte(defaultPrefix), msg(i)...); op != websocket.TextMessage || !bytes.Equal(got, want) {
			t.Fatalf("reply %d: type %d, %.40q…, want %.40q…", i, op, got, want)
		}
	}
	if err := <-written; err != nil {
		t.Fatalf("write: %v", err)
	}
}

// TestEchoFramesInOneRead: frames that arrive in one segment — a message,
// a ping, a message in two fragments, another message, a close — are
// all answered in order from one read.
func TestEchoFramesInOneRead(t *testing.T) {
	srv := newTestServer(t, "echo", "--prefix", "")
	c := newRawClient(t, srv.url)
	var in []byte
	in = append(in, maskedFrame(websocket.TextMessage, []byte("one"))...)
	in = append(in, maskedFrame(websocket.PingMessage, []byte("ping"))...)
	first := maskedFrame(websocket.BinaryMessage, []byte("tw"))
	first[0] &^= finBit
	in = append(in, first...)
	in = append(in, maskedFrame(opContinuation, []byte("o"))...)
	in = append(in, maskedFrame(websocket.TextMessage, []byte("three"))...)
	in = append(in, maskedFrame(websocket.CloseMessage, []byte{0x03, 0xe8})...)
	if _, err := c.conn.Write(in); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		op      int
		payload string
	}{
		{websocket.TextMessage, "one"},
		{websocket.PongMessage, "ping"},
		{websocket.BinaryMessage, "two"},
		{websocket.TextMessage, "three"},
		{websocket.CloseMessage, "\x03\xe8"},
	}
	c.conn.SetReadDeadline(time.Now().Add(testTimeout))
	for _, w := range want {
		f, err := readRawFrame(c.r)
		if err != nil {
			t.Fatalf("want %q: %v", w.payload, err)
		}
		if int(f.op) != w.op || string(f.payload) != w.payload {
			t.Fatalf("frame op %d %q, want op %d %q", f.op, f.payload, w.op, w.payload)
		}
	}
	if _, err := c.r.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("after the close: %v, want the server to close the connection", err)
	}
}

// TestEchoIdleConnectionsHaveNoGoroutine: wsx echo parks idle connections
// in its poller, as serve does, and answers them from there.
func TestEchoIdleConnectionsHaveNoGoroutine(t *testing.T) {
	srv := newTestServer(t, "echo", "--ping-interval", "0")
	for i, c := range parkedClients(t, srv.url, 200) {
		text := fmt.Sprintf("hi %d", i)
		c.conn.Write(maskedFrame(websocket.TextMessage, []byte(text)))
		c.conn.SetReadDeadline(time.Now().Add(testTimeout))
		f, err := readRawFrame(c.r)
		if err != nil || string(f.payload) != defaultPrefix+text {
			t.Fatalf("client %d got %q, %v", i, f.payload, err)
		}
	}
}

// TestEchoSeveralEventLoops: with four processors wsx echo reads its
// connections on two event loops; clients on both, each sending and
// reading at once, get every reply in order.
func TestEchoSeveralEventLoops(t *testing.T) {
	t.Setenv("GOMAXPROCS", "4")
	p := startWSX(t, "echo", "--addr", "127.0.0.1:0", "--prefix", "")
	url := p.startLineURL(t)
	const clients, n = 6, 2000
	errs := make(chan error, clients)
	for k := range clients {
		c := dialTest(t, url, nil)
		go func() {
			go func() {
				for i := range n {
					if err := c.WriteMessage(websocket.BinaryMessage, []byte(fmt.Sprint(k, " ", i))); err != nil {
						return
					}
				}
			}()
			for i := range n {
				c.SetReadDeadline(time.Now().Add(testTimeout))
				op, got, err := c.ReadMessage()
				if want := fmt.Sprint(k, " ", i); err != nil || op != websocket.BinaryMessage || string(got) != want {
					errs <- fmt.Errorf("client %d reply %d: %d %q %v, want %q", k, i, op, got, err, want)
					return
				}
			}
			errs <- nil
		}()
	}
	for range clients {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestEchoFrameAcrossReads: frames that arrive a few bytes at a time, over
// many reads — a text message in three fragments with multi-byte
// characters split between reads, a ping between two fragments, a close —
// are put together where they stopped, answered in order and byte-exact.
func TestEchoFrameAcrossReads(t *testing.T) {
	srv := newTestServer(t, "echo", "--prefix", "")
	c := newRawClient(t, srv.url)
	text := []byte(strings.Repeat("héllo wörld 🌍 ", 40)) // 720 bytes: past the input buffer
	var in []byte
	for i, part := range [][]byte{text[:100], text[100:401], text[401:]} {
		op := websocket.TextMessage
		if i > 0 {
			op = opContinuation
		}
		f := maskedFrame(op, part)
		if i < 2 {
			f[0] &^= finBit
		}
		in = append(in, f...)
		if i == 0 {
			in = append(in, maskedFrame(websocket.PingMessage, []byte("ping"))...)
		}
	}
	in = append(in, maskedFrame(websocket.CloseMessage, []byte{0x03, 0xe8})...)
	go func() {
		for len(in) > 0 {
			n := min(7, len(in))
			if _, err := c.conn.Write(in[:n]); err != nil {
				return
			}
			in = in[n:]
			time.Sleep(time.Millisecond)
		}
	}()
	c.conn.SetReadDeadline(time.Now().Add(testTimeout))
	for _, want := range []rawFrame{
		{op: websocket.PongMessage, payload: []byte("ping")},
		{op: websocket.TextMessage, payload: text},
		{op: websocket.CloseMessage, payload: []byte{0x03, 0xe8}},
	} {
		f, err := readRawFrame(c.r)
		if err != nil {
			t.Fatalf("want op %d: %v", want.op, err)
		}
		if f.op != want.op || !bytes.Equal(f.payload, want.payload) {
			t.Fatalf("frame op %d %.60q…, want op %d %.60q…", f.op, f.payload, want.op, want.payload)
		}
	}
}

// TestEchoInvalidUTF8InALaterRead: a text frame whose invalid byte arrives
// in a later read than its start fails with 1007 at that byte, before the
// rest of the frame is sent.
func TestEchoInvalidUTF8InALaterRead(t *testing.T) {
	srv := newTestServer(t, "echo")
	c := newRawClient(t, srv.url)
	payload := append(bytes.Repeat([]byte("a"), 300), 0xff)
	payload = append(payload, bytes.Repeat([]byte("b"), 3000)...)
	frame := maskedFrame(websocket.TextMessage, payload)
	if _, err := c.conn.Write(frame[:100]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // another read for the rest
	if _, err := c.conn.Write(frame[100 : 8+301]); err != nil {
		t.Fatal(err)
	}
	c.conn.SetReadDeadline(time.Now().Add(testTimeout))
	f, err := readRawFrame(c.r)
	if err != nil || f.op != websocket.CloseMessage || len(f.payload) < 2 || int(f.payload[0])<<8|int(f.payload[1]) != websocket.CloseInvalidFramePayloadData {
		t.Fatalf("got op %d %q, %v; want close 1007", f.op, f.payload, err)
	}
}

// TestEchoOversizeWholeFrameCloses1009: a frame over --max-message-size
// that arrives whole in one read, which the inline reader answers from its
// input buffer, is refused with 1009 as a larger one is.
func TestEchoOversizeWholeFrameCloses1009(t *testing.T) {
	srv := newTestServer(t, "echo", "--max-message-size", "100")
	c := newRawClient(t, srv.url)
	c.conn.Write(maskedFrame(websocket.BinaryMessage, make([]byte, 100)))
	c.conn.Write(maskedFrame(websocket.BinaryMessage, make([]byte, 101)))
	c.conn.SetReadDeadline(time.Now().Add(testTimeout))
	if f, err := readRawFrame(c.r); err != nil || f.op != websocket.BinaryMessage || len(f.payload) != len(defaultPrefix)+100 {
		t.Fatalf("reply to 100 bytes: op %d, %d bytes, %v", f.op, len(f.payload), err)
	}
	f, err := readRawFrame(c.r)
	if err != nil || f.op != websocket.CloseMessage || len(f.payload) < 2 || int(f.payload[0])<<8|int(f.payload[1]) != websocket.CloseMessageTooBig {
		t.Fatalf("got op %d %q, %v; want close 1009", f.op, f.payload, err)
	}
}

// TestEchoResetMidFrame: a client that sends half a frame and resets the
// connection ends as lost (1006), and the connection is gone.
func TestEchoResetMidFrame(t *testing.T) {
	srv := newTestServer(t, "echo")
	c := newRawClient(t, srv.url)
	frame := maskedFrame(websocket.TextMessage, bytes.Repeat([]byte("x"), 200))
	c.conn.Write(frame[:50])
	time.Sleep(20 * time.Millisecond) // read and waiting for the rest
	c.conn.(*net.TCPConn).SetLinger(0)
	c.conn.Close()
	waitFor(t, func() bool {
		return strings.Contains(srv.stderr.String(), "Connection 1 has disconnected (1006 connection lost)")
	})
}

// TestEchoDroppedClientDoesNotStallOthers: a client that stops answering
// pings is dropped, and what it goes on sending after the close frame
// does not hold up the event loop that also reads the others: their round
// trips stay quick.
func TestEchoDroppedClientDoesNotStallOthers(t *testing.T) {
	srv := newTestServer(t, "echo", "--ping-interval", "100ms")
	deaf := newRawClient(t, srv.url) // reads, but never answers a ping
	dropped := make(chan struct{})
	go func() {
		for {
			f, err := readRawFrame(deaf.r)
			if err != nil {
				return
			}
			if f.op == websocket.CloseMessage {
				break
			}
		}
		close(dropped)
		junk := make([]byte, 16<<10)
		for {
			if _, err := deaf.conn.Write(junk); err != nil {
				return
			}
		}
	}()
	alive := dialTest(t, srv.url, nil) // gorilla answers pings while it reads
	worst := time.Duration(0)
	var after <-chan time.Time
	for done := false; !done; {
		select {
		case <-dropped:
			dropped, after = nil, time.After(time.Second)
		case <-after:
			done = true
		default:
		}
		start := time.Now()
		alive.WriteMessage(websocket.TextMessage, []byte("hi"))
		alive.SetReadDeadline(time.Now().Add(testTimeout))
		if _, _, err := alive.ReadMessage(); err != nil {
			t.Fatalf("round trip: %v", err)
		}
		worst = max(worst, time.Since(start))
		time.Sleep(10 * time.Millisecond)
	}
	if worst > closeGrace/2 {
		t.Errorf("slowest round trip %v: the event loop waited on the dropped client", worst)
	}
}
