package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/websocket"
)

// BenchmarkEchoRoundTrip measures round trips of 64-byte text messages
// through wsx echo with 1 and 50 concurrent clients. The clients are raw
// sockets writing a pre-masked frame and reading the reply into a fixed
// buffer, so they allocate nothing and allocs/op is the server's cost per
// message.
func BenchmarkEchoRoundTrip(b *testing.B) {
	for _, clients := range []int{1, 50} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			srv := newTestServer(b, "echo", "-q", "--ping-interval", "0")
			conns := make([]*rawClient, clients)
			for i := range conns {
				conns[i] = newRawClient(b, srv.url)
			}
			payload := bytes.Repeat([]byte("x"), 64)
			frame := maskedFrame(websocket.TextMessage, payload)
			replyLen := 2 + len(defaultPrefix) + len(payload)
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			per := b.N / clients
			for i, c := range conns {
				n := per
				if i == 0 {
					n += b.N % clients // the remainder is not dropped
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					reply := make([]byte, replyLen)
					for range n {
						if _, err := c.conn.Write(frame); err != nil {
							b.Error(err)
							return
						}
						if _, err := io.ReadFull(c.r, reply); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "roundtrips/s")
		})
	}
}

// rawClient is a WebSocket client on a bare socket, for benchmarks.
type rawClient struct {
	conn net.Conn
	r    *bufio.Reader
}

// newRawClient does the opening handshake by hand.
func newRawClient(tb testing.TB, url string) *rawClient {
	tb.Helper()
	host := strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", host)
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		tb.Fatalf("handshake: %v %v", err, resp)
	}
	return &rawClient{conn: conn, r: r}
}

// maskedFrame encodes a final client frame with a fixed mask.
func maskedFrame(op int, payload []byte) []byte {
	key := [4]byte{1, 2, 3, 4}
	f := appendHeader(nil, op, len(payload), false)
	f[1] |= 0x80
	f = append(f, key[:]...)
	for i, c := range payload {
		f = append(f, c^key[i%4])
	}
	return f
}
