package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
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
	before := runtime.NumGoroutine()
	const n = 200
	clients := make([]*rawClient, n)
	for i := range clients {
		clients[i] = newRawClient(t, srv.url)
	}
	waitFor(t, func() bool { return runtime.NumGoroutine()-before <= n/10 })
	for i, c := range clients {
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
